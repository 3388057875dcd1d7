"""What a network does to its input: the lecture's shape printout, and what
each layer costs (parameters, multiply-accumulates).

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
import json
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import mxnet as mx
from mxnet.base import MXNetError

from .. import limits
from ..types import Shape
from .params import initialize_missing


def top_level_blocks(net: mx.gluon.Block) -> List[mx.gluon.Block]:
    """The blocks the lecture's ``for blk in net`` visits: a sequential
    network's children, or the network itself."""
    if isinstance(net, (mx.gluon.nn.HybridSequential, mx.gluon.nn.Sequential)):
        return list(net._children.values())
    return [net]


def check_input_shape(input_shape: Sequence[int]) -> Shape:
    """``input_shape`` as a tuple of positive integers within d2lnets' bounds
    (:func:`d2lnets.limits.check_shape`), or a ``ValueError``."""
    return limits.check_shape(input_shape)


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
                arg_shapes, out_shapes, _ = blk(mx.sym.var('data')).infer_shape(data=shape)
        except MXNetError as err:
            raise ValueError('%s (%s) cannot take input of shape %s: %s'
                             % (blk.name, type(blk).__name__, shape, _reason(err))) from None
        if not out_shapes:
            raise ValueError('%s (%s): cannot infer its output shape from input of shape %s'
                             % (blk.name, type(blk).__name__, shape))
        # Checked here, before anything is allocated: MXNet's own check comes as an allocation fails.
        for what, shapes in (('a parameter', arg_shapes[1:]), ('an output', out_shapes)):
            for s in shapes:
                limits.check_elements(s, '%s (%s), given input %s, would need %s'
                                      % (blk.name, type(blk).__name__, shape, what))
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


# --- complexity: parameters and multiply-accumulates per layer ---------------------------------

@dataclass
class LayerCost:
    """What one layer holds and computes for one forward pass of the input.

    ``weights`` counts the ``*_weight`` (and batch-norm ``gamma``) scalars,
    ``biases`` the ``*_bias`` (and ``beta``) ones; ``parameters`` all of the
    layer's scalars, batch-norm running statistics included (as
    :func:`d2lnets.count_parameters`). ``macs`` are multiply-accumulates of
    convolutions (``Cout x Hout x Wout x Cin x kh x kw / groups`` per image)
    and dense layers (``in x out`` per image); pooling and activations count 0.
    """
    name: str
    kind: str
    output_shape: Shape
    weights: int
    biases: int
    parameters: int
    macs: int

    @property
    def flops(self) -> int:
        """Floating-point operations of the forward pass: 2 x MACs."""
        return 2 * self.macs


