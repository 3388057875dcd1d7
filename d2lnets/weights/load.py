"""Weights into a network, one way: a file becomes a mapping, an adapter re-keys it, one function sets it.

Every source of weights takes the same three steps, as torchvision's state dicts
with timm's ``pretrained_filter_fn`` do:

1. :func:`read_params`: the file (``save_parameters`` or ``export`` format)
   becomes ``{name: array}``: a run's ``model.params``, a shipped file
   (found by :mod:`.shipped`), GluonCV's (found by :mod:`.zoo`).
2. ``ADAPTERS[source](arrays, net, exclude_output)`` re-keys it by ``net``'s
   structural names (``'0.weight'``, what ``save_parameters`` writes):
   :func:`by_structure` for a run's and the shipped files (the network's own
   format; only ``export``'s ``arg:`` names are translated), :func:`by_layer_order`
   for GluonCV's (other names; matched by the order of convolution, batch-norm
   and dense layers).
3. :func:`set_params` checks the whole mapping (names, shapes, finite values)
   and only then sets data: a file of another architecture, a truncated file or
   NaN weights give one clear error and leave the network as it was.

:func:`load_weights` is the straight line for a registry's :class:`d2lnets.weights.Weights`.
This module imports no other module of :mod:`d2lnets.weights`; :mod:`.zoo` imports it.
"""
import os
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional, Protocol, Sequence, Tuple

import mxnet as mx
import numpy as np

from ..types import Ctx, PathLike

__all__ = ['read_params', 'strip_prefix', 'structural_params', 'by_structure', 'by_layer_order', 'ADAPTERS',
           'set_params', 'load_file', 'load_weights', 'check_finite', 'MAX_PARAMS_BYTES']

Arrays = Dict[str, mx.nd.NDArray]
# (arrays, net, exclude_output) -> arrays keyed by net's structural names.
Adapter = Callable[[Arrays, mx.gluon.Block, bool], Arrays]

# The largest weights d2lnets reads (GluonCV's VGG-19 with batch norm) take 0.57 GB.
MAX_PARAMS_BYTES = 2 << 30


def read_params(filename: PathLike) -> Arrays:
    """The named arrays of an MXNet ``.params`` file; ``ValueError`` if it is not one."""
    if not os.path.isfile(filename):
        raise FileNotFoundError('no such file: %s' % filename)
    size = os.path.getsize(filename)
    if size > MAX_PARAMS_BYTES:
        raise ValueError('%s takes %d bytes, more than the %d any weights d2lnets knows take: it is not a '
                         'parameter file of these networks' % (filename, size, MAX_PARAMS_BYTES))
    try:
        arrays = mx.nd.load(str(filename))
    except mx.base.MXNetError:
        raise ValueError('%s is not a readable MXNet .params file (corrupted or truncated?)'
                         % filename) from None
    if not isinstance(arrays, dict) or not arrays:
        raise ValueError('%s holds no named parameters' % filename)
    return arrays


def strip_prefix(key: str) -> str:
    """``'arg:conv0_weight'`` -> ``'conv0_weight'``: ``export`` marks arguments
    and auxiliary states so; ``save_parameters`` does not."""
    return key.split(':', 1)[1] if key.startswith(('arg:', 'aux:')) else key


def structural_params(net: mx.gluon.Block) -> Dict[str, mx.gluon.Parameter]:
    """``net``'s parameters by the keys ``save_parameters`` writes
    (``'0.weight'``, ``'1.0.bias'``): the same for every network of one
    architecture, whatever its block names."""
    return net._collect_params_with_prefix()


def _output_keys(keys: Sequence[str]) -> List[str]:
    """The keys of the last parameterized layer (the classifier): those of the last key's block."""
    block = keys[-1].rpartition('.')[0] if keys else ''
    return [k for k in keys if k.rpartition('.')[0] == block]


# --- the adapters: a file's names -> the network's structural names ------------------------

