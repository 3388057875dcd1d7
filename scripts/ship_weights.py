"""Copy a finished run's model.params into d2lnets/weights/ with its manifest.

    python scripts/ship_weights.py benchmarks/runs/lenet-seed1-... ['how the run was chosen']

The file is named <model>-<dataset>-<sha1[:8]>.params (GluonCV's convention);
the manifest beside it, <model>-<dataset>-<sha1[:8]>.json, holds the run's
meta.json plus the file name, its sha1, the final test accuracy, the date and
the run's per-epoch history. Then point the model's entry in
d2lnets/registry.py at the new file and sha1 (printed at the end).
"""
import json
import shutil
import sys
from pathlib import Path

from d2lnets.io import sha1sum, write_json
from d2lnets.weights import WEIGHTS_DIR
from d2lnets.weights.meta import read_meta, validate


def main(run: str, note: str = '') -> None:
    run_dir = Path(run)
    meta = read_meta(run_dir / 'model.params')
    if meta is None:
        raise SystemExit('%s has no meta.json: give the folder of a finished `d2lnets train`' % run_dir)
    history = json.loads((run_dir / 'history.json').read_text())
    digest = sha1sum(run_dir / 'model.params')
    name = '%s-%s-%s.params' % (meta['model'], meta['dataset'], digest[:8])
    for old in WEIGHTS_DIR.glob('%s-%s-*.*' % (meta['model'], meta['dataset'])):
        old.unlink()
    shutil.copyfile(run_dir / 'model.params', WEIGHTS_DIR / name)
    manifest = dict(meta, file=name, sha1=digest, test_acc=history['test_acc'][-1],
                    date=meta['created'][:10], history={k: history[k] for k in ('loss', 'train_acc', 'test_acc')},
                    trained_by=(run_dir / 'command.txt').read_text().strip(), note=note)
    write_json(WEIGHTS_DIR / (Path(name).stem + '.json'), validate(manifest, name))
    print("%s: test acc %.4f; registry: Weights('shipped', %r, %r, %r, sha1=%r)"
          % (WEIGHTS_DIR / name, manifest['test_acc'], name, meta['dataset'], tuple(meta['input_shape']), digest))


if __name__ == '__main__':
    main(*sys.argv[1:3])
