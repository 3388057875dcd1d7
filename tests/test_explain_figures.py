"""The pictures of d2lnets.explain (issue 21): what each figure shows and says, on the
shipped LeNet and real Fashion-MNIST test images, the input prepared as `predict`
prepares it, and nothing of the network changed by drawing it."""
import matplotlib
matplotlib.use('Agg')

import mxnet as mx
import numpy as np
import pytest

import d2lnets
from d2lnets.data import load_arrays
from d2lnets.deploy.images import to_input
from d2lnets.drawing import pyplot
from d2lnets.explain import figures, show
from d2lnets.explain.activations import activations, top_classes

CLASSES = d2lnets.data.classes('fashion-mnist')


@pytest.fixture(scope='module')
def lenet():
    return show.load_subject('lenet', pretrained=True, index=0)


def titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def images_of(fig, title):
    return next(ax for ax in fig.axes if ax.get_title() == title).images


def test_the_input_is_the_test_image_as_training_feeds_it(lenet):
    images, labels = load_arrays('fashion-mnist', train=False)
    assert lenet.label == labels[0] == CLASSES.index('ankle boot')
    np.testing.assert_array_equal(lenet.x, np.asarray(images[:1, None], np.float32) * np.float32(1 / 255))
    np.testing.assert_array_equal(lenet.x, to_input([images[0]], (1, 28, 28)))


def test_an_image_file_is_prepared_as_predict_prepares_it(lenet, tmp_path):
    from PIL import Image
    from d2lnets.deploy.predict import predict_files
    images, _ = load_arrays('fashion-mnist', train=False)
    path = tmp_path / 'boot.png'
    Image.fromarray(images[0]).save(path)
    subject = show.load_subject('lenet', pretrained=True, image=path)
    # What predict computes from the file is what the network computes from the subject's input.
    logits = subject.net(mx.nd.array(subject.x)).asnumpy()[0].astype(np.float64)
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    got = sorted(predict_files('lenet', [str(path)], pretrained=True, k=10)[0])
    np.testing.assert_allclose([p for _, _, p in got], probs, rtol=1e-5, atol=1e-7)
    # A 28x28 Fashion-MNIST image is taken as it is: the same input as by index.
    np.testing.assert_array_equal(subject.x, lenet.x)
    assert subject.label is None and subject.source == str(path)


def test_the_activation_figure_is_the_lenet5_demo(lenet):
    acts, fig = show.show_activations(lenet)
    (best, p), = top_classes(acts, 1)
    assert titles(fig) == ['input, as the network saw it', 'conv0: 6 channels, 28x28', 'pool0: 6 channels, 14x14',
                           'conv1: 16 channels, 10x10', 'pool1: 16 channels, 5x5', 'dense0: 120 units',
                           'dense1: 84 units', 'answer: ankle boot']
    assert CLASSES[best] == 'ankle boot'
    assert fig._suptitle.get_text() == ('lenet on fashion-mnist test image 0 (true class: ankle boot)\n'
                                        'colours: one scale per layer (all its channels), not per channel')
    top = next(ax for ax in fig.axes if ax.get_title() == 'answer: ankle boot')
    labels = [t.get_text() for t in top.get_yticklabels()]
    assert labels[0] == 'ankle boot %.1f%%' % (100 * p) and len(labels) == 3
    # The input panel shows the input itself; each layer's maps share the layer's whole range.
    np.testing.assert_array_equal(images_of(fig, 'input, as the network saw it')[0].get_array(), lenet.x[0, 0])
    for act in acts[:4]:
        image, = next(ax for ax in fig.axes if ax.get_title().startswith(act.name + ':')).images
        assert (image.norm.vmin, image.norm.vmax) == (float(act.array.min()), float(act.array.max()))
    pyplot().close(fig)


def test_the_grid_states_the_total_when_it_shows_only_some(lenet):
    acts = activations(lenet.net, mx.nd.array(lenet.x))
    fig = figures.activation_figure(lenet.x, acts, CLASSES, layers=['conv1'], max_channels=4)
    assert titles(fig) == ['input, as the network saw it', 'conv1: first 4 of 16 channels, 10x10',
                           'answer: ankle boot']
    mosaic = images_of(fig, 'conv1: first 4 of 16 channels, 10x10')[0].get_array()
    # Two by two maps with a blank line between: the first four channels, in order.
    assert mosaic.shape == (21, 21)
    np.testing.assert_array_equal(mosaic[11:, :10], acts[2].array[2])
    gaps = np.ma.getmaskarray(mosaic)    # the NaN gaps, drawn blank
    assert gaps[10].all() and gaps[:, 10].all() and gaps.sum() == 21 + 21 - 1
    # Still the layer's scale, from all 16 channels.
    assert images_of(fig, 'conv1: first 4 of 16 channels, 10x10')[0].norm.vmax == float(acts[2].array.max())
    pyplot().close(fig)
    with pytest.raises(ValueError, match="no layer named 'conv9'; the layers are conv0, pool0, conv1"):
        figures.activation_figure(lenet.x, acts, CLASSES, layers=['conv9'])


