"""Process-wide MXNet settings, applied before ``mxnet`` is imported.

MXNet reads ``OMP_NUM_THREADS`` once, when it is first imported; left unset
on this kind of machine it computes on one thread. ``import d2lnets`` (and
the CLI, first thing) sets d2lnets' defaults for the variables the user has
not set, and warns once when ``mxnet`` was imported before, too late for them.
"""
import os
import sys
import warnings
from typing import Dict

_warned = False


def default_settings() -> Dict[str, str]:
    """The environment d2lnets runs MXNet with, unless the user set otherwise."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)
    return {'OMP_NUM_THREADS': str(cores)}


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
    return missing
