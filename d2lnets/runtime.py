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
import importlib.util
import os
import sys
import warnings
from typing import Dict, List

from .io import usable_cores


# --- What MXNet 1.9.1 imports from older numpy and Python (issue 18) --------
# MXNet 1.9.1 (2022, the last release) uses ``numpy.bool`` -- at import, in
# mxnet/numpy/utils.py, and when indexing with booleans -- an alias of the
# builtin ``bool`` that numpy 1.24 removed; its other removed aliases appear
# only in MXNet's own test helpers. It imports ``distutils.version`` at import,
# which Python 3.12 removed; setuptools carries a copy. Both are given back,
# as the same objects older numpy and Python had, before mxnet is imported.
MXNET_BEFORE_D2LNETS = (
    'mxnet was imported before d2lnets and failed: MXNet 1.9.1 needs numpy.bool (gone since numpy 1.24) and '
    'distutils (gone since Python 3.12), which d2lnets gives back. Restart Python (in Jupyter: Kernel > Restart) '
    'and import d2lnets before mxnet.')


def _distutils_on_demand() -> bool:
    """Whether setuptools' .pth file set up distutils to load when imported.

    Asking importlib for distutils then would import all of setuptools
    (70 ms), for every ``import d2lnets``, even where MXNet is not used.
    """
    return '_distutils_hack' in sys.modules and os.environ.get('SETUPTOOLS_USE_DISTUTILS', 'local') == 'local'


def mxnet_compat() -> List[str]:
    """Give MXNet 1.9.1 what it needs from numpy<1.24 and Python<3.12; return
    the names added (none where numpy and Python still have them).

    Raises ImportError (one line) when an import of ``mxnet`` before
    d2lnets already failed for want of them: only a new process recovers.
    """
    if 'mxnet' not in sys.modules and any(name.startswith('mxnet.') for name in sys.modules):
        raise ImportError(MXNET_BEFORE_D2LNETS)
    added = []
    try:
        import numpy
    except ImportError:  # MXNet's own import says numpy is missing
        return added
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # numpy 1.20-1.23 warn on the alias, and still have it
        try:
            numpy.bool
        except AttributeError:
            numpy.bool = bool
            added.append('numpy.bool')
    if sys.version_info >= (3, 12) and not _distutils_on_demand() and importlib.util.find_spec('distutils') is None:
        # Python skipped setuptools' .pth file (python -S, an embedded
        # interpreter): importing setuptools provides distutils as well.
        try:
            import setuptools  # noqa: F401
        except ImportError:
            pass
        if importlib.util.find_spec('distutils') is None:
            raise ImportError('MXNet 1.9.1 needs distutils, which Python %d.%d no longer has and setuptools '
                              'provides: pip install setuptools, and leave SETUPTOOLS_USE_DISTUTILS unset'
                              % sys.version_info[:2])
        added.append('distutils')
    return added


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
    if 'mxnet' not in sys.modules:
        check_environment()
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


# --- The environment read defensively (issue 19, principle 6) ---------------
# MXNet 1.9.1 parses these with dmlc::GetEnv when it loads or at its first
# operation and aborts the process (dmlc::ParamError, a C++ terminate) on a
# value it cannot parse; measured one by one with the value 'abc' in
# benchmarks/results/mxnet_env_abort.txt. Each is checked before mxnet is
# imported; a bad value is removed (MXNet's default applies) with a warning.
MXNET_INT_VARIABLES = (
    'MXNET_CPU_WORKER_NTHREADS', 'MXNET_DISABLE_MKLDNN_CONV_OPT', 'MXNET_DISABLE_MKLDNN_FC_OPT',
    'MXNET_DISABLE_MKLDNN_FUSE_CONV_BN', 'MXNET_DISABLE_MKLDNN_FUSE_CONV_RELU', 'MXNET_DISABLE_MKLDNN_FUSE_CONV_SUM',
    'MXNET_DISABLE_MKLDNN_TRANSFORMER_OPT', 'MXNET_EXEC_BULK_EXEC_MAX_NODE_TRAIN',
    'MXNET_EXEC_BULK_EXEC_MAX_NODE_TRAIN_BWD', 'MXNET_EXEC_BULK_EXEC_MAX_NODE_TRAIN_FWD',
    'MXNET_MP_OPENCV_NUM_THREADS', 'MXNET_MP_WORKER_NTHREADS', 'MXNET_OMP_MAX_THREADS', 'MXNET_PROFILER_AUTOSTART',
    'MXNET_PROFILER_MODE', 'MXNET_USE_NUM_CORES_OPERATOR_TUNING')
