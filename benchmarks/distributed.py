"""Throughput of LeNet training: one process against 2 workers + 1 server of
MXNet's parameter server on this host (`d2lnets launch`), same global batch.

    python -m benchmarks.distributed [--limit 12800] [--batch 256]

Appends one JSON line to benchmarks/results/distributed.jsonl and prints it.
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(command, env):
    start = time.time()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(proc.stdout + proc.stderr)
    rates = [float(x) for x in re.findall(r'([\d.]+) examples/sec', proc.stdout)]
    return time.time() - start, rates, proc.stdout


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--limit', type=int, default=12800)
    p.add_argument('--batch', type=int, default=256, help='the global batch')
    p.add_argument('--epochs', type=int, default=2)
    a = p.parse_args()
    train = [sys.executable, '-m', 'd2lnets', 'train', 'lenet', '--epochs', str(a.epochs), '--limit', str(a.limit),
             '--seed', '1', '--out']
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    out = HERE / 'runs'
    env = dict(os.environ)
    single_s, single_rates, _ = run(train + [str(out / ('dist-single-' + stamp)), '--batch-size', str(a.batch)],
                                    dict(env, OMP_NUM_THREADS='2'))
    dist_s, dist_rates, text = run([sys.executable, '-m', 'd2lnets', 'launch', '-n', '2', '-s', '1', '--']
                                   + train + [str(out / ('dist-2w-' + stamp)), '--batch-size', str(a.batch // 2),
                                              '--kvstore', 'dist_sync'], env)
    load = os.getloadavg()
    row = dict(date=stamp, limit=a.limit, global_batch=a.batch, epochs=a.epochs, cores=os.cpu_count(),
               load_average_after=[round(x, 2) for x in load],
               single_examples_per_sec=single_rates[-1], single_wall_s=round(single_s, 1),
               workers=2, per_worker_examples_per_sec=dist_rates,
               total_examples_per_sec=round(sum(dist_rates), 1), dist_wall_s=round(dist_s, 1))
    with open(HERE / 'results' / 'distributed.jsonl', 'a') as f:
        f.write(json.dumps(row) + '\n')
    print(json.dumps(row, indent=1))


if __name__ == '__main__':
    main()
