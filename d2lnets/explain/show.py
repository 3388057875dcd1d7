"""The arrays and the figure together, for the notebooks and ``d2lnets explain``.

A :class:`Subject` is a network with its weights and one input: an image file,
prepared exactly as ``d2lnets predict`` prepares it (:func:`d2lnets.deploy.images.prepare`),
or a test-set example by index, as the test set feeds it in training. Each
``show_*`` function computes with :mod:`d2lnets.explain`'s computing modules and
draws with :mod:`d2lnets.explain.figures`; none changes the network or its parameters.
"""
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .. import data, limits
from ..types import PathLike

__all__ = ['Subject', 'load_subject', 'show_activations', 'show_filters', 'show_saliency', 'show_gradcam',
           'show_mistakes', 'parse_kinds', 'render', 'check_out', 'write_figures', 'KINDS']

# What `d2lnets explain --show` draws, in this order, one PNG each.
KINDS = ('activations', 'filters', 'saliency', 'gradcam')


class Subject(NamedTuple):
    """A network and the one input it is explained on."""
    net: Any                   # the HybridBlock, with its weights
    meta: Dict[str, Any]       # as load_network returns it: model, input_shape, classes, dataset, ...
    x: np.ndarray              # (1, C, H, W) float32: the input after preprocessing
    label: Optional[int]       # the true class of a test example, None for an image file
    source: str                # where the input came from, for titles

    @property
    def classes(self) -> List[str]:
        from ..deploy.predict import class_names
        return class_names(self.meta, self._outputs())

    def _outputs(self) -> int:
        # The number of classes: the last parameter is the classifier's bias (classes,).
        return int(list(self.net.collect_params().values())[-1].shape[0])

    @property
    def title(self) -> str:
        truth = '' if self.label is None else ' (true class: %s)' % self.classes[self.label]
        return '%s on %s%s' % (self.meta.get('model', 'the network'), self.source, truth)


def _test_example(meta: Dict[str, Any], index: int) -> Tuple[np.ndarray, int, str]:
    # (1, C, H, W) input of test example ``index`` of the data set the weights were trained on.
    from ..deploy.images import to_input
    from ..weights.meta import data_set
    row = data_set(meta)
    dataset = row.name
    if not row.trainable:      # no test set of its own here (ImageNet's)
        raise ValueError('weights trained on %s take an image file (`image`), not a test-set index (`index`)' % dataset)
    images, labels = data.load_arrays(dataset, train=False)
    if not limits.is_int(index) or not 0 <= index < len(images):
        raise ValueError('the test-set index must be an integer from 0 to %d (the %s test set has %d '
                         'images), got %r' % (len(images) - 1, dataset, len(images), index))
    x = to_input([images[index]], tuple(meta['input_shape'][-3:]), meta.get('normalization'))
    return x, int(labels[index]), '%s test image %d' % (dataset, index)


def load_subject(name: str, params: Optional[PathLike] = None, pretrained: bool = False,
                 image: Optional[PathLike] = None, index: Optional[int] = None,
                 root: Optional[str] = None) -> Subject:
    """The network ``name`` with its weights (``params``: a parameter file, ``pretrained``:
    the published ones, GluonCV's looked for in ``root`` first; neither: freshly initialized)
    and one input: an ``image`` file or the test-set example ``index``."""
    from ..deploy.images import check_image, prepare
    from ..deploy.predict import published_weights, transform_before_loading
    from ..models.loading import load_network
    from ..weights.meta import data_set
    if (image is None) == (index is None):
        raise ValueError('give one input: an image file (`image`) or a test-set index (`index`)')
    if params is not None and pretrained:
        raise ValueError('give one source of weights: `params=FILE` or `pretrained=True`')
    params = None if params is None else str(params)
    weights = published_weights(name, pretrained)
    if image is not None:       # an unreadable file fails before the weights load (as predict's)
        check_image(image, transform_before_loading(weights, params))
    net, meta = load_network(name, params, weights or pretrained, root=root)
    if image is not None:
        x = prepare([str(image)], data_set(meta).preprocessing, tuple(meta['input_shape'][-3:]))
        return Subject(net, meta, x, None, str(image))
    x, label, source = _test_example(meta, index)
    return Subject(net, meta, x, label, source)


def class_index(subject: Subject, cls: Union[None, int, str]) -> Optional[int]:
    """``cls`` as a class index of ``subject``'s network: an index, its text, or a class name."""
    if cls is None:
        return None
    names = subject.classes
    if isinstance(cls, str) and not cls.strip().lstrip('-').isdigit():
        if cls not in names:
            raise ValueError('no class named %r; the classes are %s' % (cls, ', '.join(names[:20])
                                                                       + (', ...' if len(names) > 20 else '')))
        return names.index(cls)
    index = int(cls)
    if not 0 <= index < len(names):
        raise ValueError('class %d is out of range: the network has %d classes (0 to %d)'
                         % (index, len(names), len(names) - 1))
    return index


def _subject(subject: Union[Subject, str], where: Dict[str, Any]) -> Subject:
    # A Subject as it is, or a model name with load_subject's keywords (pretrained=True, index=3, ...).
    if isinstance(subject, Subject):
        if where:
            raise TypeError('a Subject has its weights and input already; got %s too' % ', '.join(sorted(where)))
        return subject
    return load_subject(subject, **where)


def _nd(subject: Subject):
    import mxnet as mx
    return mx.nd.array(subject.x)