MXNET_BOOL_VARIABLES = (
    'MXNET_DISABLE_MKLDNN_FUSE_FC_ELTWISE', 'MXNET_DISABLE_MKLDNN_QEM_FLOAT_OUTPUT',
    'MXNET_DISABLE_MKLDNN_QEM_FUSE_ALL', 'MXNET_DISABLE_MKLDNN_QFC_FLOAT_OUTPUT', 'MXNET_DISABLE_MKLDNN_QFC_FUSE_ALL',
    'MXNET_DISABLE_MKLDNN_QTRANSFORMER_FLOAT_OUTPUT', 'MXNET_DISABLE_MKLDNN_QTRANSFORMER_FUSE_ALL',
    'MXNET_KVSTORE_LOGTREE', 'MXNET_MKLDNN_ENABLED', 'MXNET_OUTPUT_TUNING_DATA', 'MXNET_VERBOSE_TUNING_INFO')
MXNET_FLOAT_VARIABLES = ('MXNET_TUNING_WEIGHT_SCALE',)
# Thread counts whose value 0 or less hangs MXNet's threaded engine.
_AT_LEAST_ONE = ('MXNET_CPU_WORKER_NTHREADS', 'MXNET_OMP_MAX_THREADS')
ENGINES = ('NaiveEngine', 'ThreadedEngine', 'ThreadedEnginePerDevice')
# The most OpenMP threads accepted: 32768 makes libgomp fail and 100000 crash
# MXNet here, while no CPU MXNet runs on has more than 1024 hardware threads.
MAX_OMP_THREADS = 1024


class EnvironmentWarning(UserWarning):
    """A variable of the environment MXNet would abort or hang on, corrected by d2lnets."""


def _int_text(value: str) -> bool:
    # ASCII digits only: str.isdigit() also takes '２' (fullwidth), which MXNet refuses.
    text = value[1:] if value.startswith('-') else value
    return text.isascii() and text.isdigit() and -2 ** 31 <= int(value) < 2 ** 31


def _float_text(value: str) -> bool:
    import math
    try:
        return value.isascii() and math.isfinite(float(value))
    except ValueError:
        return False


def _problem(name: str, value: str) -> str:
    """Why MXNet cannot take ``value`` for ``name`` ('' if it can)."""
    if name == 'OMP_NUM_THREADS':
        if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_OMP_THREADS:
            return 'is not a whole number of threads from 1 to %d' % MAX_OMP_THREADS
    elif name == 'MXNET_ENGINE_TYPE':
        if value not in ENGINES:
            return 'is not one of MXNet\'s engines (%s)' % ', '.join(ENGINES)
    elif name in MXNET_INT_VARIABLES:
        if not _int_text(value):
            return 'is not a whole number'
        if name in _AT_LEAST_ONE and int(value) < 1:
            return 'is not a count of at least 1 (MXNet waits forever with no threads)'
    elif name in MXNET_BOOL_VARIABLES:
        if value.strip().lower() not in ('0', '1', 'true', 'false'):
            return 'is not 0 or 1'
    elif name in MXNET_FLOAT_VARIABLES and not _float_text(value):
        return 'is not a finite number'
    return ''


def check_environment() -> Dict[str, str]:
    """Correct each variable MXNet would abort or hang on, before ``mxnet``
    is imported; return ``{name: what it was}`` of those corrected.

    ``OMP_NUM_THREADS`` and ``MXNET_ENGINE_TYPE`` get d2lnets' default, the
    other variables are removed (MXNet's default applies); each correction is
    one :class:`EnvironmentWarning` saying what was wrong and how to fix it.
    """
    names = ('OMP_NUM_THREADS', 'MXNET_ENGINE_TYPE') + MXNET_INT_VARIABLES + MXNET_BOOL_VARIABLES + \
        MXNET_FLOAT_VARIABLES
    corrected = {}
    for name in names:
        value = os.environ.get(name)
        why = _problem(name, value) if value is not None else ''
        if not why:
            continue
        corrected[name] = value
        default = default_settings().get(name)
        if default is None:
            del os.environ[name]
            using = "MXNet's default"
        else:
            os.environ[name] = default
            _applied[name] = default
            using = default
        # warn_explicit without a source line: the warning is one line, also from the CLI.
        warnings.warn_explicit('%s=%r %s; d2lnets uses %s instead (set it so, or unset it)'
                               % (name, value[:40], why, using), EnvironmentWarning, 'd2lnets', 0)
    return corrected
