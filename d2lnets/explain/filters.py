"""What a network has learnt, read off its weights: the first convolution's
kernels and each layer's weight statistics."""
from typing import Iterator, List, NamedTuple, Tuple

import mxnet as mx
import numpy as np

from . import _graph

__all__ = ['first_conv_weights', 'WeightStats', 'weight_stats', 'NEAR_ZERO']

# A weight is near zero when its magnitude is below this share of the largest
# magnitude in its layer (a relative threshold, so layers of any scale compare).
NEAR_ZERO = 0.01


class WeightStats(NamedTuple):
    """One layer's weight (not its bias): ``near_zero`` is the share of weights
    with ``|w| < threshold``, ``threshold`` = ``NEAR_ZERO`` x the layer's largest ``|w|``."""
    name: str
    shape: Tuple[int, ...]
    mean: float
    std: float
    near_zero: float
    threshold: float


def _layers(block: mx.gluon.Block) -> Iterator[mx.gluon.Block]:
    """The layers of ``block`` (a convolution with its activation is one), in the order they run in a Sequential."""
    if _graph.kind_of(block) != 'block':
        yield block
        return
    for child in block._children.values():
        yield from _layers(child)


def _weighted(net: mx.gluon.Block) -> List[mx.gluon.Block]:
    return [layer for layer in _layers(net) if isinstance(getattr(layer, 'weight', None), mx.gluon.Parameter)]


def first_conv_weights(net: mx.gluon.Block) -> np.ndarray:
    """The kernels of the first convolution, (out, in, kh, kw): LeNet's
    (6, 1, 5, 5), AlexNet's (96, 1, 11, 11) on Fashion-MNIST, (64, 3, 11, 11)
    for GluonCV's ImageNet AlexNet. ``ValueError`` if ``net`` has no convolution."""
    _graph.check_ready(net)
    for layer in _layers(net):
        if _graph.kind_of(layer) == 'conv':
            return layer.weight.data().asnumpy()
    raise ValueError('%s has no convolution' % net.name)


def weight_stats(net: mx.gluon.Block) -> List[WeightStats]:
    """Mean, standard deviation and share near zero of the weight of every
    convolution and dense layer of ``net``, in the order they run."""
    _graph.check_ready(net)
    rows = []
    for layer in _weighted(net):
        w = layer.weight.data().asnumpy().astype(np.float64)
        threshold = NEAR_ZERO * float(np.abs(w).max())
        rows.append(WeightStats(layer.name, tuple(w.shape), float(w.mean()), float(w.std()),
                                float(np.mean(np.abs(w) < threshold)), threshold))
    return rows
