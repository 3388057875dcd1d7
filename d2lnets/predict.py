"""Classify image files with a Fashion-MNIST network: top-k class names and probabilities.

Two ways to run the network: the MXNet network itself
(:func:`predict_network`), or an exported ONNX file in onnxruntime
(:func:`predict_onnx`), which needs neither MXNet nor a parameter file.
Images are prepared by :mod:`d2lnets.images` for both, as Fashion-MNIST was made.

This module imports MXNet only inside :func:`predict_network`.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .images import load_images

# The labels of Fashion-MNIST, in label order (0 = t-shirt/top).
FASHION_MNIST_CLASSES = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat',
                         'sandal', 'shirt', 'sneaker', 'bag', 'ankle boot']
# Data sets whose images :mod:`d2lnets.images` prepares (grayscale, 28 x 28 form).
GRAYSCALE_DATASETS = ('fashion-mnist', 'mnist')

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
    if meta.get('dataset', 'fashion-mnist') == 'fashion-mnist' and num_outputs == len(FASHION_MNIST_CLASSES):
        return list(FASHION_MNIST_CLASSES)
    if meta.get('dataset') == 'mnist' and num_outputs == 10:
        return [str(d) for d in range(10)]
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


def _check_grayscale(meta: Dict[str, Any], source: str) -> None:
    dataset = meta.get('dataset')
    if dataset is not None and dataset not in GRAYSCALE_DATASETS:
        raise ValueError('%s was trained on %s; this prediction path prepares images as Fashion-MNIST '
                         '(grayscale, 28 x 28) and supports %s only'
                         % (source, dataset, ', '.join(GRAYSCALE_DATASETS)))


def predict_onnx(onnx_file: str, paths: Sequence[str], k: int = 3,
                 name: Optional[str] = None) -> List[List[Prediction]]:
    """Top-``k`` predictions for image files from an exported ONNX file, with
    onnxruntime only. ``name``, if given, must be the model the file holds."""
    from .onnx_model import OnnxModel
    model = OnnxModel(onnx_file)
    if name is not None and model.model_name not in (None, name):
        raise ValueError('%s holds %r, not %r' % (onnx_file, model.model_name, name))
    _check_grayscale(model.metadata, onnx_file)
    batch = load_images(paths, model.input_shape, model.metadata.get('normalization'))
    logits = model.run(batch)
    return top_k(logits, class_names(model.metadata, logits.shape[1]), k)


def predict_network(net, meta: Dict[str, Any], paths: Sequence[str], k: int = 3,
                    ctx=None) -> List[List[Prediction]]:
    """Top-``k`` predictions of the MXNet network ``net`` for image files.

    ``meta`` describes what ``net`` was trained on, as
    :func:`d2lnets.loading.load_network` returns it (``input_shape``,
    ``classes``, ``normalization``, ``dataset``).
    """
    import mxnet as mx
    _check_grayscale(meta, repr(meta.get('model', 'the network')))
    batch = load_images(paths, tuple(meta['input_shape'][-3:]), meta.get('normalization'))
    logits = net(mx.nd.array(batch, ctx=ctx or mx.cpu())).asnumpy()
    return top_k(logits, class_names(meta, logits.shape[1]), k)
