"""``meta.json``: what a weights file was trained on, one schema for every reader.

``d2lnets train`` writes it beside ``model.params``; the shipped weights'
manifests and the metadata stored in ONNX files have the same fields. Every
reader and writer goes through :func:`validate`, so a damaged or hand-edited
file gives one error naming the file and the field, never a traceback or a
silently wrong result.

The contract for a missing file: :func:`read_meta` returns ``None``, and the
loader (:func:`d2lnets.models.loading.load_network`) reads what it needs off
the weights themselves. MXNet is not imported here.
"""
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Dict, Optional

from .. import datasets, limits
from ..io import read_json, write_json

__all__ = ['META_FILE', 'FORMAT', 'read_meta', 'write_meta', 'validate', 'dataset_meta', 'data_set']

META_FILE = 'meta.json'
MAX_BYTES = 1 << 20       # ImageNet's 1000 class names take 30 KiB
MAX_CLASS_NAME = 200      # characters of one class name (ImageNet's longest has 121)
FORMAT = 'd2lnets-run/1'


def dataset_meta(dataset: str) -> Dict[str, Any]:
    """The ``meta.json`` fields that follow from the data set alone (its row in :mod:`d2lnets.datasets`)."""
    row = datasets.get(dataset)
    return {'dataset': row.name, 'classes': row.classes, 'input_shape': row.input_shape,
            'normalization': row.normalization}


def data_set(meta: Dict[str, Any]) -> datasets.DataSet:
    """The row of the data set ``meta`` names (:data:`d2lnets.datasets.DEFAULT`'s if it names none,
    as a parameter file without ``meta.json``), its ``preprocessing`` with the normalization
    ``meta`` records: what ``predict`` needs of the weights ``meta`` describes (transform,
    default top-k, class names). ``ValueError`` for a data set d2lnets does not know."""
    row = datasets.get(meta.get('dataset') or datasets.DEFAULT)
    norm = dict(row.preprocessing.normalization, **(meta.get('normalization') or {}))
    return dataclasses.replace(row, preprocessing=dataclasses.replace(row.preprocessing, normalization=norm))


# The numbers meta.json holds, each field's (or each of its numbers') kind, checked by one table
# (limits.misfits); a normalization's as 'normalization.scale', ... (its other rules: _normalization_ok).
NUMBERS = {
    'input_shape': limits.Kind(int, 1, several=True),    # [1, channels, height, width]
    'resize': limits.Kind(int, 1),
    'seed': limits.Kind(int, 0),
    'epochs_done': limits.Kind(int, 0),
    'test_acc': limits.Kind(float, 0, 1),
    'normalization.scale': limits.Kind(float),
    'normalization.mean': limits.Kind(float, several=True),
    'normalization.std': limits.Kind(float, nonzero=True, several=True),
}


def _misfits(meta: Dict[str, Any]) -> set:
    """The fields of ``meta`` whose numbers are not of their kind (:data:`NUMBERS`), by one check."""
    values = {field: meta.get(field) for field in NUMBERS if '.' not in field}
    norm = meta.get('normalization')
    if isinstance(norm, dict):
        values.update(('normalization.' + key, norm.get(key)) for key in ('scale', 'mean', 'std'))
    return {name.split('.')[0] for name in limits.misfits(values, NUMBERS)}


class _Checker:
    def __init__(self, meta: Dict[str, Any], source: str):
        self.meta, self.source = meta, source

    def fail(self, field: str, what: str) -> None:
        raise ValueError('%s: the field %r %s; write the file anew with `d2lnets train` (or fix that field)'
                         % (self.source, field, what))

    def check(self, field: str, ok, what: str, optional: bool = True) -> None:
        if field not in self.meta or (optional and self.meta[field] is None):
            if not optional:
                self.fail(field, 'is missing')
            return
        if not ok(self.meta[field]):
            self.fail(field, 'must be %s, not %s' % (what, json.dumps(self.meta[field])[:60]))