def test_two_inputs_side_by_side_in_one_figure(lenet):
    pullover = show.load_subject('lenet', pretrained=True, index=1)
    fig = pyplot().figure(figsize=(12, 6), layout='constrained')
    for sub, subject in zip(fig.subfigures(1, 2), (lenet, pullover)):
        acts = activations(subject.net, mx.nd.array(subject.x))
        figures.activation_figure(subject.x, acts, CLASSES, layers=['conv0', 'pool0', 'conv1', 'pool1'], fig=sub,
                                  title=CLASSES[subject.label])
    assert [t for t in titles(fig) if t.startswith('answer')] == ['answer: ankle boot', 'answer: pullover']
    pyplot().close(fig)


def test_the_filter_figure_of_lenet(lenet):
    (weights, stats), fig = show.show_filters(lenet)
    assert weights.shape == (6, 1, 5, 5)
    stats_title = "weight statistics per layer (near zero: |w| below 1% of the layer's largest |w|)"
    assert titles(fig) == ['input channel 0: 6 kernels 5x5', stats_title]
    image = images_of(fig, 'input channel 0: 6 kernels 5x5')[0]
    m = float(np.abs(weights).max())
    assert (image.norm.vmin, image.norm.vmax) == (-m, m)
    np.testing.assert_array_equal(image.get_array()[:5, :5], weights[0, 0])
    table = next(ax for ax in fig.axes if ax.get_title() == stats_title).tables[0]
    cells = table.get_celld()
    assert [cells[0, c].get_text().get_text() for c in range(5)] == ['layer', 'shape', 'mean', 'std', 'near zero']
    assert [cells[r + 1, 0].get_text().get_text() for r in range(len(stats))] == [str(row[0]) for row in stats]
    assert cells[1, 1].get_text().get_text() == '6x1x5x5'
    assert 'one colour scale for every kernel' in fig._suptitle.get_text()
    pyplot().close(fig)


def test_the_filters_of_three_channel_weights_are_rgb():
    mx.random.seed(0)
    weights = mx.nd.random.normal(shape=(64, 3, 11, 11)).asnumpy()
    fig = figures.filter_figure(weights)
    title, = titles(fig)
    assert title == 'first convolution: 64 kernels 11x11, as RGB'
    m = float(np.abs(weights).max())
    rgb = images_of(fig, title)[0].get_array()
    np.testing.assert_allclose(rgb[:11, 12:23], 0.5 + weights[1].transpose(1, 2, 0) / (2 * m), rtol=0, atol=1e-7)
    xlabel = fig.axes[0].get_xlabel()
    assert xlabel == 'weights -%.3g ... 0 ... %.3g to 0 ... 0.5 ... 1 per colour, one scale' % (m, m)
    pyplot().close(fig)


def test_the_saliency_figure_names_the_class_and_its_scales(lenet):
    result, fig = show.show_saliency(lenet, cls='sneaker')
    assert result.cls == CLASSES.index('sneaker')
    assert titles(fig) == ['input, as the network saw it',
                           'saliency for sneaker\n|d score / d input|, largest over channels',
                           'saliency over the input']
    smap = images_of(fig, 'saliency over the input')[1]
    np.testing.assert_array_equal(smap.get_array(), result.map)
    assert (smap.norm.vmin, smap.norm.vmax) == (0, float(result.map.max()))
    assert sum(ax.get_ylabel() == 'saliency' for ax in fig.axes) == 2     # both colourbars say it
    assert fig._suptitle.get_text() == ('lenet on fashion-mnist test image 0 (true class: ankle boot)\n'
                                        "colour scales: from 0 to each map's maximum (its colourbar)")
    pyplot().close(fig)


def test_the_gradcam_figure_names_its_layer(lenet):
    result, fig = show.show_gradcam(lenet)
    assert titles(fig) == ['input, as the network saw it', 'Grad-CAM at %s for ankle boot' % result.layer]
    np.testing.assert_array_equal(images_of(fig, titles(fig)[1])[1].get_array(), result.upsampled)
    pyplot().close(fig)


