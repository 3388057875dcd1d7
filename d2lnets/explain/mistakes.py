"""What a network gets wrong on a test set: the examples it is most confidently
wrong on, and the class pairs it confuses most.

:class:`TopMistakes` is fed by the one pass over the test set that counts the
confusion matrix (:func:`d2lnets.training.metrics.confusion_matrix`), and keeps
at most N examples (a heap of N): memory does not grow with the test set.
:func:`most_confused` reads the pairs off the confusion matrix.
"""
import heapq
from typing import List, NamedTuple, Tuple

import numpy as np

from .. import limits

__all__ = ['Mistake', 'Confusion', 'TopMistakes', 'most_confused']


class Mistake(NamedTuple):
    """A test example the network got wrong: its index in the test set, its
    true class, the predicted class and the probability given to it."""
    index: int
    true: int
    predicted: int
    probability: float


class Confusion(NamedTuple):
    """How many test examples of class ``true`` were predicted as ``predicted``."""
    true: int
    predicted: int
    count: int


class TopMistakes:
    """The ``n`` wrong predictions of highest probability among those added;
    of equal probabilities, the example of smaller index."""

    def __init__(self, n: int):
        self.n = limits.check('mistakes', n)
        self._heap: List[Tuple[float, int, int, int]] = []   # (probability, -index, true, predicted), least first

    def add(self, first_index: int, true: np.ndarray, predicted: np.ndarray, probability: np.ndarray) -> None:
        """A batch of examples ``first_index``, ``first_index + 1``, ...: their
        true and predicted classes and the probability of the prediction, each (batch,)."""
        true, predicted = np.asarray(true).astype(np.int64), np.asarray(predicted).astype(np.int64)
        probability = np.asarray(probability, dtype=np.float64)
        for i in np.flatnonzero(true != predicted):
            item = (float(probability[i]), -(first_index + int(i)), int(true[i]), int(predicted[i]))
            if len(self._heap) < self.n:
                heapq.heappush(self._heap, item)
            elif self.n and item > self._heap[0]:
                heapq.heapreplace(self._heap, item)

    def result(self) -> List[Mistake]:
        """The mistakes kept, most confident first."""
        return [Mistake(-neg, true, predicted, p) for p, neg, true, predicted in sorted(self._heap, reverse=True)]


def most_confused(matrix: np.ndarray, k: int = 10) -> List[Confusion]:
    """The ``k`` (true, predicted) pairs of distinct classes with the most
    examples in the confusion ``matrix`` (rows true, columns predicted), most
    first (of equal counts, the smaller true class, then predicted); pairs
    with no example are left out."""
    matrix = np.asarray(matrix)
    pairs = [Confusion(t, p, int(matrix[t, p])) for t in range(matrix.shape[0]) for p in range(matrix.shape[1])
             if t != p and matrix[t, p] > 0]
    return sorted(pairs, key=lambda c: (-c.count, c.true, c.predicted))[:k]
