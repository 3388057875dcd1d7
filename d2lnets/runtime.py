"""Process-wide MXNet settings, applied before ``mxnet`` is imported.

MXNet reads these once, when it is first imported. ``import d2lnets`` (and
the CLI, first thing) sets d2lnets' defaults for the variables the user has
not set, and warns once when ``mxnet`` was imported before, too late for them.

The defaults, and why (measured in benchmarks/, see docs/performance.md):

``OMP_NUM_THREADS`` = the cores this process may use
    Left unset, MXNet computes on one thread here; the big networks lose
    about a third of their speed.
``GOMP_SPINCOUNT`` = ``1000``
    How long an OpenMP thread that finished its share spins before it sleeps
    (MXNet's wheels use GNU OpenMP; its default spins about 300,000 times).
    Spinning long pays when every core is free, and stalls every parallel
    region when another program -- a browser, a second notebook -- holds a
    core. Measured on 2 cores, LeNet training, images/s: idle machine 12,300
    (default) / 9,300 (1000) / 5,700 (``OMP_WAIT_POLICY=PASSIVE``); busy
    machine 1,150 / 3,600 / 4,100: short spinning keeps most of both.
``MXNET_ENGINE_TYPE`` = ``NaiveEngine`` (CPU-only MXNet builds)
    MXNet's threaded engine runs operators on its own worker threads, which
    compete with the OpenMP threads doing the arithmetic; on a laptop's few
    cores the synchronous engine trains LeNet about 1.5x faster and the big
    networks as fast. A GPU build (``mxnet-cu*``) keeps the threaded engine,
    which overlaps the GPU's work with Python's.
"""
import importlib.metadata
import os
import sys
import warnings
from typing import Dict

from .io import usable_cores

_warned = False
# What apply_defaults set in this process: d2lnets' choice, not the user's.
_applied: Dict[str, str] = {}


def _gpu_build_installed() -> bool:
    """Whether a CUDA build of MXNet (``mxnet-cu112`` ...) is installed; read
    from the installed distributions, without importing ``mxnet``."""
    for dist in importlib.metadata.distributions():
        name = (dist.metadata['Name'] or '').lower().replace('_', '-')
        if name.startswith('mxnet-cu'):
            return True
    return False


def default_settings() -> Dict[str, str]:
    """The environment d2lnets runs MXNet with, unless the user set otherwise."""
    settings = {'OMP_NUM_THREADS': str(usable_cores()), 'GOMP_SPINCOUNT': '1000'}
    if not _gpu_build_installed():
        settings['MXNET_ENGINE_TYPE'] = 'NaiveEngine'
    return settings


def apply_defaults() -> Dict[str, str]:
    """Set each default the user has not set; return what was set.

    Only effective before ``mxnet`` is imported; after, it changes nothing
    and warns once if a default would have been applied.
    """
    global _warned
    missing = {k: v for k, v in default_settings().items() if k not in os.environ}
    if not missing:
        return {}
    if 'mxnet' in sys.modules:
        if not _warned:
            _warned = True
            warnings.warn('mxnet was imported before d2lnets, so d2lnets could not set %s; import '
                          'd2lnets first (or set them yourself before importing mxnet)'
                          % ', '.join('%s=%s' % kv for kv in sorted(missing.items())), stacklevel=3)
        return {}
    os.environ.update(missing)
    _applied.update(missing)
    return missing


def set_by_user(name: str) -> bool:
    """Whether the environment variable ``name`` is the user's choice (set, and
    not by :func:`apply_defaults`): a launcher shares the cores among its
    workers unless the user chose the threads."""
    return name in os.environ and _applied.get(name) != os.environ[name]


_engine_started = False


def start_engine_quietly() -> None:
    """Start MXNet's engine without its log line.

    MXNet logs ``MXNet start using engine: NaiveEngine`` to the process's
    standard error when the engine type is set, which would stand before
    every error message of the CLI and in every notebook. This creates the
    engine (it starts at the first operation) with that line silenced, if
    the engine is d2lnets' default; otherwise it leaves MXNet as it is.
    """
    global _engine_started
    if _engine_started:
        return
    _engine_started = True
    if os.environ.get('MXNET_ENGINE_TYPE') != default_settings().get('MXNET_ENGINE_TYPE'):
        return
    import mxnet as mx
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, 'w') as null:
            os.dup2(null.fileno(), 2)
            try:
                mx.nd.zeros((1,)).wait_to_read()
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
