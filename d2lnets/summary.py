"""What a network does to its input: the lecture's shape printout.

The lecture prints, for each top-level block of a network::

    X = nd.random.uniform(shape=(1, 1, 224, 224))
    net.initialize()
    for blk in net:
        X = blk(X)
        print(blk.name, 'output shape:\t', X.shape)

:func:`layer_shapes` does the same and returns the pairs; :func:`format_layer_shapes`
gives the lines exactly as that ``print`` writes them.
"""
import contextlib
import io
import re
from typing import List, Optional, Sequence, Tuple

import mxnet as mx
from mxnet.base import MXNetError

from .params import initialize_missing

Shape = Tuple[int, ...]


def top_level_blocks(net: mx.gluon.Block) -> List[mx.gluon.Block]:
    """The blocks the lecture's ``for blk in net`` visits: a sequential
    network's children, or the network itself."""
    if isinstance(net, (mx.gluon.nn.HybridSequential, mx.gluon.nn.Sequential)):
        return list(net._children.values())
    return [net]


def check_input_shape(input_shape: Sequence[int]) -> Shape:
    """``input_shape`` as a tuple of positive integers, or a ``ValueError``."""
    try:
        shape = tuple(int(d) for d in input_shape)
        ok = len(shape) > 0 and all(d > 0 and d == e for d, e in zip(shape, input_shape))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError('input shape must be positive integers such as (1, 1, 224, 224), got %r'
                         % (input_shape,))
    return shape


def _reason(err: MXNetError) -> str:
    # MXNet's message ends with "Check failed: <condition> (a vs. b) : <why>" (or "<condition>: <why>").
    text = str(err).strip().splitlines()[0]
    match = re.search(r'Check failed: (.*?) ?: (.*)$', text)
    if match:
        return match.group(2).strip().rstrip('.') or match.group(1)
    return re.sub(r'^MXNetError: (Error in operator \S+: )?(\[[\d:]+\] \S+: )?', '', text)


def infer_block_shapes(net: mx.gluon.Block, input_shape: Sequence[int]) -> List[Tuple[str, Shape]]:
    """``(block name, output shape)`` per top-level block, from MXNet's shape
    inference alone: nothing is initialized or computed.

    Raises
    ------
    ValueError
        When a block cannot take the shape it gets; the message names the
        block and that shape.
    """
    shape = check_input_shape(input_shape)
    result = []
    for blk in top_level_blocks(net):
        try:
            # infer_shape prints its arguments to stdout before raising: keep them out.
            with contextlib.redirect_stdout(io.StringIO()):
                _, out_shapes, _ = blk(mx.sym.var('data')).infer_shape(data=shape)
        except MXNetError as err:
            raise ValueError('%s (%s) cannot take input of shape %s: %s'
                             % (blk.name, type(blk).__name__, shape, _reason(err))) from None
        if not out_shapes:
            raise ValueError('%s (%s): cannot infer its output shape from input of shape %s'
                             % (blk.name, type(blk).__name__, shape))
        shape = tuple(out_shapes[0])
        result.append((blk.name, shape))
    return result


def layer_shapes(net: mx.gluon.Block, input_shape: Sequence[int],
                 ctx: Optional[mx.Context] = None) -> List[Tuple[str, Shape]]:
    """Feed a random input through the top-level blocks in turn, as the
    lecture does, and return ``[(block_name, output_shape), ...]``.

    Parameters that are not initialized yet are initialized (the lecture's
    ``net.initialize()``); initialized ones are left as they are. The shapes
    are checked first, so an input the network cannot take raises a
    ``ValueError`` naming the block, and changes nothing.
    """
    expected = infer_block_shapes(net, input_shape)
    ctx = ctx or mx.cpu()
    initialize_missing(net, ctx=ctx)
    X = mx.nd.random.uniform(shape=tuple(input_shape), ctx=ctx)
    result = []
    for blk in top_level_blocks(net):
        X = blk(X)
        result.append((blk.name, X.shape))
    assert [s for _, s in result] == [s for _, s in expected], (result, expected)
    return result


def format_layer_shapes(shapes: Sequence[Tuple[str, Shape]], batch: bool = True) -> List[str]:
    """The lines the lecture's ``print(blk.name, 'output shape:\\t', X.shape)``
    prints; ``batch=False`` drops the batch axis, as the slide's NiN printout."""
    return ['%s output shape:\t %s' % (name, shape if batch else tuple(shape[1:]))
            for name, shape in shapes]


def print_layer_shapes(net: mx.gluon.Block, input_shape: Sequence[int], batch: bool = True) -> None:
    """Print the lecture's shape printout of ``net`` for ``input_shape``."""
    for line in format_layer_shapes(layer_shapes(net, input_shape), batch=batch):
        print(line)
