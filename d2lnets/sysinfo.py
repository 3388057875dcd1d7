"""What a student reports when something is slow or missing (``d2lnets info``).

:func:`gather` returns a dict: versions (d2lnets, MXNet, Python), the CPU
(model, instruction set, cores, OpenMP threads), MXNet's engine, d2lnets'
fused kernels (variant, where cached, or why not), the GPUs MXNet sees, where
Fashion-MNIST was found, and GluonCV's weight cache with the files it holds.
:func:`format_info` turns it into aligned text. Nothing is built, downloaded
or written; without MXNet the rest is still reported.

The CPU's description (``cpu_model``, ``cpu_flags``) is :mod:`d2lnets.io`'s,
read from ``/proc/cpuinfo`` without importing MXNet; :mod:`d2lnets.perf.kernels_build`
chooses its kernel variant from it.
"""
import importlib.util
import os
import platform
from pathlib import Path
from typing import Any, Dict, List

from ._version import __version__
from .io import cpu_model, usable_cores


def _cores() -> Dict[str, Any]:
    usable = usable_cores()
    from .runtime import default_settings, set_by_user
    default = default_settings()['OMP_NUM_THREADS']
    return {'logical': os.cpu_count(), 'usable': usable,
            'omp_threads': int(os.environ.get('OMP_NUM_THREADS', default)),
            'omp_threads_from': 'OMP_NUM_THREADS' if set_by_user('OMP_NUM_THREADS') else "d2lnets' default"}


def _weights(folders: List[Path]) -> List[Dict[str, Any]]:
    out = []
    for folder in folders:
        files = sorted(p for p in folder.glob('*.params') if p.is_file()) if folder.is_dir() else []
        out.append({'folder': str(folder), 'exists': folder.is_dir(),
                    'files': [{'name': p.name, 'mb': round(p.stat().st_size / 2 ** 20, 1)} for p in files]})
    return out


def gather() -> Dict[str, Any]:
    """This installation and machine, as a JSON-ready dict (see the module's docstring)."""
    from .data import candidate_dirs, locate
    info: Dict[str, Any] = {
        'd2lnets': __version__,
        'python': '%s (%s)' % (platform.python_version(), platform.python_implementation()),
        'mxnet': None,
        'cpu': {'model': cpu_model(), 'machine': platform.machine(), **_cores()},
        'engine': os.environ.get('MXNET_ENGINE_TYPE', "MXNet's default (ThreadedEnginePerDevice)"),
        'fused': None, 'gpus': None,
        'fashion_mnist': None, 'fashion_mnist_searched': [str(p) for p in candidate_dirs('fashion-mnist')],
        'gluoncv_cache': None,
    }
    found = locate('fashion-mnist')
    info['fashion_mnist'] = str(found) if found else None
    if importlib.util.find_spec('mxnet') is None:
        info['mxnet'] = 'not installed (pip install mxnet==1.9.1, or make setup)'
        info['cpu']['instruction_set'] = None
        return info
    from .runtime import start_engine_quietly
    start_engine_quietly()
    import mxnet as mx
    from .perf import kernels_build
    from .weights import zoo
    info['mxnet'] = mx.__version__
    try:
        features = mx.runtime.Features()
        info['mxnet_features'] = sorted(f for f in ('MKLDNN', 'OPENMP', 'CUDA', 'CUDNN', 'BLAS_OPEN', 'BLAS_MKL')
                                        if features.is_enabled(f))
    except Exception:  # an MXNet without its feature list: say nothing about it
        info['mxnet_features'] = []
    info['cpu']['instruction_set'] = kernels_build.instruction_set()
    info['cpu']['kernel_variants'] = kernels_build.runnable_variants()
    info['fused'] = kernels_build.status()
    try:
        info['gpus'] = mx.context.num_gpus()
    except mx.base.MXNetError:
        info['gpus'] = 0
    info['gluoncv_cache'] = _weights(zoo.cache_dirs())
    return info


def _fused_line(st: Dict[str, Any]) -> str:
    if st['variant'] is None or st['mode'] == '0' or st['problem'] and not st['cached']:
        why = st['problem'] or ('off (D2LNETS_FUSED=0)' if st['mode'] == '0' else 'none for this CPU')
        return "MXNet's layers: %s" % why
    where = ('cached: %s' % st['library']) if st['cached'] else ('built at first use into %s' % st['library'])
    return '%s variant, D2LNETS_FUSED=%s, %s' % (st['variant'], st['mode'], where)


def format_info(info: Dict[str, Any]) -> str:
    """``info`` (from :func:`gather`) as aligned ``name: value`` lines."""
    cpu = info['cpu']
    rows = [('d2lnets', info['d2lnets']), ('MXNet', info['mxnet'] + (
                ' (%s)' % ', '.join(info['mxnet_features']) if info.get('mxnet_features') else '')),
            ('Python', info['python']),
            ('CPU', '%s (%s)' % (cpu['model'], cpu.get('instruction_set') or cpu['machine'])),
            ('cores', '%s usable of %s; OpenMP threads %s (%s)' % (cpu['usable'], cpu['logical'],
                                                                   cpu['omp_threads'], cpu['omp_threads_from'])),
            ('engine', info['engine'])]
    if info['fused'] is not None:
        rows.append(('fused kernels', _fused_line(info['fused'])))
        choices = info['fused'].get('choices', {})
        if choices:
            kept = sum(1 for c in choices.values() if not c['fused'])
            rows.append(('', 'measured choices cached: %d, of which %d keep MXNet\'s layers (--json lists them)'
                         % (len(choices), kept)))
    if info['gpus'] is not None:
        rows.append(('GPUs', str(info['gpus']) if info['gpus'] else 'none (CPU build, or no GPU)'))
    rows.append(('Fashion-MNIST', info['fashion_mnist'] or 'not found; searched %s'
                 % ', '.join(info['fashion_mnist_searched'])))
    for i, cache in enumerate(info['gluoncv_cache'] or []):
        files = ', '.join('%s (%.1f MB)' % (f['name'], f['mb']) for f in cache['files'])
        rows.append(('GluonCV weights' if i == 0 else '', '%s: %s' % (
            cache['folder'], files or ('no .params files' if cache['exists'] else 'no such folder'))))
    width = max(len(k) for k, _ in rows) + 1
    return '\n'.join(('%s:' % k if k else '').ljust(width) + ' ' + v for k, v in rows)
