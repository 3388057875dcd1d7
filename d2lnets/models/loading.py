"""From a model's name and its weights to a network with its meta: ``load_network``.

``load_network(name, params=FILE)`` builds the network the file was saved from
and loads it whole: the number of classes and the input shape come from the
``meta.json`` beside the file (:mod:`d2lnets.weights.meta`), else from the
weights themselves. ``load_network(name, pretrained=True)`` does the same for
the registry's published weights. ``evaluate``, ``predict`` and ``export`` all
load through here, so all three accept the same files. The weights take the
one way of :mod:`d2lnets.weights.load` (read, the source's adapter, checked
whole by ``set_params``, then set): a file of another architecture gives one
clear error, never a half-loaded network.
"""
from typing import Any, Dict, Optional, Tuple, Union

import mxnet as mx

from .. import datasets
from .summary import infer_block_shapes
from ..weights.load import ADAPTERS, load_weights, read_params, set_params, structural_params
from ..types import Ctx
from ..weights import Weights
from ..weights.meta import read_meta, validate
from . import entry, get_model, pretrained_weights
from .params import initialize_missing

__all__ = ['load_network', 'load_pretrained', 'pretrained_meta', 'pretrained_weights']


def pretrained_meta(name: str) -> Dict[str, Any]:
    """What the published weights of ``name`` were trained on, as ``meta.json`` says it."""
    return pretrained_weights(name).meta()


def load_pretrained(net: mx.gluon.Block, name: str, root: Optional[str] = None, exclude_output: bool = False,
                    ctx: Ctx = None) -> mx.gluon.Block:
    """Load the published weights of model ``name`` into ``net``; with
    ``exclude_output`` all but the classifier, to fine-tune ``net`` (built
    with another ``classes``) to a new data set. Returns ``net``."""
    return load_weights(net, pretrained_weights(name), root, exclude_output=exclude_output, ctx=ctx)


def _infer_shapes(net: mx.gluon.HybridBlock, input_shape: Tuple[int, ...], ctx: mx.Context) -> None:
    """Initialize what is not and run ``net`` once, so all shapes are known."""
    infer_block_shapes(net, input_shape)   # a clear error for a shape the network cannot take
    initialize_missing(net, mx.init.Xavier(), ctx)
    net(mx.nd.zeros(input_shape, ctx=ctx))


def _net_classes(net: mx.gluon.Block, keys) -> Optional[int]:
    """How many classes ``net`` was built for (its last bias's length), if known."""
    shape = structural_params(net)[keys[-1]].shape
    return shape[0] if len(shape) == 1 and shape[0] else None


def load_network(name: str, params: Optional[str] = None, pretrained: Union[bool, Weights] = False,
                 input_shape: Optional[Tuple[int, ...]] = None, ctx: Optional[mx.Context] = None,
                 root: Optional[str] = None) -> Tuple[mx.gluon.HybridBlock, Dict[str, Any]]:
    """The network ``name`` with its weights, and a description of them.

    Parameters
    ----------
    name : str
        A registered model name.
    params : str, optional
        A parameter file (``save_parameters`` or ``export`` format). The
        ``meta.json`` beside it gives classes and input shape; without it, the
        number of classes and input channels are read off the weights.
    pretrained : bool or Weights
        Load the published weights (``get_model(name, pretrained=True)``);
        the input shape is then what they were trained for (3x224x224 for
        GluonCV's ImageNet weights). ``predict`` passes the
        :class:`~d2lnets.weights.Weights` it fetched to check the images first.
    input_shape : (batch, channels, height, width), optional
        Overrides what the weights were trained for.
    ctx : Context, optional
        Default CPU.
    root : str, optional
        Folder searched first for GluonCV's weights (see :mod:`d2lnets.weights.zoo`).

    Returns
    -------
    (HybridBlock, dict)
        The network, and its metadata as ``meta.json`` has it: ``model``,
        ``input_shape`` (1, channels, height, width), ``classes``, ``dataset``,
        ``normalization`` and whatever else ``meta.json`` holds. Without
        ``params`` or ``pretrained`` the network is freshly initialized (Xavier).
    """
    ctx = ctx or mx.cpu()
    if params and pretrained:
        raise ValueError('give either params or pretrained, not both')
    if pretrained:
        weights = pretrained if isinstance(pretrained, Weights) else pretrained_weights(name)
        net = get_model(name, pretrained=weights, root=root)
        meta = weights.meta()
        shape = input_shape or tuple(meta['input_shape'])
        net.collect_params().reset_ctx(ctx)
        _infer_shapes(net, shape, ctx)
    elif params:
        net, meta, shape = _load_file(name, params, input_shape, ctx)
    else:
        meta = {}
        net = get_model(name)
        shape = input_shape or entry(name).input_shape
        _infer_shapes(net, shape, ctx)
    meta = dict(meta, model=name, input_shape=[1] + list(shape[1:]))
    # One channel and nothing said: the lecture's data set (d2lnets.datasets.DEFAULT).
    meta.setdefault('dataset', datasets.DEFAULT if shape[1] == 1 else None)
    if pretrained:
        # Validated once: a shipped manifest as it was read (d2lnets.weights.shipped.manifest_for),
        # GluonCV's facts are the data set table's row. What is added here is the model's name and
        # the shape the loaded weights just took (_infer_shapes refuses any other).
        return net, meta
    # What the file says and what the weights are must agree (an ImageNet meta.json
    # beside 1-channel weights, say).
    return net, validate(meta, '%s with its meta.json' % params if params else 'the weights of %r' % name)


def _load_file(name: str, params: str, input_shape: Optional[Tuple[int, ...]], ctx: mx.Context):
    """(net, meta, input shape) for a parameter file; see :func:`load_network`."""
    meta = read_meta(params) or {}
    if meta.get('model') not in (None, name):
        raise ValueError('%s holds weights of %r (says the meta.json beside it), not %r'
                         % (params, meta['model'], name))
    kwargs = dict(meta.get('model_kwargs') or {})
    net = get_model(name, **kwargs)
    arrays = ADAPTERS['run'](read_params(params), net, False)
    keys = list(structural_params(net))
    # The last parameter is the classifier's bias: (classes,).
    last = arrays.get(keys[-1])
    file_classes = last.shape[0] if last is not None and last.ndim == 1 else None
    names = meta.get('classes')
    if names and file_classes and len(names) != file_classes:
        raise ValueError('the meta.json beside %s names %d classes, but the weights have %d outputs; the two '
                         'files do not belong together' % (params, len(names), file_classes))
    classes = len(names) if names else file_classes
    if 'classes' not in kwargs and classes and classes != _net_classes(net, keys):
        net = get_model(name, **dict(kwargs, classes=classes))
    shape = input_shape or (tuple(meta['input_shape']) if meta.get('input_shape') else None)
    if shape is None:
        # The first parameter is the first convolution's weight: (out, in, kh, kw).
        first = arrays.get(keys[0])
        channels = first.shape[1] if first is not None and first.ndim == 4 else 1
        shape = (1, channels) + entry(name).input_shape[2:]
    _infer_shapes(net, shape, ctx)
    set_params(net, arrays, source=params, model=repr(name), input_shape=shape)
    return net, meta, shape
