"""The type aliases d2lnets' signatures share, in one place.

It imports no MXNet (``mx.Context`` is named as a string, for type checkers), so
``io``, ``registry`` and ``deploy/``, which must import without MXNet, can use it.
"""
import os
from typing import TYPE_CHECKING, Sequence, Tuple, Union

if TYPE_CHECKING:  # pragma: no cover
    import mxnet as mx  # noqa: F401

__all__ = ['PathLike', 'Shape', 'Ctx', 'CtxOrText']

PathLike = Union[str, os.PathLike]
# A tensor's shape, as (batch, channels, height, width) for an image batch.
Shape = Tuple[int, ...]
# A device, several (data parallelism), or None: the default.
Ctx = Union['mx.Context', Sequence['mx.Context'], None]
# Also ``--ctx`` text such as ``cpu:0,cpu:1`` (d2lnets.context.as_context_list reads it).
CtxOrText = Union['mx.Context', Sequence['mx.Context'], str, None]
