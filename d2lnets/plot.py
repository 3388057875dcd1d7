"""Figures: training curves in the style of the book's ``Animator``, and a
confusion matrix. matplotlib is imported here only, with a file backend."""
from pathlib import Path
from typing import Sequence

import numpy as np

from .checkpoint import atomic_write

__all__ = ['plot_history', 'plot_confusion']


def _pyplot():
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> Path:
    plt = _pyplot()
    try:
        atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format='png', dpi=150, bbox_inches='tight'))
    finally:
        plt.close(fig)
    return Path(path)


def plot_history(history, path: Path, title: str = '') -> Path:
    """Train loss, train accuracy and test accuracy per epoch, on one axis with
    x from 1 to the last epoch, as the book's ``Animator(xlabel='epoch',
    legend=['train loss', 'train acc', 'test acc'])`` draws them."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(3.5, 2.5))
    for values, style, label in ((history.loss, '-', 'train loss'), (history.train_acc, 'm--', 'train acc'),
                                 (history.test_acc, 'g-.', 'test acc')):
        ax.plot(history.epoch, values, style, label=label)
    from matplotlib.ticker import MaxNLocator
    ax.set_xlabel('epoch')
    ax.set_xlim(1, max(len(history), 2))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid()
    ax.legend()
    if title:
        ax.set_title(title, fontsize='small')
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
