"""matplotlib for d2lnets' figures: pyplot with a file backend, and a figure
saved as a PNG (or a PDF, an SVG: any format matplotlib writes) through
:func:`d2lnets.io.atomic_write`. matplotlib is imported
here only, when first drawn with (``training.plot``, ``explain.figures`` and
``perf.complexity_report`` use it)."""
import io
import os
from pathlib import Path

from .io import atomic_write
from .types import PathLike

__all__ = ['pyplot', 'figure_format', 'figure_bytes', 'save_figure', 'save_png']


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend (files need no display), except in a Jupyter
    kernel, whose inline backend (``$MPLBACKEND``) shows a figure at the end of the cell that drew it."""
    import matplotlib
    if 'inline' not in os.environ.get('MPLBACKEND', ''):
        matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    return plt


def figure_format(path: PathLike) -> str:
    """The file format ``path``'s extension names (``'png'``, ``'pdf'``, ``'svg'``, ...) if matplotlib
    writes it; ``ValueError`` in one line otherwise (before anything is drawn)."""
    ext = os.path.splitext(os.fspath(path))[1].lstrip('.').lower()
    pyplot()
    from matplotlib.backend_bases import FigureCanvasBase
    if ext not in FigureCanvasBase.get_supported_filetypes():
        raise ValueError('cannot write a figure to %r: use a file name ending in .png, .pdf or .svg' % str(path))
    return ext


def figure_bytes(fig, fmt: str = 'png', dpi: int = 150) -> bytes:
    """``fig`` as the bytes of a ``fmt`` file, cropped to what is drawn (a PNG: the same for the same figure)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches='tight')
    return buf.getvalue()


def save_figure(fig, path: PathLike, fmt: str = 'png', dpi: int = 150, close: bool = True) -> Path:
    """Write ``fig`` to ``path`` as a ``fmt`` file (:func:`figure_format`), cropped to what is drawn,
    atomically; then close it unless ``close`` is False (a figure the caller still shows)."""
    try:
        data = figure_bytes(fig, fmt, dpi)
        atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(data))
    finally:
        if close:
            pyplot().close(fig)
    return Path(path)


def save_png(fig, path: PathLike, close: bool = True) -> Path:
    """Write ``fig`` to ``path`` as a PNG (150 dpi), through :func:`save_figure`."""
    return save_figure(fig, path, 'png', close=close)
