"""Image files -> the input of a network, as its data set was made: the transforms
:mod:`d2lnets.datasets` names, each run by :func:`prepare` (:data:`TRANSFORMS`).

Zalando made Fashion-MNIST from product photos on a light background: trimmed
to the product, longest edge resized to 28, centred on a 28 x 28 canvas,
intensities negated, 8-bit grayscale. :func:`fashion_mnist_form` does the same to
a PNG or JPEG, so that a photo of a shoe looks to the network like the data it
was trained on; a 28 x 28 image is taken as it is (it has that form already, up
to the inversion). Networks trained on resized images (224 x 224 for AlexNet,
VGG, NiN) then get the training pipeline's bilinear resize. ImageNet weights get
GluonCV's evaluation transform (:func:`imagenet_input`), in numpy, equal to its output.

Needs only numpy and Pillow (no MXNet), for the ONNX deploy path.
"""
import contextlib
import os
import re
import warnings
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple, Union

import numpy as np

from ..datasets import FASHION_MNIST_FORM, IMAGENET_EVAL, Preprocessing

# Fashion-MNIST's side length, 28.
FORM_SIZE = FASHION_MNIST_FORM.size
# Zalando trims edges within 5% of the maximum intensity of the background.
TRIM_THRESHOLD = 0.05 * 255


# The most pixels an image may have; checked from the header, before decoding.
# Pillow's own warning threshold (0.25 GB as 8-bit RGB), for both the
# Fashion-MNIST and the ImageNet path: a 20000 x 20000 PNG is refused in
# milliseconds instead of decoded into 1.2 GB of RGB.
MAX_PIXELS = 89_478_485

# Pillow modes with 8 bits per channel, which Pillow converts to 'L' and 'RGB' correctly.
_EIGHT_BIT_MODES = frozenset(['1', 'L', 'LA', 'La', 'P', 'PA', 'RGB', 'RGBA', 'RGBa', 'RGBX', 'CMYK', 'YCbCr'])
# Pillow's 16-bit unsigned grayscale, as a mode (Pillow >= 10 for PNG) or as the
# raw mode of an 'I' (32-bit) image (older Pillow opened 16-bit PNGs so).
_SIXTEEN_BIT = frozenset(['I;16', 'I;16L', 'I;16B', 'I;16N'])


def _too_large(path: str, pixels: str) -> ValueError:
    return ValueError('%s has %s pixels, more than the %d that d2lnets decodes (a guard against '
                      'decompression bombs); downscale it first, e.g. to 4000 pixels on its longer side'
                      % (path, pixels, MAX_PIXELS))


def _raw_mode(img) -> str:
    """The raw mode of the first tile (how the file stores pixels), '' if none."""
    if not img.tile:
        return ''
    args = img.tile[0][3]
    return args[0] if isinstance(args, tuple) else str(args)


