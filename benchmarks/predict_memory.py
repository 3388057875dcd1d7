"""Peak memory of `d2lnets predict` over many files: it should follow the batch, not the number of files.

    python -m benchmarks.predict_memory                       # 100 and 2000 photos, this tree
    python -m benchmarks.predict_memory --tree /tmp/before    # the same with another checkout's d2lnets

Each count runs `d2lnets predict lenet --pretrained FILE...` in a fresh process of its own (output
thrown away), which reports its peak resident set (``resource.getrusage(RUSAGE_SELF).ru_maxrss``)
when it ends. The files are product photos as `d2lnets predict` expects them: 300 x 400 JPEGs, a
Fashion-MNIST test item enlarged 8x on a light background (each decodes to 120 KB of grayscale and
is brought to Fashion-MNIST's form). The result is appended to benchmarks/results/predict_memory.txt
with the CPU (lscpu's model name, the widest vector instructions), Python and the load average.
"""
import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / 'results' / 'predict_memory.txt'
COUNTS = (100, 2000)
# Runs in the measured process: the CLI, then its own peak resident set in KiB (Linux's unit).
CHILD = ('import resource, sys\n'
         'from d2lnets.cli import main\n'
         'code = main(sys.argv[1:])\n'
         'print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n'
         'sys.exit(code)')


def cpu() -> str:
    """lscpu's model name and the widest vector instruction set the CPU has."""
    model = 'unknown CPU'
    try:
        for line in subprocess.run(['lscpu'], capture_output=True, text=True, timeout=10).stdout.splitlines():
            if line.startswith('Model name:'):
                model = line.split(':', 1)[1].strip()
    except OSError:
        pass
    flags = ''
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('flags'):
                flags = line.split(':', 1)[1].split()
                break
    isa = next((name for flag, name in (('avx512f', 'AVX-512'), ('avx2', 'AVX2'), ('sse4_2', 'SSE4.2'))
                if flag in flags), 'no AVX')
    return '%s, %s, %d cores' % (model, isa, os.cpu_count() or 0)


def photos(folder: Path, count: int):
    """``count`` 300 x 400 JPEG product photos made from Fashion-MNIST test items."""
    import numpy as np
    from PIL import Image
    from d2lnets.data import load_arrays
    images, _ = load_arrays('fashion-mnist', train=False, download=False)
    paths = []
    for i in range(count):
        photo = np.full((300, 400), 255, np.uint8)
        photo[40:264, 100:324] = np.asarray(Image.fromarray(255 - images[i % len(images)]).resize((224, 224)))
        paths.append(str(folder / ('photo%04d.jpg' % i)))
        Image.fromarray(photo).save(paths[-1], quality=90)
    return paths


def peak_rss_kib(paths, tree=None) -> int:
    env = dict(os.environ)
    if tree:
        env['PYTHONPATH'] = str(tree)
    proc = subprocess.run([sys.executable, '-c', CHILD, 'predict', 'lenet', '--pretrained', *paths],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                          cwd=tree or None, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit('predict failed: %s' % proc.stderr.strip()[-500:])
    return int(proc.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tree', default=None, help="a checkout whose d2lnets to measure (default: this one's)")
    parser.add_argument('--counts', type=int, nargs='+', default=list(COUNTS))
    parser.add_argument('--label', default=None, help='what the measured code is (default: its git commit)')
    args = parser.parse_args()
    tree = Path(args.tree).resolve() if args.tree else None
    label = args.label or subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=tree or HERE,
                                         capture_output=True, text=True).stdout.strip() or 'unknown'
    with tempfile.TemporaryDirectory() as tmp:
        paths = photos(Path(tmp), max(args.counts))
        rows = []
        for count in args.counts:
            start = time.perf_counter()
            rss = peak_rss_kib(paths[:count], tree)
            rows.append('  %5d images: peak RSS %7.1f MiB, %5.1f s' % (count, rss / 1024, time.perf_counter() - start))
            print(rows[-1], flush=True)
    text = ('%s  d2lnets %s  (%s; Python %s; load %.1f)\n'
            '  predict lenet --pretrained, 300 x 400 JPEG photos, a fresh process per count\n%s\n\n'
            % (time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), label, cpu(), platform.python_version(),
               os.getloadavg()[0], '\n'.join(rows)))
    with open(RESULTS, 'a') as f:
        f.write(text)
    print(text, end='')


if __name__ == '__main__':
    main()
