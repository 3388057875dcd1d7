"""Devices: the best one available, ``--ctx`` text such as ``cpu:0,cpu:1``, and a
batch split over several (data parallelism)."""
import re
from typing import List, Sequence

import mxnet as mx

from . import limits
from .types import CtxOrText

__all__ = ['num_gpus', 'best_context', 'parse_ctx', 'as_context_list', 'split_batch']


def num_gpus() -> int:
    """GPUs visible to MXNet (0 with the CPU build)."""
    try:
        return mx.context.num_gpus()
    except mx.base.MXNetError:
        return 0


def best_context() -> mx.Context:
    """``gpu(0)`` when MXNet sees a GPU, else ``cpu(0)``."""
    return mx.gpu(0) if num_gpus() > 0 else mx.cpu(0)


def parse_ctx(text: str) -> List[mx.Context]:
    """``'cpu'``, ``'gpu'``, ``'gpu:1'`` or a comma-separated list such as
    ``'cpu:0,cpu:1'`` -> contexts. ``ValueError`` for text that names no
    usable device."""
    ctxs = []
    for part in str(text).replace(' ', '').split(','):
        match = re.fullmatch(r'(cpu|gpu)(?::(\d+))?', part)
        if not match:
            raise ValueError('cannot read the device %r in %r; use cpu, gpu, gpu:1 or a list such '
                             'as cpu:0,cpu:1' % (part, text))
        kind, index = match.group(1), int(match.group(2) or 0)
        limits.check('device', index)    # before MXNet sees it: it allocates a table up to the index
        if kind == 'gpu':
            available = num_gpus()
            if index >= available:
                raise ValueError('%s is not available: MXNet sees %d GPU(s)%s; use `ctx=cpu`'
                                 % (part, available, ' (the CPU build of mxnet is installed, or no '
                                    'CUDA device is visible)' if available == 0 else ''))
        ctxs.append(mx.Context(kind, index))
    if len(set(ctxs)) != len(ctxs):
        raise ValueError('the device list %r names a device twice' % (text,))
    return ctxs


def as_context_list(ctx: CtxOrText) -> List[mx.Context]:
    """One context, a list of them, text for :func:`parse_ctx`, or ``None``
    (the best one) -> a non-empty list of contexts."""
    if ctx is None:
        return [best_context()]
    if isinstance(ctx, str):
        return parse_ctx(ctx)
    if isinstance(ctx, mx.Context):
        return [ctx]
    ctxs = list(ctx)
    if not ctxs or not all(isinstance(c, mx.Context) for c in ctxs):
        raise ValueError('ctx must be an mx.Context or a non-empty list of them, got %r' % (ctx,))
    return ctxs


def describe(ctxs: Sequence[mx.Context]) -> str:
    """``cpu(0)`` for one context, ``[cpu(0), cpu(1)]`` for several."""
    return str(ctxs[0]) if len(ctxs) == 1 else '[%s]' % ', '.join(map(str, ctxs))


def split_batch(X: mx.nd.NDArray, y: mx.nd.NDArray, ctxs: List[mx.Context]):
    """Slices of a batch, one per context (data parallelism).

    A batch with fewer examples than contexts (the last one of an epoch, say)
    goes to its first ``len(X)`` contexts, one example each: fewer slices
    than contexts are returned, never an empty slice (which MXNet cannot copy).
    """
    ctxs = ctxs[:max(1, min(len(ctxs), X.shape[0]))]
    if len(ctxs) == 1:
        return [X.as_in_context(ctxs[0])], [y.as_in_context(ctxs[0])]
    return (mx.gluon.utils.split_and_load(X, ctxs, even_split=False),
            mx.gluon.utils.split_and_load(y, ctxs, even_split=False))