def by_structure(arrays: Arrays, net: mx.gluon.Block, exclude_output: bool = False) -> Arrays:
    """Keys as ``save_parameters`` names them; ``export``'s (``arg:conv0_weight``)
    are translated through the parameters' full names. Nothing is checked here
    (:func:`set_params` checks); ``exclude_output`` is left to :func:`set_params`."""
    full = {p.name: key for key, p in structural_params(net).items()}
    return {full.get(strip_prefix(k), strip_prefix(k)): arr for k, arr in arrays.items()}


# Parameter names of each kind of layer, as Gluon names them.
_KINDS = {'conv': 'a convolution', 'batchnorm': 'a batch norm', 'dense': 'a dense layer'}
_SUFFIXES = ('running_mean', 'running_var', 'gamma', 'beta', 'weight', 'bias')
_NAMED_LAYER = re.compile(r'^(?:.*_)?(conv|batchnorm|dense)(\d+)$')

Layer = Tuple[str, str, Dict[str, object]]   # (name, kind, {param: array or Parameter})


def _network_layers(block: mx.gluon.Block) -> List[Layer]:
    """The parameterized layers of ``block`` in forward order: (name, kind, params)."""
    if block._reg_params:
        if isinstance(block, mx.gluon.nn.Conv2D):
            kind = 'conv'
        elif isinstance(block, mx.gluon.nn.BatchNorm):
            kind = 'batchnorm'
        elif isinstance(block, mx.gluon.nn.Dense):
            kind = 'dense'
        else:
            raise ValueError('cannot map GluonCV weights onto %s (%s): only convolution, batch-norm '
                             'and dense layers are supported' % (block.name, type(block).__name__))
        return [(block.name, kind, dict(block._reg_params))]
    return [layer for child in block._children.values() for layer in _network_layers(child)]


def _split_key(key: str, structural: bool) -> Tuple[str, str]:
    """``'features.0.weight'`` -> ``('features.0', 'weight')``;
    ``'vgg0_batchnorm0_running_mean'`` -> ``('vgg0_batchnorm0', 'running_mean')``."""
    if structural:
        layer, _, param = key.rpartition('.')
        return layer, param
    for suffix in _SUFFIXES:
        if key.endswith('_' + suffix):
            return key[:-len(suffix) - 1], suffix
    raise ValueError('unrecognized parameter name %r' % key)


def _layer_order(layer: str, structural: bool) -> tuple:
    if structural:
        # 'features.10' -> ((1, 'features'), (0, 10)): numbers compare as numbers.
        return tuple((0, int(p)) if p.isdigit() else (1, p) for p in layer.split('.'))
    match = _NAMED_LAYER.match(layer)
    if not match:
        raise ValueError('unrecognized layer name %r (expected convN, batchnormN or denseN)' % layer)
    kind, number = match.group(1), int(match.group(2))
    # Named files carry no order across layer types: each convolution is followed
    # by its batch norm (same counter), and the dense layers come last, as in
    # GluonCV's AlexNet and VGG.
    return (kind == 'dense', number, kind == 'batchnorm')


def _file_layers(arrays: Dict[str, mx.nd.NDArray]) -> List[Layer]:
    """Group a loaded file's arrays into layers, in forward order."""
    keys = [strip_prefix(k) for k in arrays]
    structural = all('.' in k for k in keys)
    if not structural and any('.' in k for k in keys):
        raise ValueError('the file mixes structural keys (features.0.weight) with parameter names '
                         '(conv0_weight)')
    groups: Dict[str, Dict[str, object]] = {}
    for key, array in zip(keys, arrays.values()):
        layer, param = _split_key(key, structural)
        groups.setdefault(layer, {})[param] = array
    layers = []
    for layer in sorted(groups, key=lambda g: _layer_order(g, structural)):
        params = groups[layer]
        if 'gamma' in params:
            kind = 'batchnorm'
        elif 'weight' in params and params['weight'].ndim == 4:
            kind = 'conv'
        elif 'weight' in params and params['weight'].ndim == 2:
            kind = 'dense'
        else:
            raise ValueError('cannot tell what layer %s is (parameters %s)' % (layer, sorted(params)))
        layers.append((layer, kind, params))
    return layers


