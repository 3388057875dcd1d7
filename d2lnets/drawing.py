"""matplotlib for d2lnets' figures: pyplot with a file backend, and a figure
saved as a PNG through :func:`d2lnets.io.atomic_write`. matplotlib is imported
here only, when first drawn with (``training.plot`` and ``explain.figures`` use it)."""
import io
import os
from pathlib import Path

from .io import atomic_write
from .types import PathLike

__all__ = ['pyplot', 'png_bytes', 'save_png']


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend (files need no display), except in a Jupyter
    kernel, whose inline backend (``$MPLBACKEND``) shows a figure at the end of the cell that drew it."""
    import matplotlib
    if 'inline' not in os.environ.get('MPLBACKEND', ''):
        matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    return plt


def png_bytes(fig, dpi: int = 150) -> bytes:
    """``fig`` as the bytes of a PNG, cropped to what is drawn (the same for the same figure)."""
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=dpi, bbox_inches='tight')
    return buf.getvalue()


def save_png(fig, path: PathLike, close: bool = True) -> Path:
    """Write ``fig`` to ``path`` as a PNG (150 dpi, cropped to what is drawn), atomically;
    then close it unless ``close`` is False (a figure the caller still shows)."""
    try:
        data = png_bytes(fig)
        atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(data))
    finally:
        if close:
            pyplot().close(fig)
    return Path(path)
