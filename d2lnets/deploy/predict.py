"""Classify image files: top-k class names and probabilities.

Two ways to run the network: the MXNet network itself
(:func:`predict_network`), or an exported ONNX file in onnxruntime
(:func:`predict_onnx`), which needs neither MXNet nor a parameter file.
Images are prepared by :mod:`d2lnets.deploy.images` for both: as Fashion-MNIST was
made for the Fashion-MNIST networks, as GluonCV evaluates for ImageNet weights.

This module imports MXNet only inside :func:`predict_network`.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import limits
from ..data import DATASETS, classes   # data imports MXNet only to iterate
from ..weights.meta import preprocessing
from .images import check_image, imagenet_input, load_images, read_image

Prediction = Tuple[int, str, float]   # (class index, class name, probability)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (batch, classes) logits, computed stably."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def class_names(meta: Dict[str, Any], num_outputs: int) -> List[str]:
    """The names of the ``num_outputs`` classes the metadata describes;
    Fashion-MNIST's when it says nothing and there are 10."""
    names = meta.get('classes')
    if isinstance(names, (list, tuple)) and len(names) == num_outputs:
        return [str(n) for n in names]
    dataset = meta.get('dataset') or 'fashion-mnist'
    if dataset in DATASETS and num_outputs == len(classes(dataset)):
        return classes(dataset)
    return ['class %d' % i for i in range(num_outputs)]


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


def default_top(meta: Dict[str, Any]) -> int:
    """How many classes to print by default: 5 of ImageNet's 1000, else 3."""
    return 5 if meta.get('dataset') == 'imagenet' else 3


def prepare(paths: Sequence[str], meta: Dict[str, Any], input_shape: Tuple[int, int, int],
            source: str) -> np.ndarray:
    """Image files -> the input batch of a network trained as ``meta`` says:
    Fashion-MNIST's form for the grayscale data sets, GluonCV's evaluation
    transform for ImageNet."""
    dataset = meta.get('dataset')
    try:
        # weights.meta owns which preprocessing each data set takes.
        kind = preprocessing(dataset) if dataset is not None else 'grayscale'
    except ValueError as err:
        raise ValueError('%s: %s' % (source, err)) from None
    if kind == 'imagenet':
        return np.stack([imagenet_input(read_image(p, 'RGB'), meta.get('normalization'), source=p) for p in paths])
    return load_images(paths, input_shape, meta.get('normalization'))


def _kind_before_loading(name: str, params: Optional[str], pretrained: bool) -> Optional[str]:
    # The preprocessing the weights will take, as far as the registry or the meta.json beside the
    # parameter file says before they load; None if they do not say (loading them tells what is wrong).
    from ..models.loading import pretrained_meta
    from ..weights.meta import read_meta
    try:
        meta = pretrained_meta(name) if pretrained else (read_meta(params) or {})
        return preprocessing(meta.get('dataset') or 'fashion-mnist')
    except (ValueError, KeyError):
        return None


def predict_onnx(onnx_file: str, paths: Sequence[str], k: Optional[int] = None,
                 name: Optional[str] = None) -> List[List[Prediction]]:
    """Top-``k`` predictions for image files from an exported ONNX file, with
    onnxruntime only (default ``k``: 3, for ImageNet 5). ``name``, if given,
    must be the model the file holds."""
    from .onnx_model import OnnxModel
    model = OnnxModel(onnx_file)
    if name is not None and model.model_name not in (None, name):
        raise ValueError('%s holds %r, not %r' % (onnx_file, model.model_name, name))
    logits = model.run(prepare(paths, model.metadata, model.input_shape, onnx_file))
    return top_k(logits, class_names(model.metadata, logits.shape[1]), k or default_top(model.metadata))


def predict_network(net, meta: Dict[str, Any], paths: Sequence[str], k: Optional[int] = None,
                    ctx=None) -> List[List[Prediction]]:
    """Top-``k`` predictions of the MXNet network ``net`` for image files.

    ``meta`` describes what ``net`` was trained on, as
    :func:`d2lnets.models.loading.load_network` returns it (``input_shape``,
    ``classes``, ``normalization``, ``dataset``).
    """
    import mxnet as mx
    from ..perf import fused
    batch = prepare(paths, meta, tuple(meta['input_shape'][-3:]), repr(meta.get('model', 'the network')))
    ctx = ctx or mx.cpu()
    logits = fused.for_inference(net, [ctx])(mx.nd.array(batch, ctx=ctx)).asnumpy()
    return top_k(logits, class_names(meta, logits.shape[1]), k or default_top(meta))


def predict_files(name: str, paths: Sequence[str], params: Optional[str] = None, pretrained: bool = False,
                  onnx: Optional[str] = None, k: Optional[int] = None,
                  root: Optional[str] = None) -> List[List[Prediction]]:
    """Top-``k`` predictions for image files from one source of weights:
    ``params`` (a parameter file), ``pretrained`` (the registry's published
    weights: Fashion-MNIST's shipped ones, or GluonCV's ImageNet ones, looked
    for in ``root`` first) or ``onnx`` (an exported file, run by onnxruntime
    without MXNet). Images are prepared as the weights' data set was (see
    :func:`prepare`); default ``k``: 3, for ImageNet 5."""
    limits.check('top', k, optional=True)
    if sum(map(bool, (params, pretrained, onnx))) != 1:
        raise ValueError('say which weights to use: --pretrained, --params FILE or --onnx FILE (one of them)')
    if not paths:
        raise ValueError('give at least one image file')
    if onnx:
        return predict_onnx(onnx, paths, k, name=name)
    from ..models.loading import load_network
    for path in paths:   # a bad image fails before the weights load (or download): its header is enough
        check_image(path, _kind_before_loading(name, params, pretrained))
    net, meta = load_network(name, params, pretrained, root=root)
    return predict_network(net, meta, paths, k)