def test_the_mistakes_figure_reads_each_image_by_its_index():
    from d2lnets.explain.mistakes import Mistake
    images, labels = load_arrays('fashion-mnist', train=False)
    meta = d2lnets.load_network('lenet', pretrained=True)[1]
    mistakes = [Mistake(i, int(labels[i]), (int(labels[i]) + 1) % 10, 0.9 - i / 10) for i in (3, 5, 8, 13, 21, 34, 55)]
    got, fig = show.show_mistakes({'mistakes': mistakes, 'meta': meta, 'classes': CLASSES})
    assert got == mistakes
    assert titles(fig) == ['true: %s\npredicted: %s\np = %.3f' % (CLASSES[m.true], CLASSES[m.predicted],
                                                                 m.probability) for m in mistakes]
    # Each image is the test image of its index, as the test set feeds the network.
    np.testing.assert_array_equal(images_of(fig, titles(fig)[2])[0].get_array(), images[8] * np.float32(1 / 255))
    assert fig._suptitle.get_text() == 'the 7 most confidently wrong; input values 0 ... 1 drawn black ... white'
    assert len(fig.axes) == 10 and sum(not ax.axison for ax in fig.axes) == 3
    pyplot().close(fig)


def snapshot(net):
    return {name: p.data().asnumpy().tobytes() for name, p in net.collect_params().items()}


def test_drawing_leaves_the_network_bit_identical(lenet):
    x = mx.nd.array(lenet.x)
    before, out = snapshot(lenet.net), lenet.net(x).asnumpy()
    for kind, fig in show.render(lenet, show.KINDS, cls=4):
        pyplot().close(fig)
    assert snapshot(lenet.net) == before
    np.testing.assert_array_equal(lenet.net(x).asnumpy(), out)


def test_bad_input_is_one_clear_error(lenet):
    with pytest.raises(ValueError, match=r'class 10 is out of range: the network has 10 classes \(0 to 9\)'):
        show.show_saliency(lenet, cls=10)
    with pytest.raises(ValueError, match="no class named 'parka'"):
        show.show_saliency(lenet, cls='parka')
    with pytest.raises(ValueError, match='`show` takes a comma-separated list'):
        show.parse_kinds('activations,histogram')
    with pytest.raises(ValueError, match='give one input'):
        show.load_subject('lenet', pretrained=True)
    with pytest.raises(ValueError, match='test-set index must be an integer from 0 to 9999'):
        show.load_subject('lenet', pretrained=True, index=-1)


def test_gradcam_needs_a_convolution():
    net = d2lnets.nn.Sequential()
    net.add(d2lnets.nn.Dense(16, activation='relu'), d2lnets.nn.Dense(10))
    net.initialize()
    x = np.zeros((1, 1, 28, 28), np.float32)
    net(mx.nd.array(x))
    subject = show.Subject(net, {'model': 'mlp', 'dataset': 'fashion-mnist'}, x, None, 'zeros')
    with pytest.raises(ValueError, match='conv'):
        show.show_gradcam(subject)


@pytest.mark.parametrize('name', ['vgg11_small', 'nin'])
def test_the_224_networks_are_drawn_layer_by_layer(name, tmp_path):
    from PIL import Image
    images, _ = load_arrays('fashion-mnist', train=False)
    path = tmp_path / 'boot.png'
    Image.fromarray(images[0]).save(path)
    mx.random.seed(0)
    subject = show.load_subject(name, image=path)      # freshly initialized: no weights needed
    assert subject.x.shape == (1, 1, 224, 224)
    acts, fig = show.show_activations(subject)
    shown = titles(fig)
    assert shown[0] == 'input, as the network saw it' and shown[-1].startswith('answer: ')
    assert len(shown) == len(acts) + 1
    for act, title in zip(acts[:-1], shown[1:-1]):
        a = act.array
        if a.ndim == 3 and a.shape[1] * a.shape[2] > 1:
            count = '%d channels' % len(a) if len(a) <= 16 else 'first 16 of %d channels' % len(a)
            assert title == '%s: %s, %dx%d' % (act.name, count, a.shape[1], a.shape[2])
        else:
            assert title == '%s: %d units' % (act.name, a.size)     # NiN's global pooling: (10, 1, 1)
    pyplot().close(fig)


def test_a_three_channel_input_is_drawn_on_one_scale_for_all_channels():
    from d2lnets.explain.saliency import Saliency
    rng = np.random.RandomState(0)
    x = rng.normal(size=(1, 3, 32, 32)).astype(np.float32) * np.float32([[[[1]], [[2]], [[3]]]])
    fig = figures.saliency_figure(x, ['a', 'b'], saliency=Saliency(1, x[0], np.abs(x[0]).max(axis=0)))
    ax = next(ax for ax in fig.axes if ax.get_title() == 'input, as the network saw it')
    lo, hi = float(x.min()), float(x.max())
    np.testing.assert_allclose(ax.images[0].get_array(), (x[0].transpose(1, 2, 0) - lo) / (hi - lo), atol=1e-6)
    assert ax.get_xlabel() == 'RGB: input values %.3g ... %.3g to 0 ... 1, one scale' % (lo, hi)
    assert 'saliency for b\n' in titles(fig)[1]
    pyplot().close(fig)
