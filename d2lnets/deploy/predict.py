"""Classify image files: top-k class names and probabilities.

Two ways to run the network: the MXNet network itself
(:func:`predict_network`), or an exported ONNX file in onnxruntime
(:func:`predict_onnx`), which needs neither MXNet nor a parameter file.
Images are prepared by :mod:`d2lnets.deploy.images` for both, with the transform the
weights' data set takes (its row in :mod:`d2lnets.datasets`): as Fashion-MNIST was made
for the Fashion-MNIST networks, as GluonCV evaluates for ImageNet weights. Nothing here
asks which data set that is.

Images are read, prepared and run one batch at a time (:func:`predict_batches`), so memory
is that of one batch, however many files. MXNet is imported only to run an MXNet network.
"""
import itertools
import math
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .. import limits
from ..weights.meta import data_set
from .images import check_image, prepare

Prediction = Tuple[int, str, float]   # (class index, class name, probability)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (batch, classes) logits, computed stably."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def class_names(meta: Dict[str, Any], num_outputs: int) -> List[str]:
    """The names of the ``num_outputs`` classes the metadata describes; else its data set's
    (Fashion-MNIST's when it names none) if there are as many; else ``'class 0'``, ..."""
    names = meta.get('classes')
    if isinstance(names, (list, tuple)) and len(names) == num_outputs:
        return [str(n) for n in names]
    try:
        names = data_set(meta).classes
    except (ValueError, ImportError):   # a data set d2lnets does not know; ImageNet's names without GluonCV
        names = []
    return names if len(names) == num_outputs else ['class %d' % i for i in range(num_outputs)]


