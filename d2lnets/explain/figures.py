"""The pictures of what the networks compute: the LeNet-5 demo's display of every
layer (:func:`activation_figure`), the first convolution's kernels and the weight
statistics (:func:`filter_figure`), where the network looks (:func:`saliency_figure`)
and what it gets most confidently wrong (:func:`mistakes_figure`).

Drawing only: the arrays come from :mod:`d2lnets.explain` 's computing modules
(activations, saliency, filters, mistakes), which need no matplotlib. Every
function returns the matplotlib Figure (shown inline by a notebook, written by
:func:`d2lnets.drawing.save_png`). The pictures say what they show: each map's
colour scale is a colourbar or a caption line, a layer's channel maps share one
scale (normalized per layer, not per channel), and images are the network's input,
after preprocessing.
"""
import math
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from ..deploy.predict import softmax
from ..drawing import pyplot

__all__ = ['activation_figure', 'filter_figure', 'saliency_figure', 'mistakes_figure', 'tile']

# The most channel maps one layer's grid shows (the caption then states the total).
MAX_CHANNELS = 16
# Panels per row of the activation figure.
COLUMNS = 4
# Maps are drawn per layer: one scale for every channel of the layer.
PER_LAYER = 'colours: one scale per layer (all its channels), not per channel'


def _unbatched(array: Any) -> np.ndarray:
    # (1, C, h, w) -> (C, h, w) and (1, n) -> (n,): one example's output.
    a = np.asarray(array, dtype=np.float32)
    return a[0] if a.ndim in (2, 4) and a.shape[0] == 1 else a


def tile(maps: np.ndarray, limit: int = MAX_CHANNELS) -> Tuple[np.ndarray, int]:
    """(C, h, w) or (C, h, w, 3) maps -> one mosaic of the first ``min(C, limit)``, in a near-square
    grid with one pixel of NaN (drawn blank) between them; and how many it shows."""
    maps = np.asarray(maps, dtype=np.float32)
    shown = min(len(maps), limit)
    cols = math.ceil(math.sqrt(shown))
    rows = math.ceil(shown / cols)
    h, w = maps.shape[1:3]
    mosaic = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1) + maps.shape[3:], np.nan, np.float32)
    for i in range(shown):
        r, c = divmod(i, cols)
        mosaic[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = maps[i]
    return mosaic, shown


def _range(a: np.ndarray) -> Tuple[float, float]:
    # The colour scale of one array: its finite minimum and maximum, never an empty interval.
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def _blank_cmap(name: str, gap: str = 'white'):
    # A colour map drawing NaN (the mosaic's gaps) in ``gap``, a colour the map itself has not.
    import matplotlib
    cmap = matplotlib.colormaps[name].copy()
    cmap.set_bad(gap)
    return cmap


def _colorbar(ax, im, label: str = '') -> None:
    # The colour scale of the image ``im`` beside its axes: how its values became colours.
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label).ax.tick_params(labelsize=6)


