"""ImageNet inference: the standard preprocessing and top-k class names.

The preprocessing is the one GluonCV's ImageNet weights were evaluated with
(``gluoncv.data.transforms.presets.imagenet.transform_eval``): resize the
shorter side to 256, crop the centre 224x224, scale to [0, 1] and normalize
with ImageNet's per-channel mean and standard deviation.
"""
from pathlib import Path
from typing import List, Optional, Sequence, Union

import mxnet as mx

# Shared with the ONNX path (which must not import MXNet).
from .images import IMAGENET_CROP as CROP, IMAGENET_NORMALIZATION, IMAGENET_RESIZE as RESIZE  # noqa: F401
from .predict import Prediction, format_predictions, top_k as _top_k  # noqa: F401

MEAN = tuple(IMAGENET_NORMALIZATION['mean'])
STD = tuple(IMAGENET_NORMALIZATION['std'])


def class_names() -> List[str]:
    """The 1000 ImageNet class names in GluonCV's order (the weights' output order)."""
    from gluoncv.data import ImageNet1kAttr
    return list(ImageNet1kAttr().classes)


def read_image(path: Union[str, Path]) -> mx.nd.NDArray:
    """An image file as an (H, W, 3) uint8 RGB array; ``ValueError`` if unreadable."""
    if not Path(path).is_file():
        raise FileNotFoundError('no such image: %s' % path)
    try:
        return mx.image.imread(str(path), flag=1, to_rgb=True)
    except mx.base.MXNetError:
        raise ValueError('%s is not an image OpenCV can read' % path) from None


def preprocess(image: mx.nd.NDArray, ctx: Optional[mx.Context] = None) -> mx.nd.NDArray:
    """(H, W, 3) uint8 RGB -> (1, 3, 224, 224) float32, ready for the network.

    Resize the shorter side to 256 (keeping the aspect ratio), crop the
    centre 224x224, scale to [0, 1], normalize with :data:`MEAN` and :data:`STD`.
    """
    from mxnet.gluon.data.vision import transforms
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError('expected an (H, W, 3) RGB image, got shape %s' % (image.shape,))
    transform = transforms.Compose([transforms.Resize(RESIZE, keep_ratio=True),
                                    transforms.CenterCrop(CROP),
                                    transforms.ToTensor(),
                                    transforms.Normalize(MEAN, STD)])
    return transform(image).expand_dims(0).as_in_context(ctx or mx.current_context())


def top_k(logits: mx.nd.NDArray, k: int = 5) -> List[List[Prediction]]:
    """The ``k`` most probable classes of each row of ``logits`` (batch, 1000),
    with names and softmax probabilities, most probable first."""
    if logits.ndim != 2 or logits.shape[1] != 1000:
        raise ValueError('expected ImageNet logits of shape (batch, 1000), got %s' % (logits.shape,))
    return _top_k(logits.asnumpy(), class_names(), k)


def predict(net: mx.gluon.Block, images: Sequence[Union[str, Path, mx.nd.NDArray]], k: int = 5,
            ctx: Optional[mx.Context] = None) -> List[List[Prediction]]:
    """Top-``k`` ImageNet predictions of ``net`` (with ImageNet weights) for
    each image, given as a file or an (H, W, 3) RGB array:
    ``[(class index, name, probability), ...]`` per image.

    Images go through the network one at a time, so memory stays that of one.

    Examples
    --------
    >>> net = d2lnets.get_model('vgg16', pretrained=True)
    >>> predict(net, ['cat.jpg'])[0][0]
    (281, 'tabby', 0.71...)
    """
    results = []
    for image in images:
        if not isinstance(image, mx.nd.NDArray):
            image = read_image(image)
        results += top_k(net(preprocess(image, ctx)), k)
    return results
