"""One row per data set: everything d2lnets knows about the data a network was trained on.

A row holds the data set's name and title, its class names (ImageNet's 1000
come from GluonCV, loaded when first asked), the channels of its images, how
an image file is prepared for a network trained on it (a named
:class:`Preprocessing`, as torchvision's weights carry their transforms), how
many classes ``predict`` prints by default, and, for the data sets d2lnets
trains and evaluates on, their IDX files. ``meta.json`` (:mod:`d2lnets.weights.meta`),
:class:`d2lnets.weights.Weights`, :mod:`d2lnets.data`, ``predict`` and ``evaluate``
read the row; nothing else branches on a data set's name (tests/test_datasets.py
checks it). To add a data set: one row below.

Pure data: imports nothing of d2lnets and no MXNet.
"""
import functools
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

__all__ = ['Split', 'Preprocessing', 'DataSet', 'DATASETS', 'DEFAULT', 'TRAINABLE', 'get', 'for_training',
           'FASHION_MNIST_FORM', 'IMAGENET_EVAL', 'TO_TENSOR', 'FASHION_MNIST_CLASSES', 'MNIST_CLASSES']

Normalization = Dict[str, Any]   # {'scale': s, 'mean': m, 'std': d}: x = (pixel * s - m) / d, m and d per channel or one

FASHION_MNIST_CLASSES = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat',
                         'sandal', 'shirt', 'sneaker', 'bag', 'ankle boot']
MNIST_CLASSES = [str(d) for d in range(10)]

# The lecture applies only ToTensor (pixel / 255); export and predict read this from meta.json.
TO_TENSOR: Normalization = {'scale': 1 / 255, 'mean': 0.0, 'std': 1.0}


class Split(NamedTuple):
    """One split of an MNIST-like data set: its IDX files (without ``.gz``) and how many examples they hold."""
    images: str
    labels: str
    count: int


@dataclass(frozen=True)
class Preprocessing:
    """How an image file becomes the input of a network trained on a data set: a named
    transform with its parameters, as torchvision's ``ImageClassification`` preset.
    :data:`d2lnets.deploy.images.TRANSFORMS` runs each by its ``name``.

    Parameters
    ----------
    name : str
        ``'fashion-mnist-form'`` (grayscale, trimmed, light on dark, as Zalando made
        Fashion-MNIST) or ``'imagenet-eval'`` (GluonCV's ``transform_eval``).
    mode : {'L', 'RGB'}
        How the file is read (:func:`d2lnets.deploy.images.read_image`).
    size : int
        The side of the form (28), or of the centre crop (224).
    normalization : dict
        ``{'scale', 'mean', 'std'}``: a pixel becomes ``(pixel * scale - mean) / std``.
    resize : int, optional
        The shorter side an image is resized to before the centre crop (256); ``None``: no crop.
    """
    name: str
    mode: str
    size: int
    normalization: Normalization
    resize: Optional[int] = None


FASHION_MNIST_FORM = Preprocessing('fashion-mnist-form', 'L', 28, TO_TENSOR)
# As GluonCV's ImageNet weights were evaluated (transform_eval): the shorter side
# resized to 256, the centre 224 x 224 cropped, per-channel mean and std.
IMAGENET_EVAL = Preprocessing('imagenet-eval', 'RGB', 224,
                              {'scale': 1 / 255, 'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]},
                              resize=256)


@functools.lru_cache(maxsize=None)
def _imagenet_classes() -> Tuple[str, ...]:
    # GluonCV's order is the order of its weights' outputs.
    from gluoncv.data import ImageNet1kAttr
    return tuple(ImageNet1kAttr().classes)


@dataclass(frozen=True)
class DataSet:
    """What d2lnets knows about one data set.

    ``train`` and ``test`` are the IDX files d2lnets trains and evaluates on
    (:mod:`d2lnets.data`); ``None`` for a data set it only predicts for.
    """
    name: str
    title: str                                  # as prose names it
    labels: Union[Sequence[str], Callable[[], Sequence[str]]]   # class names by label; a function: asked when needed
    channels: Optional[int]                     # of its images; None: any (grayscale is repeated over them)
    preprocessing: Preprocessing
    top: int                                    # how many classes predict prints by default
    train: Optional[Split] = None
    test: Optional[Split] = None
    debian: Optional[str] = None                # the Debian package that ships its files, if any

    @property
    def classes(self) -> List[str]:
        """The class names, by label."""
        return list(self.labels() if callable(self.labels) else self.labels)

    @property
    def trainable(self) -> bool:
        """Whether d2lnets has its files to train and evaluate on."""
        return self.train is not None

    @property
    def image_size(self) -> int:
        """The side of the images a network trained on it takes: 28, or ImageNet's crop, 224."""
        return self.preprocessing.size

    @property
    def normalization(self) -> Normalization:
        """A copy of what a pixel becomes, ``{'scale', 'mean', 'std'}``, as ``meta.json`` holds it."""
        return dict(self.preprocessing.normalization)

    @property
    def input_shape(self) -> List[int]:
        """``[1, channels, height, width]`` of one image as a network trained on it takes it."""
        return [1, self.channels or 1, self.image_size, self.image_size]


def _mnist_like(name: str, title: str, classes: List[str], debian: Optional[str]) -> DataSet:
    return DataSet(name, title, tuple(classes), None, FASHION_MNIST_FORM, 3,
                   Split('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 60000),
                   Split('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte', 10000), debian)


_ROWS = [
    _mnist_like('fashion-mnist', 'Fashion-MNIST', FASHION_MNIST_CLASSES, 'dataset-fashion-mnist'),
    _mnist_like('mnist', 'MNIST', MNIST_CLASSES, None),
    DataSet('imagenet', 'ImageNet', _imagenet_classes, 3, IMAGENET_EVAL, 5),   # 5 of its 1000 classes
]
DATASETS: Dict[str, DataSet] = {row.name: row for row in _ROWS}
# The data sets d2lnets trains and evaluates on (it has their files), sorted: train's --dataset choices.
TRAINABLE: Tuple[str, ...] = tuple(sorted(row.name for row in _ROWS if row.trainable))
# What weights that name no data set were trained on (a parameter file without meta.json): the lecture's.
DEFAULT = 'fashion-mnist'


def get(name: str) -> DataSet:
    """The row of data set ``name``; ``ValueError`` lists the known ones."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError('unknown dataset %r; d2lnets knows %s' % (name, ', '.join(DATASETS))) from None


def for_training(name: str) -> DataSet:
    """The row of ``name`` if d2lnets trains on it; ``ValueError`` lists those it does."""
    row = DATASETS.get(name) if isinstance(name, str) else None
    if row is None or not row.trainable:
        raise ValueError('unknown dataset %r; known: %s' % (name, ', '.join(TRAINABLE)))
    return row
