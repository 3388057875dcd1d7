"""d2lnets (MXNet) against PyTorch eager on this machine, same networks, same run.

Three configurations, each network and mode in a fresh process, alternated
round by round so that a busy machine slows all of them alike:

- ``mxnet-before``: the foundation's settings (threaded engine, OpenMP's
  default wait policy, plain ``hybridize()``);
- ``mxnet``: d2lnets' defaults (see docs/performance.md), LeNet's training
  through d2lnets' fused operator (d2lnets/perf/fused.py);
- ``mxnet-unfused``: the same through MXNet's own layers (LeNet only, the
  one network the fused operator changes);
- ``mxnet-avx2``: on a CPU with AVX-512, the same with the fused operator's
  AVX2 variant forced (``D2LNETS_FUSED_VARIANT=avx2``), to measure what an
  AVX2 CPU gets from the same code;
- ``pytorch``: the same networks in PyTorch, eager (benchmarks/pytorch_nets.py),
  as installed;
- ``pytorch-tuned``: the same with d2lnets' OpenMP setting
  (``GOMP_SPINCOUNT``), to separate what that setting does from the rest.

Every process uses all cores (OMP_NUM_THREADS unset for PyTorch, d2lnets'
default for MXNet). Writes one run's results to
benchmarks/results/compare_pytorch-DATE-MACHINE.json and .md (MACHINE: the
CPU's family, instruction set and cores, e.g. ``epyc-avx2-2c``).

    .venv-bench/bin/python -m benchmarks.compare_pytorch            # everything (~20 min on 2 cores)
    .venv-bench/bin/python -m benchmarks.compare_pytorch --cases lenet:train:256 --rounds 5
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# network:mode:batch. Training the big networks at batch 32 (as the issue measured), inference at 64;
# the lecture's own recipes at batch 128 (memory) run for d2lnets only.
CASES = ['lenet:train:256', 'lenet:infer:256',
         'alexnet:train:32', 'alexnet:infer:64', 'nin:train:32', 'nin:infer:64',
         'vgg11_small:train:32', 'vgg11_small:infer:64', 'vgg11:train:16', 'vgg11:infer:64']
RECIPES = ['alexnet:train:128', 'vgg11_small:train:128', 'nin:train:128']


def _last_json(out: subprocess.CompletedProcess):
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


# What d2lnets sets besides the thread count (and what the foundation did not).
OPENMP = {'GOMP_SPINCOUNT': '1000'}
NOT_INHERITED = ('MXNET_ENGINE_TYPE', 'OMP_NUM_THREADS', 'OMP_WAIT_POLICY') + tuple(OPENMP)


def run_mxnet(name, mode, batch, before=False, runs=3, seconds=1.0, warmup=3, peak=True, fuse=True, variant=None):
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED + ('D2LNETS_FUSED_VARIANT',)}
    if variant:
        env['D2LNETS_FUSED_VARIANT'] = variant
    if before:
        env['MXNET_ENGINE_TYPE'] = 'ThreadedEnginePerDevice'
    # `before` runs OpenMP as the foundation did, with libgomp's default spinning (d2lnets sets
    # GOMP_SPINCOUNT at import, before mxnet, and so libgomp, is loaded: take it back out).
    code = ('import json, os, d2lnets; %s'
            'import d2lnets.perf.bench as b; ' % ("os.environ.pop('GOMP_SPINCOUNT'); " if before else '') +
            'p = b.matmul_peak() if %r else None; '
            'r = b.bench(%r, %r, %d, runs=%d, seconds_per_run=%r, warmup=%d, static=%r, peak=p, fuse=%r); '
            'print(json.dumps(r.to_dict()))' % (peak, name, mode, batch, runs, seconds, warmup, not before,
                                                fuse and not before))
    return _last_json(subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True))


def run_pytorch(name, mode, batch, runs=3, seconds=1.0, warmup=3, tuned=False):
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    if tuned:
        env.update(OPENMP)
    from d2lnets.registry import entry    # the recipe and input the d2lnets side runs with
    model = entry(name)
    cmd = [sys.executable, str(HERE / 'pytorch_nets.py'), name, '--mode', mode, '--batch-size', str(batch),
           '--lr', str(model.recipe.lr), '--input-shape', ','.join(map(str, model.input_shape[1:])),
           '--runs', str(runs), '--seconds', str(seconds), '--warmup', str(warmup)]
    return _last_json(subprocess.run(cmd, env=env, capture_output=True, text=True))


def machine():
    from d2lnets.perf import kernels_build  # first: d2lnets sets its defaults before mxnet loads (children: their own)
    from d2lnets.io import cpu_model
    import mxnet
    import torch
    cpu = cpu_model()
    return dict(cpu=cpu, instruction_set=kernels_build.instruction_set(), variants=kernels_build.runnable_variants(),
                cores=len(os.sched_getaffinity(0)), python=platform.python_version(),
                mxnet=mxnet.__version__, torch=torch.__version__,
                date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
                load_before=os.getloadavg())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--cases', nargs='*', default=CASES, help='network:mode:batch ...')
    p.add_argument('--recipes', nargs='*', default=RECIPES, help='memory runs (d2lnets only)')
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--runs', type=int, default=3, help='timed runs per process (median)')
    p.add_argument('--out', default=None, help='path without suffix (default: results/compare_pytorch-DATE-MACHINE)')
    args = p.parse_args()
    info = machine()
    args.out = args.out or str(HERE / 'results' / ('compare_pytorch-%s-%s' % (
        datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%d-%H%M'), machine_slug(info))))
    results = {}
    for rnd in range(args.rounds):
        for case in args.cases:
            name, mode, batch = case.split(':')
            # LeNet: runs of 1 s after 3 warm-up steps; the big networks: one step per run after one.
            seconds, warmup = (1.0, 3) if name == 'lenet' else (0.1, 1)
            order = ['mxnet-before', 'mxnet', 'pytorch', 'pytorch-tuned']
            if name == 'lenet':
                order.insert(1, 'mxnet-unfused')
                if 'avx512' in info['variants'] and 'avx2' in info['variants']:
                    order.insert(2, 'mxnet-avx2')
            row = results.setdefault(case, {cfg: [] for cfg in order})
            # Alternate the order each round.
            for cfg in (order if rnd % 2 == 0 else order[::-1]):
                if cfg.startswith('pytorch'):
                    r = run_pytorch(name, mode, int(batch), args.runs, seconds, warmup, cfg == 'pytorch-tuned')
                else:
                    r = run_mxnet(name, mode, int(batch), before=cfg == 'mxnet-before', runs=args.runs,
                                  seconds=seconds, warmup=warmup, fuse=cfg != 'mxnet-unfused',
                                  variant='avx2' if cfg == 'mxnet-avx2' else None)
                row[cfg].append(r)
                print('round %d %-22s %-13s %9.1f img/s' % (rnd, case, cfg, r['images_per_sec']), flush=True)
    memory = {}
    for case in args.recipes:
        name, mode, batch = case.split(':')
        memory[case] = run_mxnet(name, mode, int(batch), runs=1, seconds=0.1, warmup=1, peak=False)
        print('recipe %-22s peak RSS %.0f MiB' % (case, memory[case]['peak_rss_mb']), flush=True)
    info['load_after'] = os.getloadavg()
    Path(args.out + '.json').write_text(json.dumps(dict(machine=info, results=results, memory=memory), indent=1))
    Path(args.out + '.md').write_text(report(info, results, memory))
    print(report(info, results, memory))


def machine_slug(info):
    """e.g. 'epyc-avx2-2c': the CPU's family, instruction set and cores, for file names."""
    words = [w.lower() for w in info['cpu'].replace('(R)', '').replace('(TM)', '').split()]
    family = next((w for w in words if w in ('xeon', 'epyc', 'ryzen', 'core', 'threadripper', 'atom')),
                  words[0] if words else 'cpu')
    iset = info['instruction_set'] if info['instruction_set'] in ('avx2', 'avx512') else 'noavx2'
    return '%s-%s-%dc' % (family, iset, info['cores'])


