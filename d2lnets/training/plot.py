"""Figures: training curves in the style of the book's ``Animator``, and a
confusion matrix, drawn with :mod:`d2lnets.drawing`."""
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from ..drawing import pyplot as _pyplot
from ..drawing import save_png as _save

__all__ = ['plot_history', 'plot_confusion', 'Animator']


def _draw_curves(ax, history, num_epochs: int, title: str = '') -> None:
    # The book's Animator: loss and accuracies on one axis, x from 1 to the last epoch.
    from matplotlib.ticker import MaxNLocator
    ax.cla()
    for values, style, label in ((history.loss, '-', 'train loss'), (history.train_acc, 'm--', 'train acc'),
                                 (history.test_acc, 'g-.', 'test acc')):
        ax.plot(history.epoch, values, style, label=label)
    ax.set_xlabel('epoch')
    ax.set_xlim(1, max(num_epochs, 2))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid()
    ax.legend()
    if title:
        ax.set_title(title, fontsize='small')


def plot_history(history, path: Path, title: str = '') -> Path:
    """Train loss, train accuracy and test accuracy per epoch, on one axis with
    x from 1 to the last epoch, as the book's ``Animator(xlabel='epoch',
    legend=['train loss', 'train acc', 'test acc'])`` draws them."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(3.5, 2.5))
    _draw_curves(ax, history, len(history), title)
    return _save(fig, path)


def plot_confusion(matrix: np.ndarray, classes: Sequence[str], path: Path, title: str = '') -> Path:
    """The confusion matrix (rows: true class, columns: predicted), each row
    shaded by its fraction and annotated with counts."""
    plt = _pyplot()
    matrix = np.asarray(matrix)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(rows, cmap='Blues', vmin=0, vmax=1)
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, labels=classes, rotation=45, ha='right')
    ax.set_yticks(ticks, labels=classes)
    ax.set_xlabel('predicted')
    ax.set_ylabel('true')
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(matrix[i, j]), ha='center', va='center', fontsize=7,
                    color='white' if rows[i, j] > 0.5 else 'black')
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label='fraction of the true class')
    if title:
        ax.set_title(title)
    return _save(fig, path)


class Animator:
    """Training curves that redraw in place after every epoch, in a notebook,
    as the book's ``Animator``: pass it as ``train(..., on_epoch=Animator(num_epochs))``.

    Outside IPython it draws nothing until :meth:`save`.
    """

    def __init__(self, num_epochs: int, title: str = ''):
        plt = _pyplot()
        self.fig, self.ax = plt.subplots(figsize=(3.5, 2.5))
        plt.close(self.fig)      # shown through display() only, not again at the cell's end
        self.num_epochs, self.title, self._handle = num_epochs, title, None

    def __call__(self, history) -> None:
        _draw_curves(self.ax, history, self.num_epochs, self.title)
        try:
            from IPython import get_ipython
            from IPython.display import Image, display
        except ImportError:
            return
        if get_ipython() is None:
            return
        # A PNG rendered here shows whatever matplotlib backend is active (d2lnets uses Agg).
        buf = io.BytesIO()
        self.fig.savefig(buf, format='png', dpi=100, bbox_inches='tight')
        image = Image(data=buf.getvalue(), format='png')
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)

    def save(self, path: Path) -> Path:
        """Write the current figure as a PNG."""
        return _save(self.fig, path, close=False)   # it may still redraw
