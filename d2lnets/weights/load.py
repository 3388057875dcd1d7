"""Parameter files into networks: read, map, check everything, then set.

Every way weights reach a network goes through here: a run's
``model.params`` (or an ``export``'s ``-0000.params``), the shipped files, and
GluonCV's files through :func:`d2lnets.weights.zoo.map_gluoncv_params`.
Names, shapes and finiteness are checked before any parameter is set, so a
file of another architecture, a truncated file or NaN weights give one clear
error and leave the network as it was.
"""
import os
from typing import Dict, Optional, Tuple

import mxnet as mx

from ..types import Ctx, PathLike
from . import Weights

__all__ = ['read_params', 'strip_prefix', 'structural_params', 'by_structure', 'check_fit', 'check_finite',
           'load_weights']


def read_params(filename: PathLike) -> Dict[str, mx.nd.NDArray]:
    """The named arrays of an MXNet ``.params`` file; ``ValueError`` if it is not one."""
    try:
        arrays = mx.nd.load(str(filename))
    except mx.base.MXNetError:
        if not os.path.isfile(filename):
            raise FileNotFoundError('no such file: %s' % filename) from None
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


def by_structure(net: mx.gluon.Block, arrays: Dict[str, mx.nd.NDArray]) -> Dict[str, mx.nd.NDArray]:
    """File keys as ``save_parameters`` names them; files from ``export``
    (``arg:conv0_weight``) are mapped through the parameters' full names."""
    full = {p.name: key for key, p in structural_params(net).items()}
    return {full.get(strip_prefix(k), strip_prefix(k)): arr for k, arr in arrays.items()}


def _shape_text(shape) -> str:
    return 'x'.join(str(d) for d in shape)


def _some(keys, shown: int = 3) -> str:
    more = len(keys) - shown
    return ', '.join(keys[:shown]) + (' (and %d more)' % more if more > 0 else '')


def check_fit(net: mx.gluon.HybridBlock, arrays: Dict[str, mx.nd.NDArray], input_shape: Tuple[int, ...],
              source: str, name: str) -> None:
    """``ValueError`` unless ``arrays`` hold exactly ``net``'s parameters
    with the shapes ``net`` has for ``input_shape``. ``net``'s shapes must be known."""
    expected = {k: p.shape for k, p in structural_params(net).items()}
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


def check_finite(arrays: Dict[str, mx.nd.NDArray], source: str) -> None:
    """``ValueError`` if any array holds NaN or an infinity (the weights of a
    run that diverged would predict nonsense with full confidence)."""
    bad = sorted(k for k, a in arrays.items() if a.size and not mx.nd.contrib.isfinite(a).min().asscalar())
    if bad:
        raise ValueError('%s holds NaN or infinite values (in %s): these weights are damaged, probably from a '
                         'run whose loss diverged; train again with a lower learning rate' % (source, _some(bad)))


def load_weights(net: mx.gluon.Block, weights: Weights, root: Optional[PathLike] = None,
                 exclude_output: bool = False, ctx: Ctx = None) -> mx.gluon.Block:
    """Load published ``weights`` into ``net`` (built for them); returns ``net``.

    Shipped weights are sha1-checked and loaded whole; GluonCV's are found in
    (or downloaded to) its cache and mapped by layer order (see :mod:`.zoo`).
    ``exclude_output`` leaves the classifier out, for fine-tuning.
    """
    from . import zoo
    if weights.source == 'gluoncv':
        zoo.load_gluoncv_params(net, zoo.find_weights(weights.file, root), exclude_output=exclude_output, ctx=ctx)
        return net
    from .shipped import params_path
    # A shipped file is a save_parameters file of the registered network: the
    # same layers in the same order, so the layer-order mapping checks it whole.
    zoo.load_gluoncv_params(net, params_path(weights), exclude_output=exclude_output, ctx=ctx)
    return net