@dataclass
class Complexity:
    """Per-layer costs of a network for one input shape, and their totals."""
    input_shape: Shape
    layers: List[LayerCost] = field(default_factory=list)

    def _sum(self, attr: str) -> int:
        return sum(getattr(layer, attr) for layer in self.layers)

    @property
    def weights(self) -> int:
        return self._sum('weights')

    @property
    def biases(self) -> int:
        return self._sum('biases')

    @property
    def parameters(self) -> int:
        return self._sum('parameters')

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one forward pass of the whole input."""
        return self._sum('macs')

    @property
    def flops(self) -> int:
        """Floating-point operations of one forward pass: 2 x MACs."""
        return 2 * self.macs

    @property
    def training_flops(self) -> int:
        """Floating-point operations of one training step (forward, backward
        for inputs and for weights): 3 x the forward pass."""
        return 3 * self.flops

    def to_dict(self) -> Dict:
        """Plain types only, for JSON."""
        layers = [dict(name=l.name, kind=l.kind, output_shape=list(l.output_shape), weights=l.weights,
                       biases=l.biases, parameters=l.parameters, macs=l.macs, flops=l.flops)
                  for l in self.layers]
        return dict(input_shape=list(self.input_shape), layers=layers,
                    total=dict(weights=self.weights, biases=self.biases, parameters=self.parameters,
                               macs=self.macs, flops=self.flops, training_flops=self.training_flops))


def leaf_blocks(net: mx.gluon.Block) -> List[mx.gluon.Block]:
    """The layers of ``net`` in order: sequential containers are opened
    recursively; any other block is one layer."""
    if isinstance(net, (mx.gluon.nn.HybridSequential, mx.gluon.nn.Sequential)):
        return [leaf for child in net._children.values() for leaf in leaf_blocks(child)]
    return [net]


def _prod(shape: Sequence[int]) -> int:
    size = 1
    for d in shape:
        size *= int(d)
    return size


def _graph_macs(sym: mx.sym.Symbol, shapes: Dict[str, Shape]) -> int:
    """Multiply-accumulates of the convolution, deconvolution and dense
    operators of ``sym`` (``shapes``: every internal output's shape)."""
    macs = 0
    nodes = json.loads(sym.tojson())['nodes']

    def shape_of(entry):
        node = nodes[entry[0]]
        return shapes[node['name'] if node['op'] == 'null' else node['name'] + '_output']

    for node in nodes:
        op = node['op']
        if op not in ('Convolution', 'Deconvolution', 'FullyConnected'):
            continue
        weight = shape_of(node['inputs'][1])
        if op == 'Convolution':      # weight (Cout, Cin/groups, k...): per output, Cin/groups x k... MACs
            macs += _prod(shapes[node['name'] + '_output']) * _prod(weight[1:])
        elif op == 'Deconvolution':  # weight (Cin, Cout/groups, k...): per input, Cout/groups x k... MACs
            macs += _prod(shape_of(node['inputs'][0])) * _prod(weight[1:])
        else:                        # weight (units, in): per output row, units x in MACs
            out = shapes[node['name'] + '_output']
            flatten = node.get('attrs', {}).get('flatten', 'True') == 'True'
            macs += _prod(out[:1] if flatten else out[:-1]) * _prod(weight)
    return macs


def _layer_cost(blk: mx.gluon.Block, shape: Shape) -> LayerCost:
    if not isinstance(blk, mx.gluon.HybridBlock):
        raise ValueError('%s (%s) is not a HybridBlock, so its costs cannot be inferred symbolically'
                         % (blk.name, type(blk).__name__))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            sym = blk(mx.sym.var('data'))
            internals = sym.get_internals()
            args, outs, aux = internals.infer_shape(data=shape)
            names = internals.list_arguments() + internals.list_auxiliary_states()
    except MXNetError as err:
        raise ValueError('%s (%s) cannot take input of shape %s: %s'
                         % (blk.name, type(blk).__name__, shape, _reason(err))) from None
    shapes = dict(zip(internals.list_outputs(), map(tuple, outs)))
    shapes.update(zip(names, map(tuple, args + aux)))
    macs = _graph_macs(sym, shapes)
    weights = biases = parameters = 0
    for name in names:
        if name == 'data':
            continue
        size = _prod(shapes[name])
        parameters += size
        if name.endswith(('weight', 'gamma')):
            weights += size
        elif name.endswith(('bias', 'beta')):
            biases += size
    output = shapes[sym.list_outputs()[0]]
    return LayerCost(blk.name, type(blk).__name__, output, weights, biases, parameters, macs)


def complexity(net: mx.gluon.Block, input_shape: Sequence[int]) -> Complexity:
    """Parameters and multiply-accumulates of every layer of ``net`` for
    ``input_shape``, from the network and MXNet's shape inference alone:
    nothing is initialized or computed.

    Parameters
    ----------
    net : Block
        A network of hybridizable layers (all of d2lnets' networks).
    input_shape : sequence of int
        ``(batch, channels, height, width)``; the counts are for the whole
        batch (use batch 1 for per-image figures, as the lecture does).

    Returns
    -------
    Complexity
        ``layers`` (one :class:`LayerCost` per layer) and the totals as
        properties; ``flops`` is 2 x ``macs``, ``training_flops`` 3 x that.

    Raises
    ------
    ValueError
        When a layer cannot take the shape it gets.
    """
    shape = check_input_shape(input_shape)
    result = Complexity(shape)
    for blk in leaf_blocks(net):
        cost = _layer_cost(blk, shape)
        result.layers.append(cost)
        shape = cost.output_shape
    return result
