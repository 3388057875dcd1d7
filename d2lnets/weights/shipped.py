"""Weights shipped inside the package, each with its manifest.

``<stem>.json`` beside ``<stem>.params`` is the ``meta.json`` of the run that
made the file (see :mod:`.meta`), with the file's sha1, its test accuracy, the
date and how it was chosen. MXNet is not imported here.
"""
import json
from pathlib import Path
from typing import Any, Dict

from ..io import sha1sum
from . import WEIGHTS_DIR, Weights
from .meta import validate

__all__ = ['manifest_path', 'manifest_for', 'params_path']


def manifest_path(weights: Weights) -> Path:
    """The manifest beside a shipped file: same name, ``.json``."""
    return WEIGHTS_DIR / (Path(weights.file).stem + '.json')


def manifest_for(weights: Weights) -> Dict[str, Any]:
    """The validated manifest of shipped ``weights``."""
    path = manifest_path(weights)
    if not path.is_file():
        raise ValueError('the manifest %s is missing: the installation of d2lnets is damaged; reinstall it' % path)
    return validate(json.loads(path.read_text()), str(path), required=('model', 'classes', 'input_shape', 'dataset'))


def params_path(weights: Weights) -> Path:
    """The shipped parameter file of ``weights``, after checking its sha1."""
    path = WEIGHTS_DIR / weights.file
    if not path.is_file():
        raise ValueError('the shipped weights %s are missing: the installation of d2lnets is damaged; '
                         'reinstall it' % path)
    digest = sha1sum(path)
    if digest != weights.sha1:
        raise ValueError('the shipped weights %s have sha1 %s, the registry says %s: the file is damaged; '
                         'reinstall d2lnets' % (path, digest, weights.sha1))
    return path
