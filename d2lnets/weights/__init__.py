"""Where weights come from, what they describe, and how a file becomes them.

- :class:`Weights`: one published set of weights (a registry entry of
  :mod:`d2lnets.registry` holds its model's): where they come from (a
  file shipped in this folder, or GluonCV's model zoo), with its sha1, the data
  set they were trained on and its input shape; as torchvision's weights, they
  carry their ``categories`` and ``preprocessing`` (the data set's row in
  :mod:`d2lnets.datasets`).
- :mod:`.meta`: the ``meta.json`` schema every weights file is described by.
- :mod:`.shipped`: the files shipped in this folder; :mod:`.zoo`: GluonCV's
  ImageNet weights (cache, download, sha1); each finds a file, and
  :meth:`Weights.path` asks the one its source names.
- :mod:`.load`: a file into a network, one way for every source (read, adapt,
  check whole, set). It imports no other module of this package.

Importing this package (and :mod:`.meta`, :mod:`.shipped`) does not import
MXNet: the deploy path reads metadata without it.
"""
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from .. import datasets

__all__ = ['Weights', 'WEIGHTS_DIR']

WEIGHTS_DIR = Path(__file__).resolve().parent
SOURCES = ('shipped', 'gluoncv')


@dataclass(frozen=True)
class Weights:
    """One set of published weights of a model.

    Parameters
    ----------
    source : {'shipped', 'gluoncv'}
        A file shipped with d2lnets (in :data:`WEIGHTS_DIR`), or GluonCV's model zoo.
    file : str
        ``shipped``: the file's name; ``gluoncv``: GluonCV's model name (``'vgg11'``).
    dataset : str
        What they were trained on (``'fashion-mnist'``, ``'imagenet'``); it fixes
        the classes, the normalization and how image files are prepared.
    input_shape : (1, channels, height, width)
    sha1 : str, optional
        The file's sha1; for ``gluoncv``, ``None`` reads it from GluonCV's own
        table when needed (not copied here).

    Attributes
    ----------
    data_set : DataSet
        The row of the data set they were trained on (:mod:`d2lnets.datasets`).
    preprocessing : Preprocessing
        How an image file is prepared for them (torchvision's ``transforms``):
        :data:`d2lnets.deploy.images.TRANSFORMS` runs it.
    categories : list of str
        The class names, by output index.
    """
    source: str
    file: str
    dataset: str
    input_shape: Tuple[int, int, int, int]
    sha1: Optional[str] = None
    # Resolved once from ``dataset`` (torchvision's weights carry their transforms as a field): plain
    # values, so the callers that need them (get_model, predict) read them without asking again.
    data_set: datasets.DataSet = field(init=False, repr=False, compare=False)
    preprocessing: datasets.Preprocessing = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError('unknown weights source %r; known: %s' % (self.source, ', '.join(SOURCES)))
        row = datasets.get(self.dataset)    # ValueError for a data set d2lnets does not know
        object.__setattr__(self, 'data_set', row)    # frozen: set once, here
        object.__setattr__(self, 'preprocessing', row.preprocessing)

    @property
    def categories(self) -> List[str]:
        """The class names, by output index (torchvision's ``meta["categories"]``); a property,
        since ImageNet's 1000 are loaded from GluonCV only when asked for."""
        return self.data_set.classes

    classes = categories   # the name meta.json gives them

    def path(self, root: Optional[Union[str, os.PathLike]] = None) -> Path:
        """The verified file of these weights: a shipped one sha1-checked
        (:func:`.shipped.params_path`), GluonCV's found in its cache or downloaded
        (:func:`.zoo.find_weights`, ``root`` searched first)."""
        if self.source == 'shipped':
            from .shipped import params_path
            return params_path(self)
        from .zoo import find_weights
        return find_weights(self.file, root)

    def meta(self) -> Dict[str, Any]:
        """What ``meta.json`` says of them (see :mod:`.meta`): a shipped file's
        manifest, or GluonCV's ImageNet facts."""
        from .meta import dataset_meta
        if self.source == 'shipped':
            from .shipped import manifest_for
            return manifest_for(self)
        return dict(dataset_meta(self.dataset), input_shape=list(self.input_shape))
