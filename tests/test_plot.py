"""Figures: training curves and the confusion matrix, written whole or not at all."""
import numpy as np

from d2lnets import data
from d2lnets.training.plot import plot_confusion, plot_history
from d2lnets.training.loop import History


def test_figures_are_pngs(tmp_path):
    h = History()
    for e in range(1, 4):
        h.append(epoch=e, loss=2.0 / e, train_acc=0.3 * e, test_acc=0.28 * e, seconds=1.0, examples_per_sec=10.0)
    for path in (plot_history(h, tmp_path / 'curves.png'),
                 plot_confusion(np.eye(10, dtype=int) * 5, data.classes('fashion-mnist'), tmp_path / 'c.png')):
        assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['c.png', 'curves.png']  # no temporary files left
