"""The lecture's networks and the registry that names them.

``get_model(name)`` builds a registered network in a fresh name scope, so its
block names (``sequential1``, ``conv0``, ...) are the lecture's whatever the
process built before.
"""
import inspect
from typing import Callable, Dict, List, Optional, Tuple

import mxnet as mx

from ..weights import load_shipped, shipped_models
from .alexnet import alexnet, alexnet_gluoncv
from .lenet import lenet
from .nin import nin, nin_block
from .vgg import (conv_archs, vgg, vgg_block, vgg11, vgg11_bn, vgg11_small, vgg13, vgg13_bn,
                  vgg16, vgg16_bn, vgg19, vgg19_bn)

__all__ = ['get_model', 'list_models', 'get_builder', 'default_input_shape', 'lenet', 'alexnet', 'alexnet_gluoncv', 'vgg', 'vgg_block', 'conv_archs',
           'vgg11', 'vgg13', 'vgg16', 'vgg19', 'vgg11_small',
           'vgg11_bn', 'vgg13_bn', 'vgg16_bn', 'vgg19_bn', 'nin', 'nin_block']

_models: Dict[str, Callable] = {
    'lenet': lenet,
    'alexnet': alexnet,
    'alexnet_gluoncv': alexnet_gluoncv,
    'vgg11': vgg11,
    'vgg13': vgg13,
    'vgg16': vgg16,
    'vgg19': vgg19,
    'vgg11_small': vgg11_small,
    'vgg11_bn': vgg11_bn,
    'vgg13_bn': vgg13_bn,
    'vgg16_bn': vgg16_bn,
    'vgg19_bn': vgg19_bn,
    'nin': nin,
}


# The lecture's input for each network: Fashion-MNIST, 28x28 for LeNet and
# resized to 224x224 for the others (batch of one, one channel).
_default_input_shapes: Dict[str, Tuple[int, ...]] = {'lenet': (1, 1, 28, 28)}


def default_input_shape(name: str) -> Tuple[int, ...]:
    """The input shape the lecture feeds ``name``: (1, 1, 28, 28) for LeNet,
    (1, 1, 224, 224) for the rest."""
    get_builder(name)
    return _default_input_shapes.get(name, (1, 1, 224, 224))


def list_models() -> List[str]:
    """The registered model names, sorted."""
    return sorted(_models)


def get_builder(name: str) -> Callable:
    """The builder function registered as ``name``; ``ValueError`` lists the valid names."""
    try:
        return _models[name]
    except (KeyError, TypeError):
        raise ValueError('unknown model %r; valid names: %s' % (name, ', '.join(list_models()))) from None


def get_model(name: str, pretrained: bool = False, root: Optional[str] = None,
              **kwargs) -> mx.gluon.HybridBlock:
    """Build the network registered as ``name``.

    Parameters
    ----------
    name : str
        One of :func:`list_models`.
    pretrained : bool
        Load published weights: the Fashion-MNIST weights shipped with
        d2lnets for ``lenet`` (the lecture's recipe, sha1-checked, see
        :mod:`d2lnets.weights`); GluonCV's ImageNet weights for
        ``alexnet_gluoncv`` and the VGGs (``classes`` becomes 1000), see
        :mod:`d2lnets.zoo`.
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
    builder = get_builder(name)
    try:
        inspect.signature(builder).bind(**kwargs)
    except TypeError:
        accepted = [p for p in inspect.signature(builder).parameters]
        raise ValueError('model %r takes the arguments %s, got %s'
                         % (name, ', '.join(accepted), ', '.join(sorted(kwargs)))) from None
    if pretrained and name in shipped_models():
        with mx.name.NameManager():
            return load_shipped(name, builder(**kwargs))
    if pretrained:
        from .. import zoo
        kwargs = zoo.imagenet_kwargs(name, kwargs)
    with mx.name.NameManager():
        net = builder(**kwargs)
    if pretrained:
        zoo.load_pretrained(net, name, root, ctx=mx.current_context())
    return net
