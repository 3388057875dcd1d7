"""The timed choice between the fused operator and MXNet's layers, per chain.

At the first batch, each fusable chain is timed on its real input shape
through MXNet's layers and through the fused operator (a few forward, and for
training backward, passes) and the faster one is kept, as ``cudnn.benchmark``
chooses algorithms. The choices are cached in the library's record (read
once with the library, :class:`d2lnets.perf.kernels_build.Kernels`), keyed by
the chain, its shape, the thread count and the CPU.
"""
import os
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple

import mxnet as mx
import numpy as np

from ..io import cpu_model
from .kernels_build import Kernels, write_record

def _chain_symbols(attrs: Dict[str, str], op: str, train: bool = True) -> Tuple[mx.sym.Symbol, mx.sym.Symbol]:
    """One chain as MXNet's layers and as the fused operator, on the same inputs."""
    x, w, b = mx.sym.var('data'), mx.sym.var('weight'), mx.sym.var('bias')
    k, p, co = int(attrs['kernel']), int(attrs['pad']), int(attrs['num_filter'])
    extra = {} if train else {'training': 0}
    z = mx.sym.Convolution(x, w, b, kernel=(k, k), pad=(p, p), num_filter=co)
    layers = mx.sym.Pooling(mx.sym.Activation(z, act_type='sigmoid'), kernel=(2, 2), stride=(2, 2),
                            pool_type='avg')
    return layers, getattr(mx.sym, op)(x, w, b, kernel=k, pad=p, num_filter=co, **extra)


def time_chain(attrs: Dict[str, str], shape: Tuple[int, ...], op: str, train: bool, ctx: mx.Context,
               repeats: int = 5) -> Tuple[float, float]:
    """Milliseconds of one chain on an input of ``shape`` through MXNet's
    layers and through ``op``: the fastest of ``repeats`` passes (forward, and
    backward when ``train``), the two alternating so that other load on the
    machine falls on both."""
    rng = np.random.RandomState(0)
    k, co = int(attrs['kernel']), int(attrs['num_filter'])
    need_dx = train and attrs.get('need_data_grad', '1') != '0'
    arrays = [mx.nd.array(rng.uniform(-0.5, 0.5, s), ctx=ctx) for s in (shape, (co, shape[1], k, k), (co,))]
    for i, a in enumerate(arrays):
        if train and (i > 0 or need_dx):
            a.attach_grad()
    blocks = []
    for sym in _chain_symbols(attrs, op, train):
        # As the training loop runs them: a hybridized block with static memory (no executor log line).
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            block = mx.gluon.SymbolBlock(sym, [mx.sym.var(n) for n in ('data', 'weight', 'bias')])
        block.hybridize(static_alloc=True, static_shape=True)
        blocks.append(block)
    best = [float('inf')] * 2
    for rep in range(repeats + 1):
        for j, block in enumerate(blocks):
            start = time.perf_counter()
            if train:
                with mx.autograd.record():
                    y = block(*arrays)
                y.backward()
            else:
                y = block(*arrays)
            mx.nd.waitall()
            if rep > 0:  # the first pass allocates and warms the caches
                best[j] = min(best[j], (time.perf_counter() - start) * 1e3)
    return best[0], best[1]


def _choice_key(chain: Dict[str, Any], shape: Tuple[int, ...], train: bool) -> str:
    a = chain['attrs']
    return '%s k%s p%s co%s x%s dx%s threads%s %s' % (
        'train' if train else 'infer', a['kernel'], a['pad'], a['num_filter'], 'x'.join(map(str, shape)),
        a['need_data_grad'] if train else '0', os.environ.get('OMP_NUM_THREADS', os.cpu_count()), cpu_model())


def choose(chains: List[Dict[str, Any]], shapes: Dict[str, Tuple[int, ...]], kernels: Kernels, train: bool,
           ctx: mx.Context, timer: Optional[Callable[..., Tuple[float, float]]] = None) -> List[Dict[str, Any]]:
    """Per chain, whether the fused operator ``kernels.op`` is faster than
    MXNet's layers on its input shape (``shapes[chain['input']]``): measured
    with ``timer`` (default :func:`time_chain`), or read from the choices
    cached in the library's record (``kernels.record``); new ones are written
    to it. Returns the chains with ``fused`` (bool), ``mxnet_ms`` and
    ``fused_ms``."""
    timer = timer or time_chain
    record = kernels.record
    cached = dict(record.get('choices', {}))
    decided, new = [], False
    for chain in chains:
        shape = tuple(shapes[chain['input']])
        key = _choice_key(chain, shape, train)
        if key not in cached:
            mxnet_ms, fused_ms = timer(chain['attrs'], shape, kernels.op, train, ctx)
            cached[key] = {'mxnet_ms': round(mxnet_ms, 3), 'fused_ms': round(fused_ms, 3),
                           'fused': fused_ms < mxnet_ms}
            new = True
        decided.append(dict(chain, **cached[key]))
    if new and record:
        try:
            write_record(kernels.library, dict(record, choices=cached))
        except OSError:
            pass  # an unwritable cache measures again next time
    return decided


def input_shapes(sym: mx.sym.Symbol, names: List[str], shape: Tuple[int, ...]) -> Dict[str, Tuple[int, ...]]:
    internals = sym.get_internals()
    outputs = internals.list_outputs()
    found = {}
    for name in names:
        if name == 'data':
            found[name] = tuple(shape)
            continue
        _, out, _ = internals[outputs.index(name)].infer_shape(data=shape)
        found[name] = tuple(out[0])
    return found

