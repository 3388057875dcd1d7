"""Image files -> the input of a Fashion-MNIST network, as the data set was made.

Zalando made Fashion-MNIST from product photos on a light background: trimmed
to the product, longest edge resized to 28, centred on a 28 x 28 canvas,
intensities negated, 8-bit grayscale. :func:`fashion_mnist_form` does the same to
a PNG or JPEG, so that a photo of a shoe looks to the network like the data it
was trained on; a 28 x 28 image is taken as it is (it has that form already, up
to the inversion). Networks trained on resized images (224 x 224 for AlexNet,
VGG, NiN) then get the training pipeline's bilinear resize.

Needs only numpy and Pillow (no MXNet), for the ONNX deploy path.
"""
import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .data import IMAGE_SIZE, NORMALIZATION   # 28; the lecture's ToTensor: pixel / 255

# Fashion-MNIST's side length.
FORM_SIZE = IMAGE_SIZE
# Zalando trims edges within 5% of the maximum intensity of the background.
TRIM_THRESHOLD = 0.05 * 255


def read_image(path: str, mode: str = 'L') -> np.ndarray:
    """A PNG, JPEG (or any image Pillow reads) as uint8: (height, width)
    grayscale for ``mode='L'``, (height, width, 3) for ``mode='RGB'``.

    Transparent pixels count as white, the background of product photos.
    """
    from PIL import Image, UnidentifiedImageError
    if not os.path.isfile(path):
        raise FileNotFoundError('no such image file: %s' % path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ('RGBA', 'LA', 'PA') or (img.mode == 'P' and 'transparency' in img.info):
                rgba = img.convert('RGBA')
                white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(white, rgba)
            return np.asarray(img.convert(mode), dtype=np.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as err:
        # Pillow raises SyntaxError for some damaged PNGs.
        raise ValueError('cannot read %s as an image (%s); give a PNG or JPEG file'
                         % (path, str(err).strip() or type(err).__name__)) from None


def _background(gray: np.ndarray) -> float:
    """The median of the border pixels: the background's intensity."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return float(np.median(border))


def _trim(gray: np.ndarray, background: float) -> np.ndarray:
    """Crop to the rows and columns that differ from the background."""
    mask = np.abs(gray.astype(np.float32) - background) > TRIM_THRESHOLD
    if not mask.any():
        return gray
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return gray[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def fashion_mnist_form(gray: np.ndarray, size: int = FORM_SIZE) -> np.ndarray:
    """(height, width) uint8 -> (size, size) uint8, light object on black.

    A light background is inverted. An image of ``size x size`` is otherwise
    kept as it is; a larger or non-square one is trimmed to the object, its
    longest edge resized to ``size`` and centred on a black square canvas.
    """
    from PIL import Image
    gray = np.asarray(gray, dtype=np.uint8)
    if gray.ndim != 2 or min(gray.shape) < 1:
        raise ValueError('expected a (height, width) grayscale image, got shape %s' % (gray.shape,))
    background = _background(gray)
    if background > 127:
        gray, background = 255 - gray, 255 - background
    if gray.shape == (size, size):
        return gray
    obj = _trim(gray, background)
    h, w = obj.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    # Antialiased resampling: Zalando skipped rows and columns, which aliases photos.
    obj = np.asarray(Image.fromarray(obj).resize((nw, nh), Image.LANCZOS))
    out = np.zeros((size, size), np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = obj
    return out


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of a 1-D bilinear resize that samples pixel
    centres (``align_corners=False``), as the training pipeline's resize."""
    scale = n_in / n_out
    src = np.clip((np.arange(n_out) + 0.5) * scale - 0.5, 0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (src - lo).astype(np.float32)
    m = np.zeros((n_out, n_in), np.float32)
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


def resize_bilinear(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """(..., H, W) float32 -> (..., height, width), bilinear with pixel centres
    aligned, as ``mx.nd.contrib.BilinearResize2D(..., align_corners=False)``."""
    rows = _bilinear_matrix(images.shape[-2], height)
    cols = _bilinear_matrix(images.shape[-1], width)
    return np.matmul(np.matmul(rows, images.astype(np.float32)), cols.T)


def to_input(gray_images: Sequence[np.ndarray], input_shape: Tuple[int, int, int],
             normalization: Optional[Dict[str, float]] = None) -> np.ndarray:
    """Grayscale images -> the network's (batch, channels, height, width) float32 input.

    Each image is brought to Fashion-MNIST's form (28 x 28), scaled as in
    training (``(pixel * scale - mean) / std``), resized bilinearly to the
    network's height and width if those differ, and repeated over the channels.
    """
    channels, height, width = (int(d) for d in input_shape)
    norm = dict(NORMALIZATION, **(normalization or {}))
    batch = np.stack([fashion_mnist_form(g) for g in gray_images]).astype(np.float32)
    batch = (batch * np.float32(norm['scale']) - np.float32(norm['mean'])) / np.float32(norm['std'])
    if (height, width) != batch.shape[1:]:
        batch = resize_bilinear(batch, height, width)
    return np.ascontiguousarray(np.repeat(batch[:, None], channels, axis=1), dtype=np.float32)


def load_images(paths: Sequence[str], input_shape: Tuple[int, int, int],
                normalization: Optional[Dict[str, float]] = None) -> np.ndarray:
    """Read image files into one input batch; see :func:`to_input`."""
    if not paths:
        raise ValueError('give at least one image file')
    return to_input([read_image(p) for p in paths], input_shape, normalization)


# GluonCV's ImageNet evaluation (as d2lnets.imagenet, which needs MXNet):
# shorter side to 256, centre 224 x 224, per-channel mean and std.
IMAGENET_RESIZE, IMAGENET_CROP = 256, 224
IMAGENET_NORMALIZATION = {'scale': 1 / 255, 'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]}


def imagenet_input(rgb: np.ndarray, normalization: Optional[Dict] = None) -> np.ndarray:
    """(height, width, 3) uint8 RGB -> (3, 224, 224) float32, as GluonCV's
    ``transform_eval``: the shorter side resized to 256 (bilinear, rounded to
    uint8 as OpenCV does), the centre cropped, scaled and normalized per channel."""
    norm = dict(IMAGENET_NORMALIZATION, **(normalization or {}))
    h, w = rgb.shape[:2]
    # MXNet's image.resize with keep_ratio: integer arithmetic, as here.
    if h > w:
        nh, nw = h * IMAGENET_RESIZE // w, IMAGENET_RESIZE
    else:
        nh, nw = IMAGENET_RESIZE, w * IMAGENET_RESIZE // h
    x = np.clip(np.floor(resize_bilinear(rgb.transpose(2, 0, 1), nh, nw) + 0.5), 0, 255)
    top, left = (nh - IMAGENET_CROP) // 2, (nw - IMAGENET_CROP) // 2
    x = x[:, top:top + IMAGENET_CROP, left:left + IMAGENET_CROP] * np.float32(norm['scale'])
    mean = np.asarray(norm['mean'], np.float32).reshape(-1, 1, 1)
    std = np.asarray(norm['std'], np.float32).reshape(-1, 1, 1)
    return ((x - mean) / std).astype(np.float32)
