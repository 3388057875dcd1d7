"""Weights shipped inside the package, each with its manifest.

``<stem>.json`` beside ``<stem>.params`` is the ``meta.json`` of the run that
made the file (see :mod:`.meta`), with the file's sha1, its test accuracy, the
date and how it was chosen. MXNet is not imported here, nor the package
(:class:`d2lnets.weights.Weights` imports this module).
"""
import json
from pathlib import Path
from typing import Any, Dict

from ..io import sha1sum
from .meta import validate

__all__ = ['manifest_path', 'manifest_for', 'params_path']

# This folder: d2lnets.weights.WEIGHTS_DIR, not imported from the package, whose
# Weights.path and Weights.meta import this module (an import cycle otherwise).
WEIGHTS_DIR = Path(__file__).resolve().parent
# `weights` below: a d2lnets.weights.Weights of source 'shipped' (its file and sha1 are read).
Weights = Any


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
