"""The bounds of every number a user gives d2lnets, and the one check of them.

An option of the CLI and the argument of a library function that carries the
same number share one :class:`Bound` here, so both refuse a value in the
same words, naming the allowed range and the library's argument in
backquotes (`batch_size`), which the CLI's error line gives as its option
(``--batch-size``, from ``d2lnets.cli.OPTIONS``). Each bound is what
MXNet can represent (its float parameters are float32, its tensors hold at
most 2**31 - 1 elements in the CPU build) narrowed to what a run can
sensibly use; ``inf`` and ``nan`` are never in range. A table of numbers
(``meta.json``'s fields, a builder's arguments) is checked by one call,
:func:`misfits`, each against its :class:`Kind`.

Imports nothing of d2lnets, MXNet or numpy: the CLI's parser and every package use it.
"""
import math
import numbers
from typing import Any, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

__all__ = ['Bound', 'BOUNDS', 'MAX_ELEMENTS', 'check', 'parse', 'check_shape', 'check_elements', 'is_int', 'is_real',
           'Kind', 'misfits']

# MXNet 1.9.1's CPU wheel is built without USE_INT64_TENSOR_SIZE: a tensor of
# more elements is refused (or, in some operators, wraps around).
MAX_ELEMENTS = 2 ** 31 - 1


class Bound(NamedTuple):
    """What a number is, the library's argument that gives it, its type and its range (both ends included)."""
    what: str
    argument: str
    kind: type          # int or float
    low: Union[int, float]
    high: Union[int, float]

    def range_text(self) -> str:
        kind = 'an integer' if self.kind is int else 'a number'
        return '%s from %s to %s' % (kind, _number_text(self.low), _number_text(self.high))


def _number_text(x: Union[int, float]) -> str:
    return str(x) if isinstance(x, int) else '%g' % x


BOUNDS = {
    'epochs': Bound('the number of epochs', 'epochs', int, 1, 10_000),
    # train(num_epochs=0) only evaluates a resumed run: 0 is a library value, never an option.
    'num_epochs': Bound('the number of epochs', 'num_epochs', int, 0, 10_000),
    # Below 1e-12 no SGD update changes a float32 weight; MXNet passes the rate as
    # float32, whose largest value is 3.4e38 (above it the optimizer's parameter cannot be parsed).
    'lr': Bound('the learning rate', 'lr', float, 1e-12, 1e38),
    'batch_size': Bound('the batch size', 'batch_size', int, 1, 65_536),
    'resize': Bound('the side length fed to the network', 'resize', int, 1, 4096),
    'limit': Bound('the number of examples', 'limit', int, 1, 100_000_000),
    # NumPy's RandomState takes 32-bit seeds.
    'seed': Bound('the seed', 'seed', int, 0, 2 ** 32 - 1),
    'classes': Bound('the number of classes', 'classes', int, 1, 100_000),
    'side': Bound('an image side', 'input_shape', int, 1, 16_384),
    'channels': Bound('the number of channels', 'input_shape', int, 1, 4096),
    # `d2lnets predict --top` gives predict's k, `d2lnets bench --seconds` bench's seconds_per_run.
    'top': Bound('the number of classes to show', 'k', int, 1, 1000),
    # Each is drawn (evaluate's mistakes figure, 5 a row): 100 make a figure of 22 x 52 inches.
    'mistakes': Bound('the number of mistakes to show', 'mistakes', int, 0, 100),
    'runs': Bound('the number of timed runs', 'runs', int, 1, 1000),
    'warmup': Bound('the number of warm-up steps', 'warmup', int, 0, 1000),
    'seconds': Bound('the length of one timed run in seconds', 'seconds_per_run', float, 0.001, 3600.0),
    # MXNet keeps a table per CPU context up to the highest index: cpu:100000000
    # takes 10 s and 1 GB before the first parameter, cpu:1000000000 ten times that.
    'device': Bound('a device index', 'ctx', int, 0, 255),
}


def is_int(x: Any) -> bool:
    """Whether ``x`` is an integral number: an ``int`` or one of numpy's
    integers, never a bool (``True`` is an ``int`` to Python, never a count to
    a user). The one type check of every integer d2lnets is given."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def is_real(x: Any) -> bool:
    """Whether ``x`` is a finite real number that a float can hold: an ``int``,
    a ``float`` or one of numpy's, never a bool, ``nan``, an infinity or an
    int beyond a float's range (``10 ** 400``, which no float arithmetic takes).
    The one type check of every number d2lnets is given."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:       # math.isfinite(10 ** 400) converts to float first
        return False


def _fits(x: Any, kind: type, low: Union[int, float], high: Union[int, float]) -> bool:
    return (is_int(x) if kind is int else is_real(x)) and low <= x <= high


