"""Accuracy of a network on a data iterator: overall, per class, confusion matrix.

Counts are accumulated on the device; the only synchronisation is at the end
(unless the confusion matrix's pass also keeps the most confident mistakes,
which brings each batch's predictions, two numbers an example, to the host).
"""
from typing import Iterable, Optional

import mxnet as mx
import numpy as np

from ..context import as_context_list, split_batch
from ..explain.mistakes import TopMistakes
from ..perf import fused
from ..types import Ctx

__all__ = ['evaluate_accuracy', 'confusion_matrix', 'per_class_accuracy']


def evaluate_accuracy(net: mx.gluon.Block, data_iter: Iterable, ctx: Ctx = None) -> float:
    """Fraction of examples whose highest-scoring class is the label."""
    ctxs = as_context_list(ctx)
    net = fused.for_inference(net, ctxs)  # LeNet's blocks fused on CPUs, where faster
    correct = [mx.nd.zeros(1, ctx=c) for c in ctxs]
    n = 0
    for X, y in data_iter:
        for x, t, acc in zip(*split_batch(X, y, ctxs), correct):
            acc += (net(x).argmax(axis=1) == t.astype('float32')).sum()
        n += X.shape[0]
    if n == 0:
        raise ValueError('the data iterator gave no examples')
    return sum(float(c.asscalar()) for c in correct) / n


def confusion_matrix(net: mx.gluon.Block, data_iter: Iterable, num_classes: int, ctx: Ctx = None,
                     mistakes: Optional[TopMistakes] = None) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted.

    ``mistakes``, when given, is fed in the same pass every example's true
    class, prediction and its probability (the softmax of the output), the
    examples numbered in the iterator's order from 0."""
    ctxs = as_context_list(ctx)
    net = fused.for_inference(net, ctxs)
    matrix = [mx.nd.zeros((num_classes * num_classes,), ctx=c) for c in ctxs]
    first = 0
    for X, y in data_iter:
        for x, t, m in zip(*split_batch(X, y, ctxs), matrix):
            out = net(x)
            predicted = out.argmax(axis=1)
            cell = t.astype('float32') * num_classes + predicted
            m += mx.nd.one_hot(cell, num_classes * num_classes).sum(axis=0)
            if mistakes is not None:
                mistakes.add(first, t.asnumpy(), predicted.asnumpy(), mx.nd.softmax(out).max(axis=1).asnumpy())
            first += x.shape[0]
    total = sum(m.asnumpy() for m in matrix)
    return np.rint(total).astype(np.int64).reshape(num_classes, num_classes)


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Accuracy per true class from a confusion matrix (NaN for a class with no example)."""
    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)


def accuracy_from_confusion(matrix: np.ndarray) -> float:
    """Overall accuracy from a confusion matrix."""
    matrix = np.asarray(matrix)
    return float(np.trace(matrix) / max(matrix.sum(), 1))
