"""A named network with its weights and what they were trained on.

``load_network(name, params=FILE)`` builds the network the file was saved from
and loads it whole: the number of classes and the input shape come from the
``meta.json`` that ``d2lnets train`` writes beside the file, else from the
weights themselves. Every parameter's name and shape is checked before
anything is loaded, so a file of another architecture gives one clear error,
never a half-loaded network.
"""
import json
import os
from typing import Any, Dict, Optional, Tuple

import mxnet as mx

from .models import default_input_shape, get_model
from .params import initialize_missing
from .summary import infer_block_shapes
from .zoo import read_params

META_FILE = 'meta.json'
# Where shapes and classes come from when nothing says otherwise.
FASHION_MNIST = 'fashion-mnist'


def read_meta(params_file: str) -> Optional[Dict[str, Any]]:
    """The ``meta.json`` beside ``params_file``, or ``None`` if there is none."""
    path = os.path.join(os.path.dirname(os.path.abspath(params_file)), META_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            meta = json.load(f)
        if not isinstance(meta, dict):
            raise ValueError('not a JSON object')
    except ValueError as err:
        raise ValueError('%s is damaged (%s); remove it or write it anew with `d2lnets train`'
                         % (path, err)) from None
    return meta


def _structural(net: mx.gluon.Block) -> Dict[str, mx.gluon.Parameter]:
    # The keys save_parameters writes ('0.weight', '1.0.bias', ...): the same
    # for every network of one architecture, whatever its block names.
    return net._collect_params_with_prefix()


def _by_structure(net: mx.gluon.Block, arrays: Dict[str, mx.nd.NDArray]) -> Dict[str, mx.nd.NDArray]:
    """File keys as save_parameters names them; files from ``export``
    (``arg:conv0_weight``) are mapped through the parameters' full names."""
    full = {p.name: key for key, p in _structural(net).items()}
    out = {}
    for key, arr in arrays.items():
        bare = key.split(':', 1)[1] if key.startswith(('arg:', 'aux:')) else key
        out[full.get(bare, bare)] = arr
    return out


def _shape_text(shape) -> str:
    return 'x'.join(str(d) for d in shape)


def _some(keys, shown: int = 3) -> str:
    more = len(keys) - shown
    return ', '.join(keys[:shown]) + (' (and %d more)' % more if more > 0 else '')


def check_fit(net: mx.gluon.HybridBlock, arrays: Dict[str, mx.nd.NDArray], input_shape: Tuple[int, ...],
              source: str, name: str) -> None:
    """Raise ``ValueError`` unless ``arrays`` hold exactly ``net``'s parameters
    with the shapes ``net`` has for ``input_shape``. ``net``'s shapes must be known."""
    expected = {k: p.shape for k, p in _structural(net).items()}
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    wrong = [(k, arrays[k].shape, expected[k]) for k in expected if k in arrays and arrays[k].shape != expected[k]]
    if not (missing or extra or wrong):
        return
    if missing or extra:
        what = '; '.join('%s %s' % (label, _some(keys)) for label, keys in
                         (('missing', missing), ('unexpected', extra)) if keys)
    else:
        key, got, want = wrong[0]
        what = '%s is %s in the file, %s needs %s for input %s' % (
            key, _shape_text(got), name, _shape_text(want), _shape_text(input_shape))
    raise ValueError('%s does not hold weights of %s: %s' % (source, name, what))


def _infer_shapes(net: mx.gluon.HybridBlock, input_shape: Tuple[int, ...], ctx: mx.Context) -> None:
    """Initialize what is not and run ``net`` once, so all shapes are known."""
    infer_block_shapes(net, input_shape)   # a clear error for a shape the network cannot take
    initialize_missing(net, mx.init.Xavier(), ctx)
    net(mx.nd.zeros(input_shape, ctx=ctx))


def _meta_input_shape(meta: Dict[str, Any]) -> Optional[Tuple[int, ...]]:
    """meta.json's (1, C, H, W) (a (C, H, W) is taken too)."""
    shape = meta.get('input_shape')
    if not isinstance(shape, (list, tuple)) or len(shape) not in (3, 4):
        return None
    return (1,) + tuple(int(d) for d in shape[-3:])


def _net_classes(net: mx.gluon.Block, keys) -> Optional[int]:
    """How many classes ``net`` was built for (its last bias's length), if known."""
    shape = _structural(net)[keys[-1]].shape
    return shape[0] if len(shape) == 1 and shape[0] else None


def _class_names(meta: Dict[str, Any]):
    classes = meta.get('classes')
    return list(classes) if isinstance(classes, (list, tuple)) else None


def pretrained_meta(name: str) -> Dict[str, Any]:
    """What the published weights of ``name`` were trained on, as ``meta.json`` says it.

    d2lnets' shipped weights: their manifest (a ``meta.json`` with sha1 and
    history). GluonCV's ImageNet weights: 3x224x224 RGB, ImageNet's classes
    and per-channel normalization (see :mod:`d2lnets.imagenet`).
    """
    from . import weights, zoo
    if name in weights.shipped_models():
        return weights.manifest(name)
    if name in zoo.zoo_names():
        from . import imagenet
        return {'dataset': 'imagenet', 'input_shape': [1, 3, imagenet.CROP, imagenet.CROP],
                'classes': imagenet.class_names(), 'normalization': dict(imagenet.IMAGENET_NORMALIZATION)}
    return {}


def load_network(name: str, params: Optional[str] = None, pretrained: bool = False,
                 input_shape: Optional[Tuple[int, ...]] = None,
                 ctx: Optional[mx.Context] = None) -> Tuple[mx.gluon.HybridBlock, Dict[str, Any]]:
    """The network ``name`` with its weights, and a description of them.

    Parameters
    ----------
    name : str
        A registered model name.
    params : str, optional
        A parameter file (``save_parameters`` or ``export`` format). The
        ``meta.json`` beside it gives classes and input shape; without it, the
        number of classes and input channels are read off the weights.
    pretrained : bool
        Load the published weights (``get_model(name, pretrained=True)``);
        the input shape is then what they were trained for (3x224x224 for
        GluonCV's ImageNet weights).
    input_shape : (batch, channels, height, width), optional
        Overrides what the weights were trained for.
    ctx : Context, optional
        Default CPU.

    Returns
    -------
    (HybridBlock, dict)
        The network, and its metadata as ``meta.json`` has it: ``model``,
        ``input_shape`` (1, channels, height, width), ``classes`` (names, or ``None``), ``dataset``,
        ``normalization`` and whatever else ``meta.json`` holds. Without
        ``params`` or ``pretrained`` the network is freshly initialized (Xavier).
    """
    ctx = ctx or mx.cpu()
    if params and pretrained:
        raise ValueError('give either params or pretrained, not both')
    if pretrained:
        net = get_model(name, pretrained=True)
        meta = pretrained_meta(name)
        shape = input_shape or _meta_input_shape(meta) or default_input_shape(name)
        net.collect_params().reset_ctx(ctx)
        _infer_shapes(net, shape, ctx)
    elif params:
        net, meta, shape = _load_file(name, params, input_shape, ctx)
    else:
        meta = {}
        net = get_model(name)
        shape = input_shape or default_input_shape(name)
        _infer_shapes(net, shape, ctx)
    meta = dict(meta, model=name, input_shape=[1] + list(shape[1:]))
    meta.setdefault('dataset', FASHION_MNIST if shape[1] == 1 else None)
    return net, meta


def _load_file(name: str, params: str, input_shape: Optional[Tuple[int, ...]], ctx: mx.Context):
    """(net, meta, input shape) for a parameter file; see :func:`load_network`."""
    meta = read_meta(params) or {}
    if meta.get('model') not in (None, name):
        raise ValueError('%s holds weights of %r (says %s), not %r' % (params, meta['model'], META_FILE, name))
    kwargs = dict(meta.get('model_kwargs') or {})
    net = get_model(name, **kwargs)
    arrays = _by_structure(net, read_params(params))
    keys = list(_structural(net))
    if 'classes' not in kwargs:
        # The last parameter is the classifier's bias: (classes,).
        names = _class_names(meta)
        last = arrays.get(keys[-1])
        classes = len(names) if names else (last.shape[0] if last is not None and last.ndim == 1 else None)
        if classes and classes != _net_classes(net, keys):
            net = get_model(name, **dict(kwargs, classes=classes))
    shape = input_shape or _meta_input_shape(meta)
    if shape is None:
        # The first parameter is the first convolution's weight: (out, in, kh, kw).
        first = arrays.get(keys[0])
        channels = first.shape[1] if first is not None and first.ndim == 4 else 1
        shape = (1, channels) + default_input_shape(name)[2:]
    _infer_shapes(net, shape, ctx)
    check_fit(net, arrays, shape, params, repr(name))
    for key, p in _structural(net).items():
        p.set_data(arrays[key].as_in_context(ctx))
    return net, meta, shape