def show_activations(subject: Union[Subject, str], layers: Optional[Sequence[str]] = None, top: int = 3,
                     fig=None, **where):
    """(activations, figure): every layer's output from one forward pass of the network's graph
    (``explain.activations.activations``) and the LeNet-5 demo's display of them (``layers``
    only, if given), drawn into ``fig`` if given (a SubFigure: two inputs side by side)."""
    subject = _subject(subject, where)
    from .activations import activations
    from .figures import activation_figure
    acts = activations(subject.net, _nd(subject))
    return acts, activation_figure(subject.x, acts, subject.classes, layers=layers, top=top, fig=fig,
                                   title=subject.title)


def show_filters(subject: Union[Subject, str], **where):
    """((first convolution's weights, weight statistics), figure)."""
    subject = _subject(subject, where)
    from .figures import filter_figure
    from .filters import first_conv_weights, weight_stats
    weights, stats = first_conv_weights(subject.net), weight_stats(subject.net)
    return (weights, stats), filter_figure(weights, stats, title='%s: first convolution'
                                           % subject.meta.get('model', 'the network'))


def show_saliency(subject: Union[Subject, str], cls: Union[None, int, str] = None, **where):
    """(Saliency, figure): the gradient of class ``cls``'s score (default the predicted
    class) with respect to the input, drawn over the input."""
    subject = _subject(subject, where)
    from .figures import saliency_figure
    from .saliency import saliency
    result = saliency(subject.net, _nd(subject), cls=class_index(subject, cls))
    return result, saliency_figure(subject.x, subject.classes, saliency=result, title=subject.title)


def show_gradcam(subject: Union[Subject, str], cls: Union[None, int, str] = None, layer: Optional[str] = None, **where):
    """(GradCam, figure): Grad-CAM for class ``cls`` (default the predicted class) at
    ``layer`` (default the last convolutional block), upsampled over the input."""
    subject = _subject(subject, where)
    from .figures import saliency_figure
    from .saliency import grad_cam
    result = grad_cam(subject.net, _nd(subject), cls=class_index(subject, cls), layer=layer)
    return result, saliency_figure(subject.x, subject.classes, grad_cam=result, title=subject.title)


def show_mistakes(result: Dict[str, Any], data_dir: Optional[str] = None, title: str = ''):
    """(mistakes, figure) from :func:`d2lnets.training.runs.evaluate_saved`'s ``result``: each
    mistake's test image read again by its index (from ``data_dir`` first, as evaluate read them)
    and prepared as the test set feeds the network."""
    from ..deploy.images import to_input
    from .figures import mistakes_figure
    mistakes, meta = result['mistakes'], result['meta']
    if not mistakes:
        return mistakes, None
    images = data.load_arrays(meta['dataset'], train=False, root=data_dir)[0]
    prepared = [to_input([images[m.index]], tuple(meta['input_shape'][-3:]), meta.get('normalization'))[0]
                for m in mistakes]
    return mistakes, mistakes_figure(mistakes, prepared, result['classes'], title=title)


def parse_kinds(text: Optional[str]) -> List[str]:
    """``'activations,saliency'`` -> ``['activations', 'saliency']``; None: all of :data:`KINDS`."""
    if text is None:
        return list(KINDS)
    kinds = [k.strip() for k in text.split(',') if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError('`show` takes a comma-separated list of %s; got %r' % (', '.join(KINDS), text))
    return [k for k in KINDS if k in kinds]


def render(subject: Subject, kinds: Sequence[str], cls: Union[None, int, str] = None,
           layer: Optional[str] = None) -> List[Tuple[str, Any]]:
    """``(kind, figure)`` for each of ``kinds``, all drawn before any is written:
    bad input (an unknown layer, a class out of range) fails with nothing written."""
    draw = {'activations': lambda: show_activations(subject), 'filters': lambda: show_filters(subject),
            'saliency': lambda: show_saliency(subject, cls), 'gradcam': lambda: show_gradcam(subject, cls, layer)}
    figures = []
    try:
        for kind in kinds:
            figures.append((kind, draw[kind]()[1]))
    except BaseException:
        _close([fig for _, fig in figures])
        raise
    return figures


def _close(figures) -> None:
    from ..drawing import pyplot
    for fig in figures:
        pyplot().close(fig)


def check_out(out: PathLike) -> Path:
    """``out`` as a folder to write into: a folder, or missing with its parent a folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError('%s is not a folder: `out` takes the folder to write the PNGs into' % out)
    if not out.parent.is_dir():
        raise ValueError('%s is not a folder: `out` makes one folder, not its parents' % out.parent)
    return out


def write_figures(subject: Subject, kinds: Sequence[str], out: PathLike, cls: Union[None, int, str] = None,
                  layer: Optional[str] = None) -> List[Path]:
    """Draw ``kinds`` (:func:`render`) and write each as ``out/MODEL-KIND.png``; the paths written.
    ``out`` is made if it does not exist (its parent must); nothing is written outside it."""
    from ..drawing import save_png
    from ..io import check_replaceable
    out = check_out(out)
    name = subject.meta.get('model', 'network')
    paths = [out / ('%s-%s.png' % (name, kind)) for kind in kinds]
    for path in paths:
        if out.is_dir():
            check_replaceable(path)     # a link or a FIFO there is refused before anything is drawn
    class_index(subject, cls)       # a class out of range fails before anything is computed
    figures = render(subject, kinds, cls, layer)
    out.mkdir(exist_ok=True)
    try:
        return [save_png(fig, path) for (_, fig), path in zip(figures, paths)]
    finally:
        _close([fig for _, fig in figures])
