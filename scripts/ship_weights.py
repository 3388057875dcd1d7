"""Copy a finished run's model.params into d2lnets/weights/ with its manifest.

    python scripts/ship_weights.py benchmarks/runs/lenet-seed1-... ['how the run was chosen']

The file is named <model>-<dataset>-<sha1[:8]>.params (GluonCV's convention);
the manifest <model>.json holds the run's meta.json plus the file name, its
sha1, the final test accuracy, the date and the run's per-epoch history.
"""
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from d2lnets.weights import WEIGHTS_DIR, sha1sum  # noqa: E402


def main(run: str, note: str = '') -> None:
    run_dir = Path(run)
    meta = json.loads((run_dir / 'meta.json').read_text())
    history = json.loads((run_dir / 'history.json').read_text())
    digest = sha1sum(run_dir / 'model.params')
    name = '%s-%s-%s.params' % (meta['model'], meta['dataset'], digest[:8])
    for old in WEIGHTS_DIR.glob('%s-%s-*.params' % (meta['model'], meta['dataset'])):
        old.unlink()
    shutil.copyfile(run_dir / 'model.params', WEIGHTS_DIR / name)
    manifest = dict(meta, file=name, sha1=digest, test_acc=history['test_acc'][-1],
                    date=meta['created'][:10], history={k: history[k] for k in ('loss', 'train_acc', 'test_acc')},
                    trained_by=(run_dir / 'command.txt').read_text().strip(), note=note)
    (WEIGHTS_DIR / ('%s.json' % meta['model'])).write_text(json.dumps(manifest, indent=2) + '\n')
    print('%s: test acc %.4f, sha1 %s' % (WEIGHTS_DIR / name, manifest['test_acc'], digest))


if __name__ == '__main__':
    main(*sys.argv[1:3])
