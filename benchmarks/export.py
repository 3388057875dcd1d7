"""Export every lecture network to both formats at the lecture's input size:
export time, verify time and the largest absolute difference to the Gluon
network, at batch sizes 1 and 8 (the ONNX batch axis is dynamic).

    python -m benchmarks.export                     # all, as in the committed results
    python -m benchmarks.export lenet nin --seed 1

Networks are initialized with Xavier (magnitude 6, so outputs are of order
one) and random batch-norm statistics; the inputs are uniform in [0, 1).
Results are appended to benchmarks/results/export.jsonl, one JSON line per
network and format, and written as a Markdown table to results/export.md.
"""
import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

import d2lnets  # noqa: E402  (first: sets OMP_NUM_THREADS before mxnet is imported)
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from d2lnets.deploy.export import export, verify  # noqa: E402

# name: input (channels, height, width), the lecture's: Fashion-MNIST, resized to 224 but for LeNet.
NETWORKS = {'lenet': (1, 28, 28), 'alexnet': (1, 224, 224), 'vgg11': (1, 224, 224),
            'vgg11_small': (1, 224, 224), 'vgg11_bn': (1, 224, 224), 'nin': (1, 224, 224)}
BATCH_SIZES = (1, 8)


def build(name, shape, seed):
    mx.random.seed(seed)
    net = d2lnets.get_model(name)
    net.initialize(mx.init.Xavier(magnitude=6))
    net(mx.nd.zeros((1,) + shape))
    rng = np.random.RandomState(seed)
    for pname, p in net.collect_params('.*gamma|.*beta|.*running_mean|.*running_var').items():
        low = 0.5 if pname.endswith(('gamma', 'running_var')) else -0.5
        p.set_data(mx.nd.array(rng.uniform(low, low + 1, size=p.shape)))
    return net


def table(rows) -> str:
    """The rows as a Markdown table."""
    lines = ['| model | format | size (MB) | export (s) | verify b=1 / b=8 (s) | max abs diff b=1 / b=8 |',
             '|---|---|---|---|---|---|']
    for r in rows:
        v, d = r['verify_s'], r['max_abs_diff']
        lines.append('| %s | %s | %.1f | %.2f | %.2f / %.2f | %.2g / %.2g |' % (
            r['model'], r['format'], r['size_mb'], r['export_s'], v['1'], v['8'], d['1'], d['8']))
    return '\n'.join(lines) + '\n'


def write_table(rows) -> None:
    """Print the table and write it to results/export.md (the docs include it)."""
    text = table(rows)
    print('\n' + text)
    (HERE / 'results' / 'export.md').write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('names', nargs='*', default=list(NETWORKS))
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--table', action='store_true', help='only rewrite results/export.md from the last run of '
                                                        'each network and format in results/export.jsonl')
    args = p.parse_args()
    results = HERE / 'results' / 'export.jsonl'
    if args.table:
        last = {}
        for line in results.read_text().splitlines():
            row = json.loads(line)
            last[row['model'], row['format']] = row
        write_table(list(last.values()))
        return
    results.parent.mkdir(exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.names:
            shape = NETWORKS[name]
            net = build(name, shape, args.seed)
            for fmt in ('symbol', 'onnx'):
                start = time.perf_counter()
                files = export(net, os.path.join(tmp, name), (1,) + shape, fmt).files
                export_s = time.perf_counter() - start
                diffs, verify_s = {}, {}
                for n in BATCH_SIZES:
                    start = time.perf_counter()
                    diffs[n] = verify(net, files, (n,) + shape, seed=args.seed)
                    verify_s[n] = time.perf_counter() - start
                row = {'model': name, 'format': fmt, 'input_shape': list(shape),
                       'size_mb': round(sum(os.path.getsize(f) for f in files) / 1e6, 1),
                       'export_s': round(export_s, 2),
                       'verify_s': {str(n): round(t, 2) for n, t in verify_s.items()},
                       'max_abs_diff': {str(n): d for n, d in diffs.items()},
                       'seed': args.seed, 'cpus': len(os.sched_getaffinity(0)),
                       'omp_threads': os.environ.get('OMP_NUM_THREADS'), 'machine': platform.machine(),
                       'mxnet': mx.__version__, 'date': time.strftime('%Y-%m-%d')}
                with results.open('a') as f:
                    f.write(json.dumps(row) + '\n')
                rows.append(row)
                for path in files:
                    os.remove(path)
                print(json.dumps(row), flush=True)
    write_table(rows)

if __name__ == '__main__':
    main()
