"""The lecture's networks and the registry that names them.

``get_model(name)`` builds a registered network in a fresh name scope, so its
block names (``sequential1``, ``conv0``, ...) are the lecture's whatever the
process built before.
"""
from typing import Optional, Union

import mxnet as mx

from ..registry import (ModelEntry, Recipe, check_kwargs, default_input_shape, entry, get_builder, list_models,
                        pretrained_weights)
from .. import limits
from ..runtime import start_engine_quietly
from ..weights import Weights
from .alexnet import alexnet, alexnet_gluoncv
from .lenet import lenet
from .nin import nin, nin_block
from .vgg import (conv_archs, vgg, vgg_block, vgg11, vgg11_bn, vgg11_small, vgg13, vgg13_bn,
                  vgg16, vgg16_bn, vgg19, vgg19_bn)

__all__ = ['get_model', 'list_models', 'get_builder', 'default_input_shape', 'entry', 'ModelEntry',
           'pretrained_weights',
           'Recipe', 'lenet', 'alexnet', 'alexnet_gluoncv', 'vgg', 'vgg_block', 'conv_archs',
           'vgg11', 'vgg13', 'vgg16', 'vgg19', 'vgg11_small',
           'vgg11_bn', 'vgg13_bn', 'vgg16_bn', 'vgg19_bn', 'nin', 'nin_block']


def get_model(name: str, pretrained: Union[bool, Weights] = False, root: Optional[str] = None,
              **kwargs) -> mx.gluon.HybridBlock:
    """Build the network registered as ``name``.

    Parameters
    ----------
    name : str
        One of :func:`list_models`.
    pretrained : bool or Weights
        Load the published weights of the model's registry entry
        (:mod:`d2lnets.registry`): the Fashion-MNIST weights shipped
        with d2lnets for ``lenet`` (the lecture's recipe, sha1-checked);
        GluonCV's ImageNet weights for ``alexnet_gluoncv`` and the VGGs
        (``classes`` becomes 1000), see :mod:`d2lnets.weights.zoo`. Those
        :class:`~d2lnets.weights.Weights` themselves (``pretrained_weights(name)``,
        as a caller that fetched them already passes them down) load the same.
    root : str, optional
        Directory searched first for GluonCV's weights (then
        ``$MXNET_HOME/models``, ``~/.mxnet/models``) and where they are downloaded.
    **kwargs
        Passed to the builder, e.g. ``classes=10``, ``dropout=0.5``.

    Returns
    -------
    HybridBlock
        Uninitialized, unless ``pretrained``.

    Notes
    -----
    The network is built inside a fresh ``mx.name.NameManager``, so two
    networks built by ``get_model`` have the same block and parameter names.
    To add two of them to one parent block, build them inside the parent's
    ``name_scope()``; the names then carry the parent's prefix and differ.
    """
    start_engine_quietly()   # MXNet would log its engine type at the first operation
    builder = check_kwargs(name, kwargs)
    if 'classes' in kwargs:
        limits.check('classes', kwargs['classes'])
    if pretrained:
        weights = pretrained if isinstance(pretrained, Weights) else pretrained_weights(name)
        classes = len(weights.data_set.classes)
        if kwargs.get('classes', classes) != classes:
            raise ValueError('the %s weights of %r have %d classes, got classes=%r; to fine-tune to %r classes, '
                             'build with pretrained=False and load with d2lnets.models.loading.load_pretrained('
                             'net, %r, exclude_output=True)'
                             % (weights.data_set.title, name, classes, kwargs['classes'], kwargs['classes'], name))
        kwargs = dict(kwargs, classes=classes)
    with mx.name.NameManager():
        net = builder(**kwargs)
    if pretrained:
        from ..weights.load import load_weights
        load_weights(net, weights, root, ctx=mx.current_context())
    return net
