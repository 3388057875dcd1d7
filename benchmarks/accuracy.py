"""The lecture's recipe on the real Fashion-MNIST, several seeds: test accuracy
after 5 and 10 epochs, epoch time and examples/sec.

    python -m benchmarks.accuracy lenet --seeds 0 1 2          # the LeNet record (CPU: ~6 min)
    python -m benchmarks.accuracy alexnet --seeds 0 --ctx gpu  # the full recipe on a GPU

Every epoch reseeds from (seed, epoch) and SGD's learning rate is constant, so
epoch 5 of a 10-epoch run is exactly a 5-epoch run: one run gives both lengths.
Each run's directory goes to benchmarks/runs/ (not committed); the results are
appended to benchmarks/results/accuracy.jsonl, one JSON line per run.
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

import d2lnets  # noqa: E402  (first: sets OMP_NUM_THREADS before mxnet is imported)
from d2lnets.training.runs import train_run  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('name')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--limit', type=int, help='first N training and test examples only')
    p.add_argument('--resize', type=int)
    p.add_argument('--batch-size', type=int)
    p.add_argument('--ctx')
    p.add_argument('--note', default='', help='recorded with the result (what was cut, and why)')
    args = p.parse_args()
    results = HERE / 'results'
    results.mkdir(exist_ok=True)
    for seed in args.seeds:
        out = HERE / 'runs' / ('%s-seed%d-%s' % (args.name, seed, time.strftime('%Y%m%d-%H%M%S')))
        history, out = train_run(args.name, out, epochs=args.epochs, seed=seed, limit=args.limit,
                                 resize=args.resize, batch_size=args.batch_size, ctx=args.ctx,
                                 progress=False, command=sys.argv)
        meta = json.loads((out / 'meta.json').read_text())
        record = {
            'model': args.name, 'seed': seed, 'epochs': len(history), 'recipe': meta['recipe'],
            'resize': meta['resize'], 'test_acc': history.test_acc, 'loss': history.loss,
            'train_acc': history.train_acc, 'seconds': history.seconds,
            'examples_per_sec': history.examples_per_sec, 'run': str(out.relative_to(HERE)),
            'machine': '%s, %d cores, OMP_NUM_THREADS=%s, mxnet %s' % (
                platform.machine(), len(os.sched_getaffinity(0)), os.environ.get('OMP_NUM_THREADS'),
                meta['mxnet_version']),
            'date': time.strftime('%Y-%m-%d'), 'note': args.note,
        }
        with open(results / 'accuracy.jsonl', 'a') as f:
            f.write(json.dumps(record) + '\n')


if __name__ == '__main__':
    main()
