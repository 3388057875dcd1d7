"""``mxnet.gluon.nn`` with a hybridizable ``Sequential``.

The lecture writes ``net = nn.Sequential(); net.add(...)``. Gluon's own
``Sequential`` cannot be hybridized as a whole and ``HybridSequential`` is named
``hybridsequential0``, which would change the lecture's printouts. The
``Sequential`` below is a ``HybridSequential`` whose class name (and so its
block-name prefix, ``sequential0``) is the lecture's, so the lecture's code runs
verbatim and the whole network hybridizes into one symbolic graph.

Use it exactly like ``mxnet.gluon.nn``::

    from d2lnets import nn
    net = nn.Sequential()
    net.add(nn.Conv2D(6, kernel_size=5, activation='sigmoid'), nn.Dense(10))
    net.hybridize()
"""
from mxnet.gluon.nn import *  # noqa: F401,F403  (re-export: the lecture writes nn.Conv2D, nn.Dense, ...)
from mxnet.gluon.nn import HybridSequential


class Sequential(HybridSequential):
    """A ``HybridSequential`` that keeps the lecture's name, ``sequentialN``.

    Every block added must be a ``HybridBlock`` (all of ``mxnet.gluon.nn``'s
    layers are), so the stack hybridizes into a single graph.
    """