def _eight_bit(img, raw_mode: str, path: str):
    """``img`` with 8 bits per channel: 16-bit grayscale divided by 257
    (65535 -> 255), float grayscale in [0, 1] multiplied by 255, both rounded.

    Pillow's own conversion clips them instead (a 16-bit white becomes 255, but
    so does every grey above 255/65535), so they are scaled here; a mode whose
    range is not known is refused.
    """
    from PIL import Image
    if img.mode in _EIGHT_BIT_MODES:
        return img
    if img.mode in _SIXTEEN_BIT or (img.mode == 'I' and raw_mode in _SIXTEEN_BIT):
        a = np.asarray(img).astype(np.uint32)           # (H, W), 0 ... 65535
        return Image.fromarray(((a * 255 + 32767) // 65535).astype(np.uint8), 'L')
    if img.mode == 'F':
        a = np.asarray(img, dtype=np.float32)            # (H, W)
        low, high = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if not (np.isfinite(low) and np.isfinite(high) and 0 <= low and high <= 1):
            raise ValueError('%s holds float pixels from %g to %g; d2lnets reads float images with '
                             'values in [0, 1] (0 black, 1 white): scale it so, or save it as an 8- or '
                             '16-bit PNG' % (path, low, high))
        return Image.fromarray(np.rint(a * 255).astype(np.uint8), 'L')
    raise ValueError('%s has pixels of Pillow mode %r (%s), whose range d2lnets does not know; '
                     'save it as an 8- or 16-bit PNG or as a JPEG'
                     % (path, img.mode, raw_mode or 'no raw mode'))


@contextlib.contextmanager
def _opened(path: str) -> Iterator[Any]:
    """``path`` opened by Pillow, its size checked from the header (nothing decoded yet); the errors
    of :func:`read_image`, also for what the caller's block raises while decoding."""
    from PIL import Image, UnidentifiedImageError
    if not os.path.isfile(path):
        raise FileNotFoundError('no such image file: %s' % path)
    try:
        with warnings.catch_warnings():
            # Our limit is Pillow's warning threshold: refused below, never warned about.
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size        # from the header: nothing is decoded yet
                if width * height > MAX_PIXELS:
                    raise _too_large(path, '%d x %d = %d' % (width, height, width * height))
                yield img
    except Image.DecompressionBombError as err:
        # Pillow refuses twice our limit when it opens the file, before we see its size.
        found = re.search(r'\((\d+) pixels\)', str(err))
        raise _too_large(path, found.group(1) if found else 'more') from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        # Pillow raises SyntaxError for some damaged PNGs.
        raise ValueError('cannot read %s as an image (%s); give a PNG or JPEG file'
                         % (path, str(err).strip() or type(err).__name__)) from None


def check_image(path: Union[str, 'os.PathLike[str]'],
                transform: Optional[Preprocessing] = None) -> Tuple[int, int]:
    """(height, width) of an image file from its header, without decoding it: ``ValueError`` as
    :func:`read_image` gives for an unreadable or too large file, and, if ``transform`` resizes
    the shorter side (ImageNet's), if that resize would make it too large (:func:`check_resized`).
    A cheap check of every file before the weights are loaded and any image is decoded."""
    with _opened(str(path)) as img:
        width, height = img.size
    if transform is not None and transform.resize:
        check_resized(height, width, str(path), transform.resize)
    return height, width


def read_image(path: Union[str, 'os.PathLike[str]'], mode: str = 'L') -> np.ndarray:
    """A PNG, JPEG (or any image Pillow reads) as uint8: (height, width)
    grayscale for ``mode='L'``, (height, width, 3) for ``mode='RGB'``.

    The one reader of image files, for every network and for the ONNX path.
    An EXIF Orientation tag is applied (the image as a viewer shows it).
    Transparent pixels count as white, the background of product photos.
    16-bit images are scaled from 0 ... 65535, float images from 0 ... 1, to
    0 ... 255. ``ValueError`` for an unreadable file, a pixel format of unknown
    range, or more than :data:`MAX_PIXELS` pixels (checked before decoding).
    """
    from PIL import Image, ImageOps
    if mode not in ('L', 'RGB'):
        raise ValueError("mode must be 'L' or 'RGB', got %r" % (mode,))
    path = str(path)
    with _opened(path) as img:
        raw_mode = _raw_mode(img)
        img.load()
        # A camera stores a portrait photo as a landscape one with an EXIF Orientation tag:
        # the network must see it as a viewer shows it, upright.
        img = ImageOps.exif_transpose(img)
        img = _eight_bit(img, raw_mode, path)
        if img.mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La') or (img.mode == 'P' and 'transparency' in img.info):
            rgba = img.convert('RGBA')
            white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(white, rgba)
        return np.asarray(img.convert(mode), dtype=np.uint8)


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
    norm = dict(FASHION_MNIST_FORM.normalization, **(normalization or {}))
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


# GluonCV's ImageNet evaluation (``transform_eval``), here in numpy, for the MXNet
# and the ONNX path alike: shorter side to IMAGENET_EVAL.resize, centre
# IMAGENET_EVAL.size x IMAGENET_EVAL.size, per-channel mean and std
# (d2lnets.datasets holds the data sets' facts).
# OpenCV's fixed-point bilinear resize of 8-bit images: weights in 1/2048.
_CV_COEF_SCALE = 2048


def _opencv_taps(n_in: int, n_out: int, clamp: bool, start: int = 0, count: Optional[int] = None):
    """The two source indices and fixed-point weights of output pixels ``start`` ... ``start + count``
    (default: all ``n_out``) of OpenCV's ``INTER_LINEAR``, computed in float32 as OpenCV does (each
    output pixel's own, so a part is the same as the whole, then cut).
    ``clamp``: columns put the edge weight on one pixel (rows clip indices only)."""
    count = n_out - start if count is None else count
    f = ((np.arange(start, start + count) + 0.5) * (n_in / n_out) - 0.5).astype(np.float32)
    lo = np.floor(f).astype(np.int64)
    f = f - lo.astype(np.float32)
    if clamp:
        edge = (lo < 0) | (lo >= n_in - 1)
        f[edge] = 0
        lo = np.where(lo < 0, 0, np.minimum(lo, n_in - 1))
    # saturate_cast<short>: round half to even, as np.rint.
    w0 = np.rint((np.float32(1) - f) * np.float32(_CV_COEF_SCALE)).astype(np.int64)
    w1 = np.rint(f * np.float32(_CV_COEF_SCALE)).astype(np.int64)
    return np.clip(lo, 0, n_in - 1), np.clip(lo + 1, 0, n_in - 1), w0, w1


def resize_uint8(image: np.ndarray, height: int, width: int,
                 crop: Optional[Tuple[int, int, int, int]] = None) -> np.ndarray:
    """(H, W, C) uint8 -> (height, width, C) uint8, bit for bit as OpenCV's
    ``cv2.resize(..., interpolation=INTER_LINEAR)`` on x86 (MXNet's
    ``image.resize``, hence GluonCV's ``transform_eval``).

    OpenCV works in fixed point: the horizontal pass sums ``pixel * weight``
    in integers, the vertical pass (its SSE2/AVX2 form) shifts by 4, takes the
    high 16 bits of each product, adds 2 and shifts by 2. An exact halving of
    both sides is OpenCV's 2 x 2 area average instead.

    ``crop`` ``(top, left, crop_height, crop_width)``: only that part of the
    output is computed (equal to the whole, cropped), in memory of the crop's size.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError('expected an (H, W, C) uint8 image, got %s %s' % (image.dtype, image.shape))
    h, w = image.shape[:2]
    top, left, out_h, out_w = crop if crop is not None else (0, 0, height, width)
    if (h, w) == (2 * height, 2 * width):
        src = image[2 * top:2 * (top + out_h), 2 * left:2 * (left + out_w)].astype(np.int64)
        return ((src[0::2, 0::2] + src[1::2, 0::2] + src[0::2, 1::2] + src[1::2, 1::2] + 2) >> 2).astype(np.uint8)
    x0, x1, a0, a1 = _opencv_taps(w, width, clamp=True, start=left, count=out_w)
    y0, y1, b0, b1 = _opencv_taps(h, height, clamp=False, start=top, count=out_h)
    # Only the source rows the output rows read: (rows, out_w, C), scaled by 2048.
    used, y_index = np.unique(np.concatenate([y0, y1]), return_inverse=True)
    y0, y1 = y_index[:out_h], y_index[out_h:]
    src = image[used].astype(np.int64)
    rows = src[:, x0] * a0[:, None] + src[:, x1] * a1[:, None]
    out = (((rows[y0] >> 4) * b0[:, None, None]) >> 16) + (((rows[y1] >> 4) * b1[:, None, None]) >> 16)
    return np.clip((out + 2) >> 2, 0, 255).astype(np.uint8)


def imagenet_resized(height: int, width: int, side: int = IMAGENET_EVAL.resize) -> Tuple[int, int]:
    """(height, width) of an image after ImageNet's resize, the shorter side to ``side`` (256), as
    MXNet's ``image.resize`` with ``keep_ratio`` computes it (integer arithmetic)."""
    if height > width:
        return height * side // width, side
    return side, width * side // height


def check_resized(height: int, width: int, source: str = 'the image', side: int = IMAGENET_EVAL.resize) -> None:
    """``ValueError`` if an image of ``height x width`` would have more than :data:`MAX_PIXELS`
    pixels after ImageNet's resize (an extreme aspect ratio: 2 x 60000 becomes 256 x 7680000)."""
    nh, nw = imagenet_resized(height, width, side)
    if nh * nw > MAX_PIXELS:
        raise ValueError('%s resized for ImageNet (shorter side %d) would have %d x %d = %d pixels, more than the '
                         '%d that d2lnets allows; crop it to a less extreme aspect ratio'
                         % (source, side, nh, nw, nh * nw, MAX_PIXELS))


def imagenet_input(rgb: np.ndarray, transform: Preprocessing = IMAGENET_EVAL, source: str = 'the image') -> np.ndarray:
    """(height, width, 3) uint8 RGB -> (3, 224, 224) float32, as GluonCV's
    ``transform_eval`` (equal to its output): the shorter side resized to 256
    as OpenCV resizes, the centre cropped, scaled and normalized per channel
    (the sides and the normalization: ``transform``'s). Only the crop is computed;
    ``ValueError`` naming ``source`` if the resized image would exceed
    :data:`MAX_PIXELS` (:func:`check_resized`)."""
    norm, crop = transform.normalization, transform.size
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError('expected an (H, W, 3) uint8 RGB image, got %s of shape %s' % (rgb.dtype, rgb.shape))
    h, w = rgb.shape[:2]
    check_resized(h, w, source, transform.resize)
    nh, nw = imagenet_resized(h, w, transform.resize)
    top, left = (nh - crop) // 2, (nw - crop) // 2
    x = resize_uint8(rgb, nh, nw, crop=(top, left, crop, crop))
    # As MXNet's ToTensor (pixel / 255.0f) and Normalize ((x - mean) / std), in float32.
    x = x.transpose(2, 0, 1).astype(np.float32) / np.float32(1 / norm['scale'])
    mean = np.asarray(norm['mean'], np.float32).reshape(-1, 1, 1)
    std = np.asarray(norm['std'], np.float32).reshape(-1, 1, 1)
    return ((x - mean) / std).astype(np.float32)


def _form_batch(paths: Sequence[str], transform: Preprocessing, input_shape: Tuple[int, int, int]) -> np.ndarray:
    return load_images(paths, input_shape, transform.normalization)


def _eval_batch(paths: Sequence[str], transform: Preprocessing, input_shape: Tuple[int, int, int]) -> np.ndarray:
    # The crop is the transform's (224 x 224), as the weights were evaluated.
    return np.stack([imagenet_input(read_image(p, transform.mode), transform, source=p) for p in paths])


# Each transform d2lnets.datasets names: (paths, the transform, the network's (C, H, W)) -> a batch.
TRANSFORMS: Dict[str, Callable[[Sequence[str], Preprocessing, Tuple[int, int, int]], np.ndarray]] = {
    FASHION_MNIST_FORM.name: _form_batch,
    IMAGENET_EVAL.name: _eval_batch,
}


def prepare(paths: Sequence[str], transform: Preprocessing, input_shape: Tuple[int, int, int]) -> np.ndarray:
    """Image files -> the (batch, C, H, W) float32 input of a network whose weights take
    ``transform`` (:attr:`d2lnets.weights.Weights.preprocessing`, or a ``meta.json``'s:
    ``d2lnets.weights.meta.data_set(meta).preprocessing``)."""
    if not paths:
        raise ValueError('give at least one image file')
    return TRANSFORMS[transform.name](paths, transform, input_shape)