def _describe(layer: Layer, whose: str) -> str:
    name, kind, params = layer
    main = 'gamma' if kind == 'batchnorm' else 'weight'
    return "%s %s, %s with %s shape %s" % (whose, name, _KINDS[kind], main, tuple(params[main].shape))


def _census(layers: Sequence[Layer]) -> str:
    counts = {kind: sum(1 for _, k, _ in layers if k == kind) for kind in _KINDS}
    return ', '.join('%d %s' % (n, kind) for kind, n in counts.items() if n)


def _compatible(net_shape: tuple, file_shape: tuple) -> bool:
    # 0 in the network's shape is a size not known until the first forward pass.
    return len(net_shape) == len(file_shape) and all(a in (0, b) for a, b in zip(net_shape, file_shape))


def by_layer_order(arrays: Arrays, net: mx.gluon.Block, exclude_output: bool = False) -> Arrays:
    """Map GluonCV's parameter names onto ``net``'s structural names by layer order.

    All of GluonCV's key formats map: structural keys (``features.0.weight``),
    prefix-stripped names (``conv0_weight``) and full names with any prefix
    (``vgg3_conv0_weight``). The parameterized layers (convolution, batch norm,
    dense) must agree in number, kind and every shape; ``exclude_output``
    leaves out the final dense layer of both. Pure: changes nothing.

    Raises ``ValueError`` naming the first layer that differs and both shapes.
    """
    ours, theirs = _network_layers(net), _file_layers(arrays)
    census = '(the network has %s; the file %s)' % (_census(ours), _census(theirs))
    if exclude_output:
        for layers, whose in ((ours, 'the network'), (theirs, 'the file')):
            if not layers or layers[-1][1] != 'dense':
                raise ValueError('exclude_output=True expects a final dense layer, but the last '
                                 'layer of %s is %s' % (whose, layers[-1][0] if layers else 'missing'))
        ours, theirs = ours[:-1], theirs[:-1]
    key_of = {id(p): key for key, p in structural_params(net).items()}
    mapped = {}
    for i, (mine, other) in enumerate(zip(ours, theirs)):
        same = mine[1] == other[1] and set(mine[2]) == set(other[2]) and all(
            _compatible(tuple(p.shape), tuple(other[2][k].shape)) for k, p in mine[2].items())
        if not same:
            raise ValueError('layer %d differs: %s, but %s %s'
                             % (i, _describe(mine, "the network's"), _describe(other, "the file's"), census))
        mapped.update({key_of[id(p)]: other[2][k] for k, p in mine[2].items()})
    if len(ours) != len(theirs):
        extra, whose, other = ((ours, "the network's", 'the file') if len(ours) > len(theirs)
                               else (theirs, "the file's", 'the network'))
        raise ValueError('layer %d differs: %s has no counterpart in %s %s'
                         % (min(len(ours), len(theirs)), _describe(extra[min(len(ours), len(theirs))], whose),
                            other, census))
    return mapped


# Source -> adapter. 'run' is a run's model.params (or an export's -0000.params).
ADAPTERS: Dict[str, Adapter] = {'shipped': by_structure, 'run': by_structure, 'gluoncv': by_layer_order}


# --- the one place weights are checked and set ---------------------------------------------

def _shape_text(shape) -> str:
    return 'x'.join(str(d) for d in shape)


def _some(keys, shown: int = 3) -> str:
    more = len(keys) - shown
    return ', '.join(keys[:shown]) + (' (and %d more)' % more if more > 0 else '')


