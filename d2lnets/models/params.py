"""Parameter bookkeeping shared by summary, training and loading."""
from typing import Optional

import mxnet as mx

from ..types import Ctx


def is_initialized(param: mx.gluon.Parameter) -> bool:
    """Whether ``param`` was initialized (possibly deferred until its shape is known)."""
    try:
        param.list_ctx()
        return True
    except RuntimeError:
        return False


def initialize_missing(net: mx.gluon.Block, init: Optional[mx.init.Initializer] = None,
                       ctx: Optional[Ctx] = None) -> int:
    """Initialize only the parameters of ``net`` that are not initialized yet,
    so pretrained or resumed weights are never wiped. Returns how many.

    ``init`` applies as in ``net.initialize(init)``: a parameter's own
    initializer wins, and biases and batch-norm statistics get their defaults
    (zeros, ones), which ``Xavier`` could not give a vector."""
    fresh = [p for p in net.collect_params().values() if not is_initialized(p)]
    for p in fresh:
        p.initialize(ctx=ctx or mx.cpu(), default_init=init or mx.init.Uniform())
    return len(fresh)


def count_parameters(net: mx.gluon.Block) -> int:
    """Number of scalars in all parameters of ``net`` (batch-norm running
    statistics included, as Gluon and GluonCV count them). Shapes must be known:
    call the network once first."""
    total = 0
    for name, p in net.collect_params().items():
        if p.shape is None or 0 in p.shape:
            raise ValueError('the shape of %s is not known yet; call the network on an input first'
                             % name)
        size = 1
        for d in p.shape:
            size *= d
        total += size
    return total