def _rgb(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    # (3, H, W) -> (H, W, 3) in [0, 1]: one linear scale, lo -> 0 and hi -> 1, for all three channels.
    return np.clip((image.transpose(1, 2, 0) - lo) / (hi - lo), 0, 1)


def _draw_image(ax, image: np.ndarray, title: str) -> None:
    """The network's input (C, H, W) as it saw it: one channel in gray from its minimum to its
    maximum (a colourbar), three as RGB with one linear scale over all channels (a caption)."""
    image = _unbatched(image)
    lo, hi = _range(image)
    if image.shape[0] == 3:
        ax.imshow(_rgb(image, lo, hi))
        ax.set_xlabel('RGB: input values %.3g ... %.3g to 0 ... 1, one scale' % (lo, hi), fontsize=7)
    else:
        im = ax.imshow(image[0], cmap='gray', vmin=lo, vmax=hi)
        _colorbar(ax, im)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_maps(ax, name: str, maps: np.ndarray, limit: int) -> None:
    # A conv or pool output (C, h, w): its first ``limit`` channels tiled, one scale for the layer.
    lo, hi = _range(maps)
    mosaic, shown = tile(maps, limit)
    im = ax.imshow(mosaic, cmap=_blank_cmap('viridis'), vmin=lo, vmax=hi, interpolation='nearest')
    _colorbar(ax, im)
    count = '%d channels' % len(maps) if shown == len(maps) else 'first %d of %d channels' % (shown, len(maps))
    ax.set_title('%s: %s, %dx%d' % (name, count, maps.shape[1], maps.shape[2]), fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_strip(ax, name: str, values: np.ndarray) -> None:
    # A dense output (n,) as one row of n cells, its colour scale a colourbar.
    lo, hi = _range(values)
    im = ax.imshow(values.reshape(1, -1), cmap='viridis', vmin=lo, vmax=hi, aspect='auto', interpolation='nearest')
    _colorbar(ax, im)
    ax.set_title('%s: %d units' % (name, values.size), fontsize=8)
    ax.set_yticks([])
    ax.tick_params(labelsize=6)


def _draw_top(ax, logits: np.ndarray, classes: Sequence[str], top: int) -> None:
    # The top classes with their probabilities, and the answer, as the demo's display ends.
    probs = softmax(logits.reshape(1, -1).astype(np.float64))[0]
    order = np.argsort(-probs, kind='stable')[:top]
    ax.barh(np.arange(len(order))[::-1], probs[order], color='#4477aa')
    ax.set_yticks(np.arange(len(order))[::-1], labels=['%s %.1f%%' % (classes[i], 100 * probs[i]) for i in order],
                  fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel('probability (softmax of the logits)', fontsize=7)
    ax.tick_params(axis='x', labelsize=6)
    ax.set_title('answer: %s' % classes[order[0]], fontsize=11, fontweight='bold')


def _kind(activation) -> str:
    return getattr(activation, 'kind', 'other')


def activation_figure(image: np.ndarray, activations: Sequence[Any], classes: Sequence[str],
                      layers: Optional[Sequence[str]] = None, max_channels: int = MAX_CHANNELS, top: int = 3,
                      fig=None, title: str = ''):
    """The LeNet-5 demo's display: the input as the network saw it, each layer's output, the top
    classes and "answer: CLASS".

    Parameters
    ----------
    image : (C, H, W) or (1, C, H, W)
        The network's input, after preprocessing.
    activations : list of Activation
        ``d2lnets.explain.activations.activations(net, x)``: ``name``, ``kind``, ``array``; the last
        holds the logits. Outputs with channel maps (C, h, w) are tiled grids (the first
        ``max_channels``, the title stating the total), others strips of units.
    classes : names of the logits' classes.
    layers : the names to draw (default all); the logits' top classes are drawn always.
    fig : a Figure or SubFigure to draw into (two side by side: ``plt.figure().subfigures(1, 2)``).
    """
    plt = pyplot()
    *outputs, logits = activations
    if layers is not None:
        known = [a.name for a in outputs]
        unknown = [n for n in layers if n not in known]
        if unknown:
            raise ValueError('no layer named %s; the layers are %s' % (', '.join(map(repr, unknown)), ', '.join(known)))
        outputs = [a for a in outputs if a.name in layers]
    panels = 2 + len(outputs)
    # In a given (sub)figure, typically half a figure's width: three panels a row.
    cols = min(COLUMNS if fig is None else 3, panels)
    rows = math.ceil(panels / cols)
    fig = fig if fig is not None else plt.figure(figsize=(3.4 * cols, 2.9 * rows), layout='constrained')
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    _draw_image(axes[0], image, 'input, as the network saw it')
    for ax, act in zip(axes[1:], outputs):
        a = _unbatched(act.array)
        if a.ndim == 3 and a.shape[1] * a.shape[2] > 1:
            _draw_maps(ax, act.name, a, max_channels)
        else:
            _draw_strip(ax, act.name, a.reshape(-1))
    _draw_top(axes[len(outputs) + 1], _unbatched(logits.array), classes, top)
    for ax in axes[panels:]:
        ax.axis('off')
    fig.suptitle('%s\n%s' % (title, PER_LAYER) if title else PER_LAYER, fontsize=9)
    return fig


def _rgb_kernels(weights: np.ndarray) -> Tuple[np.ndarray, float]:
    # (out, 3, kh, kw) -> (out, kh, kw, 3) in [0, 1]: one scale for all, -m -> 0, 0 -> 0.5, +m -> 1.
    m = float(np.abs(weights).max()) or 1.0
    return 0.5 + weights.transpose(0, 2, 3, 1) / (2 * m), m


def _draw_table(ax, rows: Sequence[Sequence[Any]]) -> None:
    # (name, shape, mean, std, near-zero share) per layer, as weight_stats gives them.
    text = [[str(r[0]), 'x'.join(str(d) for d in r[1]), '%.3g' % r[2], '%.3g' % r[3], '%.1f%%' % (100 * r[4])]
            for r in rows]
    from .filters import NEAR_ZERO
    ax.axis('off')
    table = ax.table(cellText=text, colLabels=['layer', 'shape', 'mean', 'std', 'near zero'], loc='center',
                     cellLoc='left')

    table.auto_set_font_size(False)
    table.set_fontsize(7)
    ax.set_title("weight statistics per layer (near zero: |w| below %g%% of the layer's largest |w|)"
                 % (100 * NEAR_ZERO), fontsize=9)


def filter_figure(weights: np.ndarray, stats: Optional[Sequence[Sequence[Any]]] = None, max_kernels: int = 96,
                  max_inputs: int = 6, title: str = ''):
    """The first convolution's kernels (out, in, kh, kw): as RGB images for three input
    channels (ImageNet weights), else one grid per input channel (the first ``max_inputs``),
    all on one colour scale; below them the weight statistics ``stats``
    (``d2lnets.explain.filters.weight_stats(net)`` rows), if given."""
    plt = pyplot()
    weights = np.asarray(weights, dtype=np.float32)
    out, inputs, kh, kw = weights.shape
    grids = 1 if inputs == 3 else min(inputs, max_inputs)
    fig = plt.figure(figsize=(max(4.0, 3.6 * grids), 4.2 + (0.22 * len(stats) + 0.6 if stats else 0)))
    spec = fig.add_gridspec(2 if stats else 1, grids,
                            height_ratios=[4, 0.22 * len(stats) + 0.6] if stats else None)
    shown = min(out, max_kernels)
    count = '%d kernels %dx%d' % (out, kh, kw) if shown == out else 'first %d of %d kernels %dx%d' % (
        shown, out, kh, kw)
    if inputs == 3:
        kernels, m = _rgb_kernels(weights)
        mosaic, _ = tile(kernels, max_kernels)
        ax = fig.add_subplot(spec[0, 0])
        ax.imshow(np.nan_to_num(mosaic, nan=1.0), interpolation='nearest')
        ax.set_title('first convolution: %s, as RGB' % count, fontsize=9)
        ax.set_xlabel('weights -%.3g ... 0 ... %.3g to 0 ... 0.5 ... 1 per colour, one scale' % (m, m), fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        m = float(np.abs(weights).max()) or 1.0
        for c in range(grids):
            ax = fig.add_subplot(spec[0, c])
            mosaic, _ = tile(weights[:, c], max_kernels)
            # Gaps in grey: white is a weight of 0 on this scale.
            im = ax.imshow(mosaic, cmap=_blank_cmap('RdBu_r', gap='#808080'), vmin=-m, vmax=m,
                           interpolation='nearest')
            _colorbar(ax, im, 'weight')
            ax.set_title('input channel %d: %s' % (c, count), fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    note = 'one colour scale for every kernel'
    if inputs != 3 and grids < inputs:
        note += '; first %d of %d input channels shown' % (grids, inputs)
    if stats:
        _draw_table(fig.add_subplot(spec[1, :]), stats)
    fig.suptitle('%s\n%s' % (title, note) if title else note, fontsize=9)
    return fig


def _overlay(ax, image: np.ndarray, heat: np.ndarray, cmap: str, title: str, label: str) -> None:
    # ``heat`` (H, W) over the input in gray (its channel mean for RGB), from 0 to its maximum.
    image = _unbatched(image)
    gray = image.mean(axis=0)
    lo, hi = _range(gray)
    ax.imshow(gray, cmap='gray', vmin=lo, vmax=hi)
    top = float(np.max(heat)) or 1.0
    im = ax.imshow(heat, cmap=cmap, vmin=0, vmax=top, alpha=0.55, interpolation='nearest')   # pixels as computed
    _colorbar(ax, im, label)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def saliency_figure(image: np.ndarray, classes: Sequence[str], saliency=None, grad_cam=None, title: str = ''):
    """Where the network looks, over the input as it saw it: the vanilla saliency map
    (``d2lnets.explain.saliency.saliency``) on its own and overlaid, and Grad-CAM
    (``saliency.grad_cam``, upsampled to the input) overlaid; either may be None."""
    if saliency is None and grad_cam is None:
        raise ValueError('give a saliency map, a Grad-CAM map, or both')
    plt = pyplot()
    panels = 1 + (2 if saliency is not None else 0) + (1 if grad_cam is not None else 0)
    fig, axes = plt.subplots(1, panels, figsize=(3.4 * panels, 3.5), squeeze=False, layout='constrained')
    axes = list(axes[0])
    _draw_image(axes.pop(0), image, 'input, as the network saw it')
    if saliency is not None:
        name = classes[saliency.cls]
        ax = axes.pop(0)
        smap = np.asarray(saliency.map, dtype=np.float32)
        im = ax.imshow(smap, cmap='hot', vmin=0, vmax=float(smap.max()) or 1.0, interpolation='nearest')
        _colorbar(ax, im, 'saliency')
        ax.set_title('saliency for %s\n|d score / d input|, largest over channels' % name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        _overlay(axes.pop(0), image, smap, 'hot', 'saliency over the input', 'saliency')
    if grad_cam is not None:
        _overlay(axes.pop(0), image, np.asarray(grad_cam.upsampled, dtype=np.float32), 'jet',
                 'Grad-CAM at %s for %s' % (grad_cam.layer, classes[grad_cam.cls]), 'Grad-CAM')
    scale = "colour scales: from 0 to each map's maximum (its colourbar)"
    fig.suptitle('%s\n%s' % (title, scale) if title else scale, fontsize=9)
    return fig


def mistakes_figure(mistakes: Sequence[Any], images: Sequence[np.ndarray], classes: Sequence[str],
                    columns: int = 5, title: str = ''):
    """The test images the network is most confidently wrong on: for each of ``mistakes``
    (``d2lnets.explain.mistakes.Mistake``: ``true``, ``predicted``, ``probability``) its image
    of ``images`` as the network saw it (C, H, W), the true class, the predicted class and its
    probability; all images on one gray scale."""
    plt = pyplot()
    if not mistakes:
        raise ValueError('no mistakes to draw: the network got every test image right')
    images = [_unbatched(image) for image in images]
    lo, hi = _range(np.stack(images))
    cols = min(columns, len(mistakes))
    rows = math.ceil(len(mistakes) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.6 * rows), squeeze=False, layout='constrained')
    for ax, m, image in zip(axes.flat, mistakes, images):
        if image.shape[0] == 3:
            ax.imshow(_rgb(image, lo, hi))
        else:
            ax.imshow(image[0], cmap='gray', vmin=lo, vmax=hi)
        ax.set_title('true: %s\npredicted: %s\np = %.3f' % (classes[m.true], classes[m.predicted], m.probability),
                     fontsize=8, color='#aa2222')
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(mistakes):]:
        ax.axis('off')
    caption = 'the %d most confidently wrong; input values %.3g ... %.3g drawn black ... white' % (len(mistakes), lo, hi)
    fig.suptitle('%s\n%s' % (title, caption) if title else caption, fontsize=9)
    return fig
