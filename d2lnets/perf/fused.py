"""What training and inference call: a network, or on CPUs its copy with
LeNet's conv-sigmoid-pool chains run by d2lnets' fused operator.

:func:`for_training` and :func:`for_inference` give what the training loop,
:func:`d2lnets.training.metrics.evaluate_accuracy` and
:func:`d2lnets.deploy.predict.predict_network`
call: a copy of the network's graph in which each such chain is that operator
(:mod:`d2lnets.perf.rewrite`), sharing the network's parameters. The network
itself, its printout, its exports and its ONNX graph keep Gluon's own layers.
Per chain, at the first batch, the faster of the fused operator and MXNet's
layers is kept (:mod:`d2lnets.perf.choice`). The fused graph needs CPU
contexts and float32 parameters; for training also ``grad_req='write'``.
The operator is built, cached and loaded by :mod:`d2lnets.perf.kernels_build`,
which also reads the switches (``D2LNETS_FUSED``, ``D2LNETS_FUSED_VARIANT``).
Each network asks it twice: the switch when it is wrapped, the loaded library
with its record (:class:`~d2lnets.perf.kernels_build.Kernels`) at the first
batch, which is passed down to the choice and the rewrite.
"""
import json
import time
import warnings
from typing import Any, Dict, List, Optional, Tuple

import mxnet as mx
import numpy as np

from .choice import choose, input_shapes
from .kernels_build import mode, ready
from .rewrite import fusable_chains, fuse_graph

def fused_block(net: mx.gluon.HybridBlock, train: bool = True, shape: Optional[Tuple[int, ...]] = None,
                ctx: Optional[mx.Context] = None, switch: Optional[str] = None) -> Optional[mx.gluon.SymbolBlock]:
    """A block computing ``net`` with its conv-sigmoid-pool chains fused,
    sharing ``net``'s parameters, or None when nothing is fused: no chain, the
    operator cannot be loaded (see :func:`.kernels_build.load`),
    ``D2LNETS_FUSED=0``, or (in ``auto`` mode, given the input ``shape``)
    MXNet's layers were faster for every chain. ``switch``: ``D2LNETS_FUSED``
    as :func:`.kernels_build.mode` read it (None: read it now). The parameters
    must be initialized, their shapes known. The chains and the choice per
    chain are in the block's ``fused_chains``, the variant in its
    ``fused_variant``."""
    chosen = switch or mode()
    if chosen == '0':
        return None
    params = net.collect_params()
    fusable = {name for name, p in params.items()
               if np.dtype(p.dtype) == np.float32 and (p.grad_req == 'write' or not train)}
    sym = net(mx.sym.var('data'))
    graph = json.loads(sym.tojson())
    chains = fusable_chains(graph, fusable)
    if not chains:
        return None
    kernels = ready()
    if kernels is None:
        return None
    if chosen == 'auto' and shape is not None:
        shapes = input_shapes(sym, [c['input'] for c in chains], shape)
        chains = choose(chains, shapes, kernels, train, ctx or mx.cpu())
    else:
        chains = [dict(c, fused=True) for c in chains]
    only = {c['name'] for c in chains if c['fused']}
    if not only or fuse_graph(graph, fusable, op=kernels.op, only=only, train=train) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # SymbolBlock warns about unused inputs in some versions
        block = mx.gluon.SymbolBlock(mx.sym.load_json(json.dumps(graph)), mx.sym.var('data'), params=params)
    block.fused_chains = chains
    block.fused_variant = kernels.variant
    return block




class FusedNet:
    """What a training loop (``train=True``) or an evaluation calls: ``net``,
    or, on CPUs, its fused copy (built at the first batch, once deferred shapes
    are known, and only where it is faster; see the module's docstring)."""

    def __init__(self, net: mx.gluon.Block, ctxs: List[mx.Context], train: bool = True):
        self.net = net
        self.train = train
        self.chains: List[Dict[str, Any]] = []  # per fusable chain: name, fused, mxnet_ms, fused_ms
        self.variant: Optional[str] = None
        self._ctx = ctxs[0] if ctxs else mx.cpu()
        self._fast: Optional[mx.gluon.Block] = None
        self._switch = mode()  # D2LNETS_FUSED, read once per network
        self._decided = not (self._switch != '0' and isinstance(net, mx.gluon.HybridBlock)
                             and all(c.device_type == 'cpu' for c in ctxs))
        # Seconds the first call spent deciding (the kernels' first build, about
        # 10 s, and the timed choice): once per process, kept out of timings.
        self.setup_seconds = 0.0

    @property
    def fused(self) -> bool:
        """Whether the fused graph is in use (decided at the first call)."""
        return self._fast is not None

    def describe(self) -> str:
        """Which code ran each chain, e.g. ``conv0: avx2, conv1: MXNet's layers``."""
        if not self._decided:
            return 'not decided yet'
        if not self.chains:
            return "MXNet's layers" + ('' if self._switch != '0' else ' (D2LNETS_FUSED=0)')
        return ', '.join('%s: %s' % (c['name'].replace('_fwd', ''), self.variant if c['fused'] else "MXNet's layers")
                         for c in self.chains)

    def __call__(self, x: mx.nd.NDArray) -> mx.nd.NDArray:
        if not self._decided:
            self._decided = True
            start = time.perf_counter()
            if any(p._deferred_init for p in self.net.collect_params().values()):
                # Finishes deferred initialization. In training mode: a predict-mode
                # forward lets oneDNN keep the weights in its own layout, which
                # kvstores cannot read.
                with mx.autograd.pause(train_mode=True):
                    self.net(x[:1])
            self._fast = fused_block(self.net, self.train, x.shape, self._ctx, self._switch)
            if self._fast is not None:
                self.chains = self._fast.fused_chains
                self.variant = self._fast.fused_variant
                self._fast.hybridize(static_alloc=True, static_shape=True)
            self.setup_seconds = time.perf_counter() - start
        return (self._fast or self.net)(x)


def for_training(net: mx.gluon.Block, ctxs: List[mx.Context]) -> FusedNet:
    """``net`` for a training loop on ``ctxs``: see the module's docstring."""
    return FusedNet(net, ctxs, train=True)


def for_inference(net: Any, ctxs: List[mx.Context]) -> Any:
    """``net`` for evaluation and prediction on ``ctxs`` (forward only, fused
    where faster); ``net`` itself if it is one already, or not a Gluon block."""
    if isinstance(net, FusedNet) and not net.train:
        return net
    if isinstance(net, FusedNet):
        net = net.net
    if not isinstance(net, mx.gluon.Block):
        return net
    return FusedNet(net, ctxs, train=False)

