"""One entry per model name: everything d2lnets knows about a network.

An entry holds the builder (named by its path in :mod:`d2lnets.models` and
imported when first used, so this module, the CLI's help and ``d2lnets info``
need no MXNet), the lecture's input shape, the input the slide
"Complexity" counts for, the lecture's training recipe, and the published
weights (:class:`d2lnets.weights.Weights`). ``get_model``, ``list_models``,
the CLI, ``bench``, ``predict``, ``evaluate``, ``complexity`` and
``benchmarks/`` read the entry. Nothing else branches on a model's name but
the slide "Complexity"'s own printed figures for LeNet and AlexNet, with its
note on the slide's LeNet column (``SLIDE`` in :mod:`d2lnets.perf.complexity_report`):
they are the slide's words, not facts of the networks.
To add a network: write its builder in :mod:`d2lnets.models` and add one entry below.
"""
import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from .types import Shape
from .weights import Weights

__all__ = ['Recipe', 'ModelEntry', 'entry', 'list_models', 'get_builder', 'default_input_shape', 'check_kwargs',
           'pretrained_weights']

FASHION_MNIST_28: Shape = (1, 1, 28, 28)
FASHION_MNIST_224: Shape = (1, 1, 224, 224)
IMAGENET: Shape = (1, 3, 224, 224)


@dataclass(frozen=True)
class Recipe:
    """The lecture's training recipe (notebooks of d2l-ai/berkeley-stat-157,
    slides/2_28): batch size, SGD learning rate, side length fed to the
    network (``None``: Fashion-MNIST's 28), and the book's 10 epochs (the lecture ran 5)."""
    batch_size: int
    lr: float
    resize: Optional[int]
    epochs: int = 10


LENET_RECIPE = Recipe(256, 0.9, None)
ALEXNET_RECIPE = Recipe(128, 0.01, 224)
VGG_RECIPE = Recipe(128, 0.05, 224)      # the lecture's small VGG; the other VGGs take it too
NIN_RECIPE = Recipe(128, 0.1, 224)


@dataclass(frozen=True)
class ModelEntry:
    """What d2lnets knows about one model name."""
    name: str
    builder_path: str                          # 'module.function' in d2lnets.models
    recipe: Recipe
    input_shape: Shape = FASHION_MNIST_224    # the lecture's input (batch of one)
    slide_input_shape: Shape = IMAGENET        # what the slide "Complexity" counts for
    weights: Tuple[Weights, ...] = ()
    no_weights_hint: str = ''                  # why there are no weights, and what to use instead

    @property
    def builder(self) -> Callable:
        """The builder function (imports MXNet)."""
        module, function = self.builder_path.rsplit('.', 1)
        return getattr(importlib.import_module('d2lnets.models.' + module), function)

    def pretrained(self) -> Weights:
        """The published weights ``pretrained=True`` loads; ``ValueError`` if there are none."""
        if not self.weights:
            raise ValueError(self.no_weights_hint or 'no pretrained weights are available for %r; weights '
                             'exist for %s' % (self.name, ', '.join(list_models(pretrained=True))))
        return self.weights[0]


def _gluoncv(name: str) -> Tuple[Weights, ...]:
    return (Weights('gluoncv', name, 'imagenet', IMAGENET),)


_ENTRIES = [
    ModelEntry('lenet', 'lenet.lenet', LENET_RECIPE, input_shape=FASHION_MNIST_28, slide_input_shape=FASHION_MNIST_28,
               weights=(Weights('shipped', 'lenet-fashion-mnist-5a8ada67.params', 'fashion-mnist', FASHION_MNIST_28,
                                sha1='5a8ada67125c0326b74eaf07d0587926b1432a1a'),)),
    ModelEntry('alexnet', 'alexnet.alexnet', ALEXNET_RECIPE,
               no_weights_hint="no ImageNet weights fit the lecture's 'alexnet' (96/256/384/384/256 channels): "
                               "GluonCV's AlexNet weights belong to a different layout (64/192/384/256/256 "
                               "channels, padding 2 on the first convolution); use get_model('alexnet_gluoncv', "
                               "pretrained=True) for them"),
    ModelEntry('alexnet_gluoncv', 'alexnet.alexnet_gluoncv', ALEXNET_RECIPE, weights=_gluoncv('alexnet')),
    ModelEntry('vgg11_small', 'vgg.vgg11_small', VGG_RECIPE),
    ModelEntry('nin', 'nin.nin', NIN_RECIPE),
] + [ModelEntry(name, 'vgg.' + name, VGG_RECIPE, weights=_gluoncv(name))
     for name in ('vgg11', 'vgg13', 'vgg16', 'vgg19', 'vgg11_bn', 'vgg13_bn', 'vgg16_bn', 'vgg19_bn')]
REGISTRY: Dict[str, ModelEntry] = {e.name: e for e in _ENTRIES}


def list_models(pretrained: bool = False) -> List[str]:
    """The registered model names, sorted; with ``pretrained``, those with published weights."""
    return sorted(name for name, e in REGISTRY.items() if e.weights or not pretrained)


def entry(name: str) -> ModelEntry:
    """The entry of ``name``; ``ValueError`` lists the valid names."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError('unknown model %r; valid names: %s' % (name, ', '.join(list_models()))) from None


def get_builder(name: str) -> Callable:
    """The builder function registered as ``name``."""
    return entry(name).builder


def pretrained_weights(name: str) -> Weights:
    """The published weights of ``name`` (what ``pretrained=True`` loads), with their categories
    and preprocessing; ``ValueError`` if it has none."""
    return entry(name).pretrained()


def default_input_shape(name: str) -> Tuple[int, ...]:
    """The input shape the lecture feeds ``name``: (1, 1, 28, 28) for LeNet,
    (1, 1, 224, 224) for the rest."""
    return entry(name).input_shape


def check_kwargs(name: str, kwargs: Dict[str, Any]) -> Callable:
    """``name``'s builder, once checked to take ``kwargs`` (``ValueError`` unless it does)."""
    builder = get_builder(name)
    try:
        inspect.signature(builder).bind(**kwargs)
    except TypeError:
        accepted = list(inspect.signature(builder).parameters)
        raise ValueError('model %r takes the arguments %s, got %s'
                         % (name, ', '.join(accepted), ', '.join(sorted(kwargs)))) from None
    return builder
