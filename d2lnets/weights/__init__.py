"""Weights shipped inside the package, each with a manifest.

``<name>.json`` describes ``<file>``: its sha1, the recipe it was trained with,
its test accuracy, the date, and the fields of a run's ``meta.json`` (input
shape, classes, normalization) that anything using the weights needs.
"""
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..io import sha1sum

__all__ = ['shipped_models', 'manifest', 'params_path', 'load_shipped', 'sha1sum']

WEIGHTS_DIR = Path(__file__).resolve().parent


def shipped_models() -> List[str]:
    """Model names with shipped weights."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob('*.json'))


def manifest(name: str) -> Dict[str, Any]:
    """The manifest of ``name``'s shipped weights; ``ValueError`` if there are none."""
    path = WEIGHTS_DIR / ('%s.json' % name)
    if not isinstance(name, str) or not path.is_file():
        raise ValueError('no Fashion-MNIST weights are shipped for %r; d2lnets ships them for: %s'
                         % (name, ', '.join(shipped_models()) or 'none'))
    return json.loads(path.read_text())


def params_path(name: str) -> Path:
    """The shipped parameter file of ``name``, after checking its sha1."""
    info = manifest(name)
    path = WEIGHTS_DIR / info['file']
    if not path.is_file():
        raise ValueError('the shipped weights %s are missing: the installation of d2lnets is damaged; '
                         'reinstall it' % path)
    digest = sha1sum(path)
    if digest != info['sha1']:
        raise ValueError('the shipped weights %s have sha1 %s, their manifest says %s: the file is damaged; '
                         'reinstall d2lnets' % (path, digest, info['sha1']))
    return path


def load_shipped(name: str, net, ctx: Optional[Any] = None):
    """Load ``name``'s shipped weights into ``net`` (all of them, shapes
    checked) and return ``net``."""
    import mxnet as mx
    path = params_path(name)
    try:
        net.load_parameters(str(path), ctx=ctx or mx.cpu())
    except (AssertionError, mx.base.MXNetError) as err:
        raise ValueError('the shipped weights of %r do not fit this network (was it built with other '
                         'arguments than %s?): %s' % (name, manifest(name).get('model_kwargs', {}),
                                                     str(err).strip().splitlines()[0])) from None
    return net
