"""Where a network looks for one image: vanilla saliency and Grad-CAM.

:func:`saliency` is the gradient of a class's score (its logit) with respect
to the input, and its map the largest absolute gradient over the channels
(Simonyan et al., 2014; Captum's ``Saliency``). :func:`grad_cam` weighs the
channel maps of a layer by the mean gradient of the score over each map and
keeps the positive part of their sum (Selvaraju et al., 2017; Captum's
``LayerGradCam``, pytorch-grad-cam's ``GradCAM``), by default at the last
top-level layer that holds a convolution. The class is the predicted one
unless given. Gradients are taken on a copy of the network's graph that
computes what inference computes (see :func:`d2lnets.explain._graph.for_gradients`),
over the network's parameter arrays, which are only read.
"""
from typing import List, NamedTuple, Optional

import mxnet as mx
import numpy as np

from . import _graph

__all__ = ['Saliency', 'GradCam', 'saliency', 'grad_cam']


class Saliency(NamedTuple):
    """``gradient``: d score[cls] / d input, (C, H, W); ``map``: (H, W), the
    largest absolute gradient over the channels."""
    cls: int
    gradient: np.ndarray
    map: np.ndarray


class GradCam(NamedTuple):
    """At the output of ``layer``: ``activation`` A and ``gradient`` d score[cls] / d A,
    both (K, h, w); ``map`` (h, w) = ReLU(sum_k mean(gradient[k]) * A[k]);
    ``upsampled``: ``map`` resized bilinearly to the input's (H, W), pixel
    centres aligned (as OpenCV, PyTorch's ``align_corners=False``)."""
    cls: int
    layer: str
    activation: np.ndarray
    gradient: np.ndarray
    map: np.ndarray
    upsampled: np.ndarray


def saliency(net: mx.gluon.HybridBlock, x: mx.nd.NDArray, cls: Optional[int] = None) -> Saliency:
    """Vanilla saliency of the image ``x`` (1, C, H, W) for class ``cls``
    (default: the predicted class). ``net`` is not changed."""
    _graph.check_input(x)
    _graph.check_ready(net)
    pass_ = _graph.Gradient(_graph.for_gradients(_graph.network_symbol(net)), net, x)
    cls = _graph.check_class(cls, pass_.scores)
    gradient = pass_.of(cls)[0]
    return Saliency(cls, gradient, np.abs(gradient).max(axis=0))


def _with_maps(net: mx.gluon.HybridBlock, layers: List[_graph.Layer], x: mx.nd.NDArray) -> List[_graph.Layer]:
    """The layers whose output for ``x`` is channel maps, (1, K, h, w)."""
    _, shapes, _ = _graph.outputs(net, [layer.output for layer in layers]).infer_shape(**{_graph.DATA: x.shape})
    return [layer for layer, shape in zip(layers, shapes) if len(shape) == 4]


def _default_layer(net: mx.gluon.HybridBlock, layers: List[_graph.Layer]) -> _graph.Layer:
    convolutional = [layer for layer in layers if layer.has_conv]
    if not convolutional:
        raise ValueError('Grad-CAM needs a convolution, and %s has none (its layers: %s)'
                         % (net.name, ', '.join(layer.name for layer in layers)))
    return convolutional[-1]


def grad_cam(net: mx.gluon.HybridBlock, x: mx.nd.NDArray, cls: Optional[int] = None,
             layer: Optional[str] = None) -> GradCam:
    """Grad-CAM of the image ``x`` (1, C, H, W) for class ``cls`` (default:
    the predicted class) at the top-level layer named ``layer`` (default: the
    last one holding a convolution, e.g. LeNet's ``conv1``, VGG's last block).

    The layers up to ``layer`` run once, forward; those after it run forward
    and backward from its output A, which gives d score / d A. ``net`` is not changed.
    """
    _graph.check_input(x)
    _graph.check_ready(net)
    layers = _graph.layers(net)
    with_maps = _with_maps(net, layers, x)
    chosen = _default_layer(net, layers) if layer is None else next((l for l in layers if l.name == layer), None)
    if chosen is None:
        raise ValueError('unknown layer %r; valid names (the layers whose output is channel maps): %s'
                         % (layer, ', '.join(l.name for l in with_maps)))
    if chosen not in with_maps:
        raise ValueError('Grad-CAM needs a layer whose output is channel maps, and %s\'s is not; layers with '
                         'maps: %s' % (chosen.name, ', '.join(l.name for l in with_maps)))
    activation = _graph.forward(_graph.outputs(net, [chosen.output]), net, x)[0]     # (1, K, h, w)
    # The rest of the network as a graph of its own, input the layer's output.
    rest = mx.sym.var(_graph.DATA)
    for block in list(net)[layers.index(chosen) + 1:]:
        rest = block(rest)
    pass_ = _graph.Gradient(_graph.for_gradients(rest), net, mx.nd.array(activation, ctx=x.context,
                                                                         dtype=activation.dtype))
    cls = _graph.check_class(cls, pass_.scores)
    gradient = pass_.of(cls)[0]
    activation = activation[0]
    weights = gradient.mean(axis=(1, 2))                                     # (K,)
    cam = np.maximum((weights[:, None, None] * activation).sum(axis=0), 0)   # (h, w)
    upsampled = mx.nd.contrib.BilinearResize2D(mx.nd.array(cam[None, None], dtype=cam.dtype),
                                               height=x.shape[2], width=x.shape[3], align_corners=False)
    return GradCam(cls, chosen.name, activation, gradient, cam, upsampled.asnumpy()[0, 0])