def top_k(logits: np.ndarray, names: Sequence[str], k: int = 3) -> List[List[Prediction]]:
    """The ``k`` most probable classes of each row of (batch, classes)
    ``logits``: ``(index, name, probability)``, most probable first."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] != len(names):
        raise ValueError('expected logits of shape (batch, %d), got %s' % (len(names), logits.shape))
    probs = softmax(logits)
    order = np.argsort(-probs, axis=1, kind='stable')[:, :k]
    return [[(int(i), names[i], float(row[i])) for i in idx] for row, idx in zip(probs, order)]


def format_predictions(path: str, predictions: Sequence[Prediction]) -> List[str]:
    """Lines for printing one image's predictions: the path, then
    ``  probability  index  name`` per class."""
    return ['%s:' % path] + ['  %6.2f%%  %4d  %s' % (100 * p, i, name) for i, name, p in predictions]


def _data_set(meta: Dict[str, Any], source: str):
    # The facts of the weights' data set (d2lnets.weights.meta.data_set), an error naming ``source``.
    try:
        return data_set(meta)
    except ValueError as err:
        raise ValueError('%s: %s' % (source, err)) from None


def published_weights(name: str, pretrained: bool):
    """The registry's published weights of ``name``, fetched once and passed down to
    ``load_network``; None if not asked for, or if there are none (loading them then says so,
    after the images' check)."""
    from ..models.loading import pretrained_weights
    try:
        return pretrained_weights(name) if pretrained else None
    except ValueError:
        return None


def transform_before_loading(weights, params: Optional[str]):
    """The transform the weights will take, as their ``Weights`` or the ``meta.json`` beside the
    parameter file say before they load; None if they do not say (loading them tells what is wrong)."""
    if weights is not None:
        return weights.preprocessing
    if not params:
        return None
    from ..weights.meta import read_meta
    try:
        return data_set(read_meta(params) or {}).preprocessing
    except (ValueError, KeyError):
        return None


# How many images one batch holds (predict_batches): as many as make at most BATCH_ELEMENTS input
# elements (8 MiB of float32), at most MAX_BATCH: 64 Fashion-MNIST images, 13 ImageNet ones.
# Memory is then that of one batch, however many files are given.
BATCH_ELEMENTS = 1 << 21
MAX_BATCH = 64


def batch_size(input_shape: Sequence[int]) -> int:
    """The default number of images per batch for a network's ``input_shape`` (channels, height, width)."""
    return max(1, min(MAX_BATCH, BATCH_ELEMENTS // max(1, math.prod(int(d) for d in input_shape))))


def _chunks(paths: Iterable[str], size: int) -> Iterator[List[str]]:
    # Lists of at most ``size`` paths, taken from ``paths`` only as each is needed.
    it = iter(paths)
    while True:
        chunk = list(itertools.islice(it, size))
        if not chunk:
            return
        yield chunk


def predict_batches(run: Callable[[np.ndarray], np.ndarray], paths: Iterable[str], meta: Dict[str, Any],
                    input_shape: Tuple[int, int, int], source: str, k: Optional[int] = None,
                    batch: Optional[int] = None) -> Iterator[Tuple[str, List[Prediction]]]:
    """``(path, top-k predictions)`` for each image file, read, prepared and run by ``run``
    (a batch -> its logits) one batch at a time: at most ``batch`` images are in memory, and
    ``paths`` (any iterable) is read no further ahead than the batch being run."""
    size = batch_size(input_shape) if batch is None else limits.check('batch_size', batch)
    row = _data_set(meta, source)
    k = k or row.top          # 5 of ImageNet's 1000 classes, else 3
    for chunk in _chunks(paths, size):
        logits = run(prepare(chunk, row.preprocessing, input_shape))
        yield from zip(chunk, top_k(logits, class_names(meta, logits.shape[1]), k))


def _onnx_model(onnx_file: str, name: Optional[str]):
    from .onnx_model import OnnxModel
    model = OnnxModel(onnx_file)
    if name is not None and model.model_name not in (None, name):
        raise ValueError('%s holds %r, not %r' % (onnx_file, model.model_name, name))
    return model


def _onnx_batches(model, paths: Iterable[str], k: Optional[int], batch: Optional[int]):
    return predict_batches(model.run, paths, model.metadata, model.input_shape, model.path, k, batch)


def predict_onnx(onnx_file: str, paths: Iterable[str], k: Optional[int] = None, name: Optional[str] = None,
                 batch: Optional[int] = None) -> List[List[Prediction]]:
    """Top-``k`` predictions for image files from an exported ONNX file, with
    onnxruntime only (default ``k``: 3, for ImageNet 5). ``name``, if given,
    must be the model the file holds. Images are read ``batch`` at a time (:func:`predict_batches`)."""
    return [p for _, p in _onnx_batches(_onnx_model(onnx_file, name), paths, k, batch)]


def _network_batches(net, meta: Dict[str, Any], paths: Iterable[str], k: Optional[int], ctx,
                     batch: Optional[int]):
    import mxnet as mx
    from ..perf import fused
    ctx = ctx or mx.cpu()
    forward = fused.for_inference(net, [ctx])
    return predict_batches(lambda x: forward(mx.nd.array(x, ctx=ctx)).asnumpy(), paths, meta,
                           tuple(meta['input_shape'][-3:]), repr(meta.get('model', 'the network')), k, batch)


def predict_network(net, meta: Dict[str, Any], paths: Iterable[str], k: Optional[int] = None,
                    ctx=None, batch: Optional[int] = None) -> List[List[Prediction]]:
    """Top-``k`` predictions of the MXNet network ``net`` for image files, read ``batch`` at a
    time (:func:`predict_batches`).

    ``meta`` describes what ``net`` was trained on, as
    :func:`d2lnets.models.loading.load_network` returns it (``input_shape``,
    ``classes``, ``normalization``, ``dataset``).
    """
    return [p for _, p in _network_batches(net, meta, paths, k, ctx, batch)]


def iter_predictions(name: str, paths: Iterable[str], params: Optional[str] = None, pretrained: bool = False,
                     onnx: Optional[str] = None, k: Optional[int] = None, root: Optional[str] = None,
                     batch: Optional[int] = None) -> Iterator[Tuple[str, List[Prediction]]]:
    """``(path, top-k predictions)`` for each image file, as each batch is done, from one source
    of weights (see :func:`predict_files`). Memory is that of one batch (default
    :func:`batch_size`), however many files: ``paths`` may be any iterable, read one batch
    ahead at most. A list or tuple of paths is checked whole first, from each file's header
    (no image decoded), so a missing or bad file fails before the weights load."""
    limits.check('top', k, optional=True)
    limits.check('batch_size', batch, optional=True)
    if sum(map(bool, (params, pretrained, onnx))) != 1:
        raise ValueError('say which weights to use: `pretrained=True`, `params=FILE` or `onnx=FILE` (one of them)')
    if isinstance(paths, (list, tuple)) and not paths:
        raise ValueError('give at least one image file')
    if onnx:
        model = _onnx_model(onnx, name)
        if isinstance(paths, (list, tuple)):
            transform = _data_set(model.metadata, model.path).preprocessing
            for path in paths:
                check_image(path, transform)
        yield from _onnx_batches(model, paths, k, batch)
        return
    from ..models.loading import load_network
    weights = published_weights(name, pretrained)
    if isinstance(paths, (list, tuple)):
        transform = transform_before_loading(weights, params)
        for path in paths:   # a bad image fails before the weights load (or download): its header is enough
            check_image(path, transform)
    net, meta = load_network(name, params, weights or pretrained, root=root)
    yield from _network_batches(net, meta, paths, k, None, batch)


def predict_files(name: str, paths: Iterable[str], params: Optional[str] = None, pretrained: bool = False,
                  onnx: Optional[str] = None, k: Optional[int] = None, root: Optional[str] = None,
                  batch: Optional[int] = None) -> List[List[Prediction]]:
    """Top-``k`` predictions for image files from one source of weights:
    ``params`` (a parameter file), ``pretrained`` (the registry's published
    weights: Fashion-MNIST's shipped ones, or GluonCV's ImageNet ones, looked
    for in ``root`` first) or ``onnx`` (an exported file, run by onnxruntime
    without MXNet). Images are prepared as the weights' data set was (see
    :func:`d2lnets.deploy.images.prepare`), ``batch`` at a time (:func:`iter_predictions`); default
    ``k``: 3, for ImageNet 5."""
    return [p for _, p in iter_predictions(name, paths, params, pretrained, onnx, k, root, batch)]
