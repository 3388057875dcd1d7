"""Argument checks shared by the builders: fail before anything is built."""
from ..limits import is_int, is_real


def check_classes(classes) -> None:
    if not is_int(classes) or classes < 1:
        raise ValueError('classes must be a positive integer, got %r' % (classes,))


def check_dropout(dropout) -> None:
    if not is_real(dropout) or not 0 <= dropout < 1:
        raise ValueError('dropout must be a rate in [0, 1), got %r' % (dropout,))
