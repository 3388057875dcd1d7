"""Every layer's output for one image, from one forward pass of the network's graph.

``activations(net, x)`` gives the output of each top-level child of ``net``
(the lecture's ``for blk in net: X = blk(X)``: LeNet's convolutions, poolings
and dense layers, VGG's and NiN's blocks), read from the internal outputs of
the graph ``hybridize()`` runs, evaluated once; the last one is the network's
output, the logits. :func:`probabilities` and :func:`top_classes` read them.
"""
from typing import List, NamedTuple, Tuple

import mxnet as mx
import numpy as np

from ..deploy.predict import softmax   # the one softmax, predict's (explain uses deploy; never back)
from . import _graph

__all__ = ['Activation', 'activations', 'probabilities', 'top_classes']


class Activation(NamedTuple):
    """The output of one layer for one image, without the batch axis: (C, H, W)
    for convolutions, poolings and blocks of them, (units,) for dense layers.
    ``kind`` is one of 'conv', 'pool', 'dense', 'block', 'other'."""
    name: str
    kind: str
    array: np.ndarray


def activations(net: mx.gluon.HybridBlock, x: mx.nd.NDArray) -> List[Activation]:
    """The output of every top-level child of ``net`` for the image ``x``.

    Parameters
    ----------
    net : HybridBlock
        A registry network (an ``nn.Sequential``), hybridized or not, with its
        parameters set; it is not changed.
    x : NDArray
        One preprocessed image, (1, C, H, W), on the parameters' device.

    Returns
    -------
    list of Activation
        In the order the children run; the last is the network's output (the
        logits). All come from one forward pass in inference mode.
    """
    _graph.check_input(x)
    _graph.check_ready(net)
    layers = _graph.layers(net)
    arrays = _graph.forward(_graph.outputs(net, [layer.output for layer in layers]), net, x)
    return [Activation(layer.name, layer.kind, array[0]) for layer, array in zip(layers, arrays)]


def probabilities(acts: List[Activation]) -> np.ndarray:
    """Softmax of the logits (the last activation): (classes,) float64, summing to 1."""
    return softmax(acts[-1].array.astype(np.float64).reshape(1, -1))[0]


def top_classes(acts: List[Activation], k: int = 5) -> List[Tuple[int, float]]:
    """The ``k`` most probable classes as (class index, probability), most probable first."""
    probs = probabilities(acts)
    order = sorted(range(len(probs)), key=lambda c: (-probs[c], c))[:k]
    return [(c, float(probs[c])) for c in order]
