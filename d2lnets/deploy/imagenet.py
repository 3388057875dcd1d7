"""ImageNet inference: the standard preprocessing and top-k class names.

The preprocessing is the one GluonCV's ImageNet weights were evaluated with
(``gluoncv.data.transforms.presets.imagenet.transform_eval``): resize the
shorter side to 256, crop the centre 224x224, scale to [0, 1] and normalize
with ImageNet's per-channel mean and standard deviation. It lives in
:mod:`d2lnets.deploy.images` (numpy, equal to GluonCV's output), shared with the
ONNX path; this module hands its result to MXNet networks (imported when
a function needs it, as everywhere in :mod:`d2lnets.deploy`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Sequence, Union

import numpy as np

from . import images as _images   # predict() has an argument named images
from .images import IMAGENET_CROP as CROP, IMAGENET_NORMALIZATION, IMAGENET_RESIZE as RESIZE  # noqa: F401
from .predict import Prediction, format_predictions, top_k as _top_k  # noqa: F401

MEAN = tuple(IMAGENET_NORMALIZATION['mean'])
STD = tuple(IMAGENET_NORMALIZATION['std'])

ImageArray = Any   # (H, W, 3) uint8 RGB: numpy, or an MXNet NDArray


def class_names() -> List[str]:
    """The 1000 ImageNet class names in GluonCV's order (the weights' output order)."""
    from ..weights.meta import dataset_classes
    return dataset_classes('imagenet')


def read_image(path: Union[str, Path]) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 RGB array: :func:`d2lnets.deploy.images.read_image`
    with ``mode='RGB'`` (``ValueError`` if unreadable or too large)."""
    return _images.read_image(path, 'RGB')


def preprocess(image: ImageArray, ctx=None):
    """(H, W, 3) uint8 RGB (numpy or NDArray) -> (1, 3, 224, 224) float32 on ``ctx``.

    Resize the shorter side to 256 (keeping the aspect ratio), crop the
    centre 224x224, scale to [0, 1], normalize with :data:`MEAN` and :data:`STD`:
    :func:`d2lnets.deploy.images.imagenet_input`.
    """
    import mxnet as mx
    if isinstance(image, mx.nd.NDArray):
        image = image.asnumpy()
    x = _images.imagenet_input(np.asarray(image))
    return mx.nd.array(x[None], ctx=ctx or mx.current_context())


def top_k(logits, k: int = 5) -> List[List[Prediction]]:
    """The ``k`` most probable classes of each row of ``logits`` (batch, 1000),
    with names and softmax probabilities, most probable first."""
    if logits.ndim != 2 or logits.shape[1] != 1000:
        raise ValueError('expected ImageNet logits of shape (batch, 1000), got %s' % (logits.shape,))
    return _top_k(logits.asnumpy() if hasattr(logits, 'asnumpy') else np.asarray(logits), class_names(), k)


def predict(net, images: Sequence[Union[str, Path, ImageArray]], k: int = 5, ctx=None) -> List[List[Prediction]]:
    """Top-``k`` ImageNet predictions of ``net`` (with ImageNet weights) for
    each image, given as a file or an (H, W, 3) uint8 RGB array:
    ``[(class index, name, probability), ...]`` per image.

    Images go through the network one at a time, so memory stays that of one.

    Examples
    --------
    >>> net = d2lnets.get_model('vgg16', pretrained=True)
    >>> predict(net, ['cat.jpg'])[0][0]
    (281, 'tabby', 0.71...)
    """
    results = []
    for image in images:
        if isinstance(image, (str, Path)):
            image = read_image(image)
        results += top_k(net(preprocess(image, ctx)), k)
    return results