class Kind(NamedTuple):
    """What a number of a table of them must be (:func:`misfits`): an ``int`` or a
    ``float`` (as :func:`is_int` and :func:`is_real` say), from ``low`` to ``high``
    (both included); ``nonzero``: never 0 (a divisor); ``several``: also a list of
    at least one such number."""
    kind: type
    low: Union[int, float] = -math.inf
    high: Union[int, float] = math.inf
    nonzero: bool = False
    several: bool = False

    def fits(self, x: Any) -> bool:
        if self.several and isinstance(x, list):
            return bool(x) and all(self._one(v) for v in x)
        return self._one(x)

    def _one(self, x: Any) -> bool:
        return _fits(x, self.kind, self.low, self.high) and not (self.nonzero and x == 0)


def misfits(values: Mapping[str, Any], kinds: Mapping[str, Kind]) -> List[str]:
    """The names of ``values`` (in their order) whose value is not a number of
    ``kinds[name]``: a table of numbers (a file's fields, a builder's arguments)
    checked by one call. A name ``kinds`` does not hold is not checked."""
    return [name for name, x in values.items() if name in kinds and not kinds[name].fits(x)]


def check(name: str, value: Any, optional: bool = False) -> Any:
    """``value`` if it is of the type and in the range of ``BOUNDS[name]``
    (``None`` passes when ``optional``); ``ValueError`` naming the argument and
    the range otherwise. Integers come back as ``int``, numbers as ``float``."""
    if value is None and optional:
        return None
    bound = BOUNDS[name]
    if _fits(value, bound.kind, bound.low, bound.high):
        return bound.kind(value)
    raise ValueError('%s (`%s`) must be %s, got %s' % (bound.what, bound.argument, bound.range_text(),
                                                        _shown(value)))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + '...'


def parse(name: str, text: str) -> Any:
    """The number ``text`` (a command line's word) for ``BOUNDS[name]``:
    ``ValueError`` saying the range unless it reads as one inside it."""
    bound = BOUNDS[name]
    try:
        value = bound.kind(text)
    except (TypeError, ValueError):      # also int('9' * 5000): Python refuses more than 4300 digits
        value = None
    if value is None or not (bound.low <= value <= bound.high):
        raise ValueError('expected %s, got %s' % (bound.range_text(), _shown(text)))
    return value


def check_elements(shape: Sequence[int], what: str) -> None:
    """``ValueError`` if a tensor of ``shape`` (``what``: who would need it)
    would hold more than :data:`MAX_ELEMENTS` elements."""
    n = math.prod(int(d) for d in shape)
    if n > MAX_ELEMENTS:
        raise ValueError("%s of shape %s: %d elements, more than the %d a tensor of MXNet's CPU build can hold; "
                         'use a smaller input or batch' % (what, tuple(shape), n, MAX_ELEMENTS))


def check_shape(shape: Any, what: str = 'the input shape (`input_shape`)') -> Tuple[int, ...]:
    """An input shape ``(batch[, channels[, height[, width ...]]])`` as a tuple
    of ints within :data:`BOUNDS` (batch, channels, sides) and :data:`MAX_ELEMENTS`;
    ``ValueError`` naming ``what`` otherwise."""
    try:
        dims = tuple(shape)
        ok = 1 <= len(dims) <= 5 and all(is_int(d) and d >= 1 for d in dims)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError('%s must be 1 to 5 positive integers (batch, channels, height, width), such as '
                         '(1, 1, 224, 224); got %s' % (what, _shown(shape)))
    for d, name in zip(dims, ['batch_size', 'channels'] + ['side'] * (len(dims) - 2)):
        bound = BOUNDS[name]
        if d > bound.high:
            raise ValueError('%s %s: %s must be at most %s, got %d'
                             % (what, _shown(shape), bound.what.replace('an image side', 'each side'),
                                _number_text(bound.high), d))
    check_elements(dims, 'an input')
    return tuple(int(d) for d in dims)


# Linux's limits (limits.h): a path, and one name in it, in bytes.
PATH_MAX = 4095
NAME_MAX = 255


def check_path(path: Any, what: str) -> str:
    """``path`` (text from an option or a variable) if the system can open
    such a path: at most :data:`PATH_MAX` bytes, each name at most
    :data:`NAME_MAX`; ``ValueError`` naming ``what`` otherwise, before any
    system call fails with "File name too long"."""
    import os
    text = os.fspath(path)
    size = len(os.fsencode(text))
    longest = max((len(os.fsencode(part)) for part in text.split(os.sep)), default=0)
    if size > PATH_MAX or longest > NAME_MAX:
        raise ValueError('%s is a path of %d bytes whose longest name has %d; a path may have at most %d bytes, '
                         'and each name in it %d: give a shorter one' % (what, size, longest, PATH_MAX, NAME_MAX))
    return text