def report(info, results, memory):
    med = lambda rs, key='images_per_sec': statistics.median(r[key] for r in rs)  # noqa: E731
    lines = ['# d2lnets (MXNet 1.9.1) vs PyTorch eager: images/sec', '',
             'Machine: %s (%s), %d cores; Python %s, MXNet %s, PyTorch %s; %s. Load average (1, 5, 15 min) '
             'before %s, after %s.' % (info['cpu'], info.get('instruction_set', '?'), info['cores'], info['python'],
                                       info['mxnet'], info['torch'],
                                       info['date'], ', '.join('%.1f' % x for x in info['load_before']),
                                       ', '.join('%.1f' % x for x in info['load_after'])),
             '',
             'Medians over rounds (each round: every configuration in a fresh process, order alternated; '
             'each process: the median of its timed runs after warm-up). `before`: threaded engine, GNU OpenMP\'s '
             'default spinning, plain `hybridize()`; `d2lnets`: the defaults (docs/performance.md). GFLOP/s from the complexity '
             'counts (training = 3 x forward); peak = fp32 matrix multiply measured in the same process; '
             '`PyTorch tuned`: PyTorch with d2lnets\' OpenMP setting (GOMP_SPINCOUNT=1000).', '',
             '`unfused`: d2lnets\' defaults through MXNet\'s own layers instead of d2lnets\' fused '
             'operator (LeNet, the only network it changes); `avx2 forced`: on an AVX-512 CPU, the fused '
             'operator\'s AVX2 variant. `blocks`: which code ran each of LeNet\'s blocks in the `d2lnets` column.',
             '',
             '| network | mode | batch | before | unfused | avx2 forced | d2lnets | PyTorch | PyTorch tuned '
             '| d2lnets / PyTorch | d2lnets / PyTorch tuned | d2lnets / before | GFLOP/s | % of peak | peak RSS MiB '
             '| blocks |',
             '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|']
    for case, row in results.items():
        name, mode, batch = case.split(':')
        before, after = med(row['mxnet-before']), med(row['mxnet'])
        torch, tuned = med(row['pytorch']), med(row['pytorch-tuned'])
        unfused = '%.1f' % med(row['mxnet-unfused']) if row.get('mxnet-unfused') else '--'
        avx2 = '%.1f' % med(row['mxnet-avx2']) if row.get('mxnet-avx2') else '--'
        blocks = sorted({r.get('kernels', '') for r in row['mxnet']})
        lines.append('| %s | %s | %s | %.1f | %s | %s | %.1f | %.1f | %.1f | %.2fx | %.2fx | %.2fx | %.1f | %.0f%% '
                     '| %.0f | %s |' % (
            name, mode, batch, before, unfused, avx2, after, torch, tuned, after / torch, after / tuned,
            after / before, med(row['mxnet'], 'gflops_per_sec'), med(row['mxnet'], 'percent_of_peak'),
            max(r['peak_rss_mb'] for r in row['mxnet']), '; '.join(b for b in blocks if b) or '--'))
    if memory:
        lines += ['', "The lecture's recipes (d2lnets defaults, training, 224x224):", '',
                  '| network | batch | images/s | peak RSS MiB |', '|---|---:|---:|---:|']
        for case, r in memory.items():
            name, _, batch = case.split(':')
            lines.append('| %s | %s | %.1f | %.0f |' % (name, batch, r['images_per_sec'], r['peak_rss_mb']))
    return '\n'.join(lines) + '\n'


if __name__ == '__main__':
    main()
