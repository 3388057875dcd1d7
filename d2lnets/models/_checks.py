"""Argument checks shared by the builders: fail before anything is built."""
import numbers


def check_classes(classes) -> None:
    if isinstance(classes, bool) or not isinstance(classes, numbers.Integral) or classes < 1:
        raise ValueError('classes must be a positive integer, got %r' % (classes,))


def check_dropout(dropout) -> None:
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise ValueError('dropout must be a rate in [0, 1), got %r' % (dropout,))