def _normalization_ok(norm) -> bool:
    # Its numbers are NUMBERS' normalization.*: the object must have those three and no other key.
    return isinstance(norm, dict) and set(norm) == {'scale', 'mean', 'std'}


def validate(meta: Any, source: str, required: tuple = ()) -> Dict[str, Any]:
    """Check ``meta`` against the schema and return it; ``ValueError`` naming
    ``source`` (the file) and the field otherwise. ``required`` fields must be present."""
    if not isinstance(meta, dict):
        raise ValueError('%s must hold a JSON object, not %s; write it anew with `d2lnets train`'
                         % (source, type(meta).__name__))
    c = _Checker(meta, source)
    misfit = _misfits(meta)
    for field in required:
        c.check(field, lambda v: True, '', optional=False)
    c.check('format', lambda v: v == FORMAT, repr(FORMAT))
    c.check('model', lambda v: isinstance(v, str) and v, 'a model name (see `d2lnets list`)')
    c.check('model_kwargs', lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v),
            'an object of builder arguments')
    c.check('classes', lambda v: isinstance(v, list) and 0 < len(v) <= limits.BOUNDS['classes'].high
            and all(isinstance(n, str) and len(n) <= MAX_CLASS_NAME for n in v),
            'a list of 1 to %d class names of at most %d characters' % (limits.BOUNDS['classes'].high,
                                                                         MAX_CLASS_NAME))
    c.check('input_shape', lambda v: isinstance(v, list) and len(v) == 4 and 'input_shape' not in misfit,
            'a list [1, channels, height, width] of positive integers')
    c.check('dataset', lambda v: v in datasets.DATASETS, 'one of %s' % ', '.join(datasets.DATASETS))
    c.check('resize', lambda v: 'resize' not in misfit, 'null or a positive integer')
    c.check('normalization', lambda v: _normalization_ok(v) and 'normalization' not in misfit,
            'an object {"scale": number, "mean": number(s), "std": non-zero number(s)}')
    c.check('recipe', lambda v: isinstance(v, dict), 'an object')
    c.check('seed', lambda v: 'seed' not in misfit, 'a non-negative integer')
    c.check('epochs_done', lambda v: 'epochs_done' not in misfit, 'a non-negative integer')
    c.check('test_acc', lambda v: 'test_acc' not in misfit, 'null or a number from 0 to 1')
    dataset, shape = meta.get('dataset'), meta.get('input_shape')
    if shape:
        try:        # before anything is allocated for it: each side, the channels, the elements
            limits.check_shape(shape, 'the input shape')
        except ValueError as err:
            c.fail('input_shape', 'is out of bounds (%s)' % err)
    channels = datasets.DATASETS[dataset].channels if dataset else None    # a known one: checked above
    if channels and shape and shape[1] != channels:
        c.fail('input_shape', 'says %d channel(s), but %s images have %d' % (shape[1], dataset, channels))
    norm = meta.get('normalization')
    if norm and shape:
        for key in ('mean', 'std'):
            if isinstance(norm[key], list) and len(norm[key]) not in (1, shape[1]):
                c.fail('normalization', 'has %d %s values for %d channel(s)' % (len(norm[key]), key, shape[1]))
    return meta


def read_meta(params_file: Any) -> Optional[Dict[str, Any]]:
    """The validated ``meta.json`` beside ``params_file``, or ``None`` if there is none."""
    path = Path(params_file).absolute().parent / META_FILE
    if not os.path.lexists(path):     # a FIFO or a dangling link there is a damaged meta.json, not none
        return None
    meta = read_json(path, 'the weights\' metadata', 'remove it or write it anew with `d2lnets train`',
                     max_bytes=MAX_BYTES)
    return validate(meta, str(path))


def write_meta(folder: Any, meta: Dict[str, Any]) -> Path:
    """Validate ``meta`` and write it atomically as ``folder/meta.json``."""
    path = Path(folder) / META_FILE
    return write_json(path, validate(meta, str(path)))
