"""Training throughput across hosts: `d2lnets launch --hosts` over network
namespaces (one per worker, one for the scheduler and the server), against one
process without a parameter server. Root only (it makes the namespaces).

    python benchmarks/launch_hosts.py [--workers 1 2 4] [--models lenet alexnet]

All processes share this machine's cores: with 2 cores the point is the
parameter server's overhead per step and its traffic (bytes each worker's
interface sent and received per step, against 4 bytes x the parameter count),
not a speed-up. Appends JSON lines to benchmarks/results/launch_hosts.jsonl.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / 'tests'))
from proctools import Hosts  # noqa: E402

WORKER = str(HERE / 'launch_hosts_worker.py')
BATCH = {'lenet': 256, 'alexnet': 16}
STEPS = {'lenet': 20, 'alexnet': 3}


def rows(stdout):
    return [json.loads(line.split('] ', 1)[1]) for line in stdout.splitlines()
            if line.startswith('[') and '] {' in line]


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--workers', type=int, nargs='+', default=[1, 2, 4])
    p.add_argument('--models', nargs='+', default=['lenet', 'alexnet'])
    a = p.parse_args()
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    out = open(HERE / 'results' / 'launch_hosts.jsonl', 'a')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    for model in a.models:
        base = subprocess.run([sys.executable, WORKER, model, str(BATCH[model]), str(STEPS[model]), 'local'],
                              capture_output=True, text=True, env=env, check=True)
        single = json.loads(base.stdout.strip().splitlines()[-1])
        for n in a.workers:
            hosts = Hosts(n + 1).create()
            try:
                path = HERE / 'runs' / ('hosts-%s' % stamp)
                path.parent.mkdir(exist_ok=True)
                path.write_text('%s 0\n' % hosts.addresses[0] + ''.join(h + '\n' for h in hosts.addresses[1:]))
                proc = subprocess.run([sys.executable, '-m', 'd2lnets', 'launch', '--hosts', str(path), '-n', str(n),
                                       '--remote', hosts.template, '--timeout', '1800', '--', sys.executable, WORKER,
                                       model, str(BATCH[model]), str(STEPS[model]), 'dist_sync'],
                                      capture_output=True, text=True, env=env)
            finally:
                hosts.remove()
            if proc.returncode:
                sys.exit(proc.stdout + proc.stderr)
            workers = rows(proc.stdout)
            row = dict(date=stamp, model=model, workers=n, batch_per_worker=BATCH[model], steps=STEPS[model],
                       omp_threads=1, cores=os.cpu_count(), load_average=[round(x, 2) for x in os.getloadavg()],
                       params=single['params'], param_bytes=single['param_bytes'],
                       one_process_seconds_per_step=round(single['seconds_per_step'], 4),
                       seconds_per_step=round(max(w['seconds_per_step'] for w in workers), 4),
                       total_examples_per_sec=round(sum(w['examples_per_sec'] for w in workers), 1),
                       one_process_examples_per_sec=round(single['examples_per_sec'], 1),
                       sent_per_step=[round(w['sent_per_step']) for w in workers],
                       received_per_step=[round(w['received_per_step']) for w in workers])
            out.write(json.dumps(row) + '\n')
            out.flush()
            print(json.dumps(row), flush=True)


if __name__ == '__main__':
    main()
