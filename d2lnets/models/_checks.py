"""Argument checks shared by the builders: fail before anything is built."""
import math

from ..limits import Kind, misfits

# Each builder argument that is a number: its kind (d2lnets.limits.Kind) and the words of its error.
ARGUMENTS = {
    'classes': (Kind(int, 1), 'a positive integer'),
    'padding': (Kind(int, 0), 'a non-negative integer'),
    'ratio': (Kind(int, 1), 'a positive integer'),
    # [0, 1): the largest float below 1 is the highest rate.
    'dropout': (Kind(float, 0, math.nextafter(1.0, 0.0)), 'a rate in [0, 1)'),
}
_KINDS = {name: kind for name, (kind, _) in ARGUMENTS.items()}


def check_arguments(**arguments) -> None:
    """``ValueError`` naming the first of ``arguments`` (by name, as :data:`ARGUMENTS` has them)
    that is not what it must be; all are checked by one call of :func:`d2lnets.limits.misfits`."""
    wrong = misfits(arguments, _KINDS)
    if wrong:
        name = wrong[0]
        raise ValueError('%s must be %s, got %r' % (name, ARGUMENTS[name][1], arguments[name]))