def check_finite(arrays: Arrays, source: str) -> None:
    """``ValueError`` if any array holds NaN or an infinity (the weights of a
    run that diverged would predict nonsense with full confidence).

    Checked in numpy on a copy: MXNet's ``contrib.isfinite`` is four operators and
    ``min`` one more per array, twice numpy's time (2.2 s of VGG-16's 3.4 s load)."""
    bad = sorted(k for k, a in arrays.items() if not np.isfinite(a.asnumpy()).all())
    if bad:
        raise ValueError('%s holds NaN or infinite values (in %s): these weights are damaged, probably from a '
                         'run whose loss diverged; train again with a lower learning rate' % (source, _some(bad)))


def set_params(net: mx.gluon.Block, arrays: Arrays, *, source: str, model: str = 'the network',
               exclude_output: bool = False, input_shape: Optional[Tuple[int, ...]] = None,
               ctx: Ctx = None) -> mx.gluon.Block:
    """Check ``arrays`` (keyed by ``net``'s structural names) whole, then set them; returns ``net``.

    Parameters
    ----------
    net : Block
        Initialized or not; a 0 in a parameter's shape (not known yet) takes the array's size.
    arrays : dict
        What an adapter of :data:`ADAPTERS` returns.
    source, model : str
        The file and the network, as error messages name them.
    exclude_output : bool
        Leave the last layer (the classifier) as it is, and ignore the file's: for fine-tuning.
    input_shape : tuple, optional
        What ``net``'s shapes were inferred for, named in a message of a wrong shape.
    ctx : Context or list of Context, optional
        Where parameters not initialized yet go (default CPU); initialized ones keep theirs.

    Raises
    ------
    ValueError
        Names missing or unexpected, a shape that differs, NaN or infinite
        values; nothing is set then.
    """
    params = structural_params(net)
    left = set(_output_keys(list(params))) if exclude_output else set()
    arrays = {k: a for k, a in arrays.items() if k not in left}
    expected = {k: p for k, p in params.items() if k not in left}
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        what = '; '.join('%s %s' % (label, _some(keys)) for label, keys in
                         (('missing', missing), ('unexpected', extra)) if keys)
        raise ValueError('%s does not hold weights of %s: %s' % (source, model, what))
    for key, p in expected.items():
        if not _compatible(tuple(p.shape), tuple(arrays[key].shape)):
            raise ValueError('%s does not hold weights of %s: %s is %s in the file, %s needs %s%s' % (
                source, model, key, _shape_text(arrays[key].shape), model, _shape_text(p.shape),
                ' for input %s' % _shape_text(input_shape) if input_shape else ''))
    check_finite(arrays, source)
    net.collect_params().load_dict({expected[k].name: a for k, a in arrays.items()}, ctx=ctx,
                                   allow_missing=exclude_output)
    return net


class Source(Protocol):
    """What :func:`load_weights` needs of a :class:`d2lnets.weights.Weights`."""
    source: str

    def path(self, root: Optional[PathLike] = None) -> Path: ...


def load_file(net: mx.gluon.Block, path: PathLike, source: str, exclude_output: bool = False,
              ctx: Ctx = None) -> mx.gluon.Block:
    """Read ``path``, adapt it as ``source``'s files are (:data:`ADAPTERS`), check and set it; returns ``net``."""
    arrays = read_params(path)
    try:
        mapped = ADAPTERS[source](arrays, net, exclude_output)
    except ValueError as err:
        raise ValueError('cannot load %s: %s' % (path, err)) from None
    return set_params(net, mapped, source=str(path), exclude_output=exclude_output, ctx=ctx)


def load_weights(net: mx.gluon.Block, weights: Source, root: Optional[PathLike] = None,
                 exclude_output: bool = False, ctx: Ctx = None) -> mx.gluon.Block:
    """Load published ``weights`` (a :class:`d2lnets.weights.Weights`) into ``net``; returns ``net``.

    ``weights.path`` finds the file (a shipped one sha1-checked; GluonCV's in
    its cache or downloaded, see :mod:`.zoo`); :func:`load_file` loads it.
    ``exclude_output`` leaves the classifier out, for fine-tuning.
    """
    return load_file(net, weights.path(root), weights.source, exclude_output, ctx)
