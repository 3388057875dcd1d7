"""The top-level layers of a sequential network, each with its kind and the
name of its output in the network's graph: what explain's views read from the
graph, and what an ONNX export with activations names its outputs by.

Gluon names a graph's nodes after the block that makes them (``conv0_sigmoid_fwd``),
so chaining the children on a symbol gives the names of their outputs in the
graph ``hybridize()`` runs, ``net(mx.sym.var('data'))``.
"""
from typing import List, NamedTuple

import mxnet as mx
from mxnet.gluon import nn
# The base classes of Gluon's convolutions and poolings (1-D to 3-D, transposed, global).
from mxnet.gluon.nn.conv_layers import _Conv, _Pooling

__all__ = ['DATA', 'KINDS', 'Layer', 'kind_of', 'layers']

# The graph's input.
DATA = 'data'
KINDS = ('conv', 'pool', 'dense', 'block', 'other')


class Layer(NamedTuple):
    """One top-level child of a network: its name, kind (one of :data:`KINDS`),
    whether it holds a convolution, and the name of its output in the graph
    (the op's name: MXNet lists it among the graph's internals with ``_output``)."""
    name: str
    kind: str
    has_conv: bool
    output: str


def kind_of(block: mx.gluon.Block) -> str:
    """'conv', 'pool', 'dense', 'block' (a block of layers) or 'other'."""
    if isinstance(block, _Conv):
        return 'conv'
    if isinstance(block, _Pooling):
        return 'pool'
    if isinstance(block, nn.Dense):
        return 'dense'
    if len(block._children):
        return 'block'
    return 'other'


def _has_conv(block: mx.gluon.Block) -> bool:
    return isinstance(block, _Conv) or any(_has_conv(c) for c in block._children.values())


def layers(net: mx.gluon.HybridBlock) -> List[Layer]:
    """The top-level children of ``net`` in the order they run (the lecture's
    ``for blk in net: X = blk(X)``), each with its output's name in the graph;
    the last one's output is the network's."""
    if not isinstance(net, nn.HybridSequential) or not len(net):
        raise ValueError('expected a network of layers run in sequence (nn.Sequential, as every registry '
                         'network is), got %s' % type(net).__name__)
    out, found = mx.sym.var(DATA), []
    for block in net:
        out = block(out)
        found.append(Layer(block.name, kind_of(block), _has_conv(block), out.name))
    return found
