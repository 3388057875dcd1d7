"""The one symbolic graph of a network that activations and gradients read,
and its evaluation over the network's own parameter arrays.

The graph is ``net(mx.sym.var('data'))``, the graph ``hybridize()`` runs. It is
evaluated by a ``SymbolBlock`` of its own over the network's parameters (their
arrays only read, their gradient buffers not written), so nothing of the
network changes: not its parameters, their gradients, its hybridization, nor
its cached graph.
"""
import json
from typing import Any, List, Optional, Sequence

import mxnet as mx
import numpy as np

from .. import limits
# The layers and their outputs' names in the graph have one home, which an ONNX export with
# activations reads too (d2lnets.deploy.export); explain's modules use them as _graph.layers etc.
from ..models.layers import DATA, Layer, kind_of, layers  # noqa: F401
from ..models.params import is_initialized


def check_input(x: mx.nd.NDArray) -> None:
    """``ValueError`` unless ``x`` is one image, an NDArray of shape (1, C, H, W)."""
    if not isinstance(x, mx.nd.NDArray):
        raise ValueError('expected the input as an mxnet NDArray of shape (1, C, H, W), got %s'
                         % type(x).__name__)
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError('expected a batch of one image, shape (1, C, H, W), got shape %s: these views '
                         'keep every layer\'s output of one image in memory; pass x[i:i+1]' % (x.shape,))


def check_ready(net: mx.gluon.Block) -> None:
    """``ValueError`` unless every parameter of ``net`` holds data (not only a deferred initialization)."""
    for param in net.collect_params().values():
        ready = is_initialized(param) and param._data is not None
        if not ready:
            raise ValueError('the parameter %s of the network has no value yet; load weights into the network '
                             'or initialize it and run it once (net(x)) first' % param.name)


def network_symbol(net: mx.gluon.HybridBlock) -> mx.sym.Symbol:
    """The graph ``hybridize()`` runs, with input ``data``."""
    return net(mx.sym.var(DATA))


def outputs(net: mx.gluon.HybridBlock, names: Sequence[str]) -> mx.sym.Symbol:
    """The outputs called ``names`` among the internal outputs of ``net``'s graph, grouped."""
    internals = network_symbol(net).get_internals()
    return mx.sym.Group([internals[name + '_output'] for name in names])


def for_gradients(sym: mx.sym.Symbol) -> mx.sym.Symbol:
    """``sym`` to be run in training mode for its gradients, computing what it computes in inference.

    MXNet 1.9.1's oneDNN max pooling gives wrong input gradients when its
    backward is recorded in inference mode, so gradients are taken in training
    mode. Training mode would make the graph compute something else: Dropout
    would drop, and BatchNorm would use the batch's statistics and update the
    network's moving averages. In this copy of the graph, Dropout keeps
    everything (p = 0: MXNet passes its input through) and BatchNorm uses the
    moving averages (``use_global_stats``), as in inference. The network's own
    graph and blocks are left as they are."""
    graph = json.loads(sym.tojson())
    for node in graph['nodes']:
        if node['op'] == 'Dropout':
            node.setdefault('attrs', {})['p'] = '0'
        elif node['op'] == 'BatchNorm':
            node.setdefault('attrs', {})['use_global_stats'] = 'True'
    return mx.sym.load_json(json.dumps(graph))


def _block(sym: mx.sym.Symbol, net: mx.gluon.Block, dtype: Any) -> mx.gluon.SymbolBlock:
    """A block computing ``sym`` of input of ``dtype`` over ``net``'s own parameters
    (shared, not copied: VGG's take 0.5 GB)."""
    params = net.collect_params()
    # SymbolBlock sets an attribute `allow_deferred_init` on each parameter it is given (a name Parameter does
    # not use); it is removed again, so the network's parameters are as they were.
    fresh = [p for p in params.values() if 'allow_deferred_init' not in vars(p)]
    try:
        return mx.gluon.SymbolBlock(sym, mx.sym.var(DATA, dtype=dtype), params=params)
    finally:
        for p in fresh:
            vars(p).pop('allow_deferred_init', None)


def forward(sym: mx.sym.Symbol, net: mx.gluon.Block, x: mx.nd.NDArray) -> List[np.ndarray]:
    """The outputs of ``sym`` for input ``x`` over ``net``'s parameters: one
    forward pass in inference mode, as a hybridized block runs it."""
    out = _block(sym, net, x.dtype)(x)
    return [o.asnumpy() for o in (out if isinstance(out, (list, tuple)) else [out])]


class Gradient:
    """One forward pass of ``sym`` (made by :func:`for_gradients`; one output,
    (1, classes) scores) recorded in training mode, then the gradient of one
    score with respect to the input ``x``. Only the input's gradient is
    computed (``autograd.grad``): the parameters' gradient buffers are not written."""

    def __init__(self, sym: mx.sym.Symbol, net: mx.gluon.Block, x: mx.nd.NDArray):
        self._x = x.copy()          # the caller's array gets no gradient buffer
        self._x.attach_grad()
        block = _block(sym, net, x.dtype)
        with mx.autograd.record(train_mode=True):
            self._out = block(self._x)
        self.scores = self._out.asnumpy()[0]   # (classes,)

    def of(self, cls: int) -> np.ndarray:
        """d scores[cls] / d x, of x's shape (the recorded pass is kept: one may ask for several classes)."""
        head = mx.nd.one_hot(mx.nd.array([cls], ctx=self._out.context), self._out.shape[1], dtype=self._out.dtype)
        grad, = mx.autograd.grad([self._out], [self._x], head_grads=[head], retain_graph=True, train_mode=True)
        return grad.asnumpy()


def check_class(cls: Optional[int], scores: np.ndarray) -> int:
    """``cls``, or the predicted class (the highest score) when it is None;
    ``ValueError`` unless it is a class of the network (0 .. classes - 1)."""
    if cls is None:
        return int(np.argmax(scores))
    if not limits.is_int(cls) or not 0 <= cls < len(scores):
        raise ValueError('class %r out of range: the network has %d classes, 0 to %d'
                         % (cls, len(scores), len(scores) - 1))
    return int(cls)
