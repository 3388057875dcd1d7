"""What d2lnets.explain computes (issue 21): every layer's output from one pass
of the network's graph, equal to the layers run one by one; saliency equal to
central finite differences; Grad-CAM equal to its formula over recorded
activations and gradients; and none of it changes the network."""
import mxnet as mx
import numpy as np
import pytest

import d2lnets
from d2lnets import data, nn
from d2lnets.explain.activations import activations, probabilities, top_classes
from d2lnets.explain.filters import NEAR_ZERO, WeightStats, first_conv_weights, weight_stats
from d2lnets.explain.mistakes import Confusion, Mistake, TopMistakes, most_confused
from d2lnets.explain.saliency import grad_cam, saliency

# The four families at the lecture's input sizes, and VGG with batch norm small
# enough to be cheap (VGG-11's blocks, channels / 16, on 64x64 input).
FAMILIES = [('lenet', {}, 28), ('alexnet', {}, 224), ('vgg11_small', {}, 224), ('nin', {}, 224),
            ('vgg11_bn', {'ratio': 16}, 64)]


def built(name, kwargs, side, seed=0, channels=1):
    mx.random.seed(seed)
    net = d2lnets.get_model(name, **kwargs)
    net.initialize(mx.init.Xavier())
    x = mx.nd.random.uniform(shape=(1, channels, side, side))
    net(x)
    return net, x


@pytest.fixture(scope='module', params=FAMILIES, ids=[f[0] for f in FAMILIES])
def family(request):
    name, kwargs, side = request.param
    return built(name, kwargs, side)


def layer_by_layer(net, x):
    """The lecture's loop, imperatively: (name, output) of each top-level child."""
    out = []
    for blk in net:
        x = blk(x)
        out.append((blk.name, x[0].asnumpy()))
    return out


def test_activations_equal_the_layers_run_one_by_one(family):
    net, x = family
    want = layer_by_layer(net, x)
    acts = activations(net, x)
    assert [a.name for a in acts] == [name for name, _ in want]
    for act, (name, array) in zip(acts, want):
        assert act.array.shape == array.shape, name
        np.testing.assert_allclose(act.array, array, rtol=1e-5, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(acts[-1].array, net(x)[0].asnumpy(), rtol=1e-5, atol=1e-5)
    net.hybridize()
    try:
        for act, again in zip(acts, activations(net, x)):
            np.testing.assert_array_equal(act.array, again.array)
    finally:
        net.hybridize(False)


def test_lenet_layers_and_kinds():
    net, x = built('lenet', {}, 28)
    acts = activations(net, x)
    assert [(a.name, a.kind, a.array.shape) for a in acts] == [
        ('conv0', 'conv', (6, 28, 28)), ('pool0', 'pool', (6, 14, 14)), ('conv1', 'conv', (16, 10, 10)),
        ('pool1', 'pool', (16, 5, 5)), ('dense0', 'dense', (120,)), ('dense1', 'dense', (84,)),
        ('dense2', 'dense', (10,))]
    probs = probabilities(acts)
    assert probs.shape == (10,) and probs.sum() == pytest.approx(1, abs=1e-12)
    logits = acts[-1].array.astype(np.float64)
    np.testing.assert_allclose(probs, np.exp(logits) / np.exp(logits).sum(), rtol=1e-12)
    top = top_classes(acts, 3)
    assert [c for c, _ in top] == list(np.argsort(-probs, kind='stable')[:3])
    assert [p for _, p in top] == [probs[c] for c, _ in top]


def test_vgg_and_nin_are_seen_by_block():
    kinds = [(a.name, a.kind) for a in activations(*built('nin', {}, 224))]
    assert kinds == [('sequential1', 'block'), ('pool0', 'pool'), ('sequential2', 'block'), ('pool1', 'pool'),
                     ('sequential3', 'block'), ('pool2', 'pool'), ('dropout0', 'other'),
                     ('sequential4', 'block'), ('pool3', 'pool'), ('flatten0', 'other')]


@pytest.mark.parametrize('shape', [(2, 1, 28, 28), (1, 28, 28), (28, 28)])
def test_one_image_only(shape):
    net, _ = built('lenet', {}, 28)
    with pytest.raises(ValueError, match=r'batch of one image, shape \(1, C, H, W\)'):
        activations(net, mx.nd.zeros(shape))


def test_a_network_without_values_is_refused():
    net = d2lnets.get_model('lenet')
    net.initialize()     # deferred: no shapes, no values until the first call
    with pytest.raises(ValueError, match='has no value yet'):
        activations(net, mx.nd.zeros((1, 1, 28, 28)))


def state(net, x):
    """Every array of ``net`` (each parameter's data and gradient on each device), its
    hybridization, and its output for ``x``, as bytes."""
    arrays = {}
    for name, p in net.collect_params().items():
        arrays[name] = [d.asnumpy().tobytes() for d in p.list_data()]
        if p.grad_req != 'null':
            arrays[name + '.grad'] = [g.asnumpy().tobytes() for g in p.list_grad()]
    return arrays, net._active, net(x).asnumpy().tobytes()


def small_vgg_bn():
    """VGG's layers, small: two blocks with batch norm and max pooling, dense layers with dropout;
    moving averages that are not BatchNorm's defaults, so using or updating them would show."""
    from d2lnets.models.vgg import vgg_block
    net = nn.Sequential()
    net.add(vgg_block(1, 8, batch_norm=True), vgg_block(1, 16, batch_norm=True),
            nn.Dense(32, activation='relu'), nn.Dropout(0.5), nn.Dense(10))
    mx.random.seed(3)
    net.initialize(mx.init.Xavier())
    x = mx.nd.random.uniform(shape=(1, 1, 32, 32))
    net(x)
    return with_moving_averages(net), x


@pytest.mark.parametrize('hybridized', [False, True])
@pytest.mark.parametrize('subject', ['shipped lenet', 'small vgg with batch norm'])
def test_nothing_of_the_network_changes(subject, hybridized):
    net, x = shipped_lenet_and_pullover() if subject == 'shipped lenet' else small_vgg_bn()
    net.hybridize(hybridized)
    before = state(net, x)
    for view in VIEWS:
        view(net, x)
        assert state(net, x) == before, view.__name__


VIEWS = [activations, saliency, grad_cam]


# --- saliency ---------------------------------------------------------------
# Small inputs keep float64 cheap: AlexNet and NiN take 67x67 (their last pooling
# gives 1x1), VGG-11 with batch norm 32x32. Each has max pooling (oneDNN's in
# float32) and, but LeNet, dropout; VGG batch norm with moving averages that matter.
GRADIENT_NETS = [('lenet', {}, 28), ('alexnet', {}, 67), ('nin', {}, 67), ('vgg11_bn', {'ratio': 16}, 32)]


def float64_twin(net, name, kwargs, x):
    """``name`` built in float64 with ``net``'s parameter values."""
    twin = d2lnets.get_model(name, **kwargs)
    twin.initialize()
    twin.cast('float64')      # before the first call, so its symbols are float64 too
    twin(x.astype('float64'))
    for (key, p), (key2, q) in zip(twin._collect_params_with_prefix().items(),
                                   net._collect_params_with_prefix().items()):
        assert key == key2
        p.set_data(q.data().astype('float64'))
    return twin


def with_moving_averages(net, seed=1):
    rng = np.random.default_rng(seed)
    for p in net.collect_params('.*running.*').values():
        p.set_data(mx.nd.array(rng.uniform(0.5, 1.5, p.shape)))
    return net


@pytest.fixture(scope='module', params=GRADIENT_NETS, ids=[n[0] for n in GRADIENT_NETS])
def gradient_net(request):
    name, kwargs, side = request.param
    net, x = built(name, kwargs, side, seed=5)
    with_moving_averages(net)
    return net, x, float64_twin(net, name, kwargs, x)


def test_saliency_equals_central_finite_differences(gradient_net):
    """In float64, at 12 random pixels and the 4 of largest gradient, to 1e-6 of the
    largest gradient plus the differences' rounding (4 ulp of the score, over 2h;
    their truncation, ~h^2 = 1e-12, is below both). The differences are of the
    network in inference mode: dropout off, batch norm's moving averages."""
    _, x32, net = gradient_net
    x = x32.astype('float64')
    s = saliency(net, x)
    assert s.gradient.dtype == np.float64 and s.gradient.shape == x.shape[1:]
    np.testing.assert_array_equal(s.map, np.abs(s.gradient).max(axis=0))
    assert s.cls == int(net(x)[0].argmax(axis=0).asscalar())
    rng = np.random.default_rng(0)
    pixels = [tuple(rng.integers(0, d) for d in x.shape[1:]) for _ in range(12)]
    pixels += [np.unravel_index(i, s.gradient.shape) for i in np.argsort(-np.abs(s.gradient), axis=None)[:4]]
    h = 1e-6
    for c, i, j in pixels:
        step = np.zeros(x.shape)
        step[0, c, i, j] = h
        up, down = (net(x + mx.nd.array(sign * step, dtype='float64'))[0, s.cls].asscalar() for sign in (1, -1))
        rounding = 4 * np.finfo(np.float64).eps * max(abs(up), abs(down)) / (2 * h)
        assert (up - down) / (2 * h) == pytest.approx(s.gradient[c, i, j],
                                                     abs=1e-6 * np.abs(s.gradient).max() + rounding)


def test_float32_saliency_equals_float64(gradient_net):
    """The float32 graph (oneDNN's layers, recorded in training mode) gives the float64 gradient,
    for the predicted class and another one."""
    net, x, twin = gradient_net
    for cls in (None, 3):
        s32, s64 = saliency(net, x, cls), saliency(twin, x.astype('float64'), cls)
        assert s32.cls == s64.cls
        np.testing.assert_allclose(s32.gradient, s64.gradient, rtol=0, atol=2e-4 * np.abs(s64.gradient).max())


def shipped_lenet_and_pullover():
    images, labels = data.load_arrays('fashion-mnist', train=False)
    assert labels[1] == 2     # Pullover
    return d2lnets.get_model('lenet', pretrained=True), mx.nd.array(data.to_tensor(images[1:2]))


def bilinear(a, height, width):
    """``a`` (h, w) resized as OpenCV and PyTorch's align_corners=False do: output pixel
    centre (i + 0.5) * h / height - 0.5 in input pixels, clamped to the edge."""
    def weights(n_out, n_in):
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        low = np.floor(pos).astype(int)
        high = np.minimum(low + 1, n_in - 1)
        m = np.zeros((n_out, n_in))
        m[np.arange(n_out), low] += 1 - (pos - low)
        m[np.arange(n_out), high] += pos - low
        return m
    return weights(height, a.shape[0]) @ a @ weights(width, a.shape[1]).T


@pytest.mark.parametrize('name, kwargs, side, layer', [
    ('lenet', {}, 28, 'conv1'), ('lenet', {}, 28, 'pool0'), ('alexnet', {'dropout': 0.0}, 67, 'conv4'),
    ('nin', {'dropout': 0.0}, 67, 'sequential4'), ('vgg11_small', {'dropout': 0.0}, 64, 'sequential5')])
def test_grad_cam_is_its_formula_over_recorded_activations_and_gradients(name, kwargs, side, layer):
    """Written out as Selvaraju et al. define it: A = the layer's output, recorded
    running the lecture's loop; dS/dA recorded by autograd through the layers after it
    (training mode, which oneDNN's max pooling needs; no dropout, no batch norm here).
    LeNet is the shipped one on test image 1 (a pullover), whose maps at both layers
    are not all zero; the others are random networks, whose maps are not either."""
    net, x = shipped_lenet_and_pullover() if name == 'lenet' else built(name, kwargs, side, seed=7)
    blocks = list(net)
    at = [b.name for b in blocks].index(layer)
    a = x
    for blk in blocks[:at + 1]:
        a = blk(a)
    a.attach_grad()
    with mx.autograd.record(train_mode=True):
        out = a
        for blk in blocks[at + 1:]:
            out = blk(out)
    cls = int(out[0].argmax(axis=0).asscalar())
    out.backward(mx.nd.one_hot(mx.nd.array([cls]), out.shape[1]))     # d out[0, cls] / d A
    A, dA = a[0].asnumpy().astype(np.float64), a.grad[0].asnumpy().astype(np.float64)
    alpha = dA.mean(axis=(1, 2))
    cam = np.maximum(np.einsum('k,kij->ij', alpha, A), 0)
    assert cam.max() > 0
    got = grad_cam(net, x, layer=None if layer != 'pool0' else layer)
    assert (got.cls, got.layer) == (cls, layer)
    np.testing.assert_allclose(got.activation, A, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.gradient, dA, rtol=1e-4, atol=1e-6 * np.abs(dA).max())
    np.testing.assert_allclose(got.map, cam, rtol=1e-4, atol=1e-5 * max(cam.max(), 1e-12))
    assert got.upsampled.shape == x.shape[2:]
    np.testing.assert_allclose(got.upsampled, bilinear(got.map.astype(np.float64), *x.shape[2:]),
                               rtol=1e-5, atol=1e-6 * max(cam.max(), 1e-12))
    other = (cls + 1) % 10
    assert grad_cam(net, x, cls=other, layer=layer).cls == other


# Measured on the shipped LeNet, the first 300 Fashion-MNIST test images, garment
# = input pixel above 0.1 (26 of 255): the saliency map's mass on the garment is
# 0.437 of the whole per image on average (10th percentile 0.150), while the garment
# covers 0.456 of the image. Vanilla saliency of this sigmoid LeNet is not
# concentrated on the garment: ink added on the background moves the score as much.
GARMENT = 0.1


def test_saliency_mass_on_the_garment_of_the_shipped_lenet():
    net = d2lnets.get_model('lenet', pretrained=True)
    images, _ = data.load_arrays('fashion-mnist', train=False)
    x = data.to_tensor(images[:300])
    maps = np.stack([saliency(net, mx.nd.array(x[i:i + 1])).map for i in range(len(x))])
    garment = x[:, 0] > GARMENT
    share = (maps * garment).sum(axis=(1, 2)) / maps.sum(axis=(1, 2))
    assert 0.41 < share.mean() < 0.47
    assert garment.mean() == pytest.approx(0.456, abs=5e-4)


def test_errors_are_one_clear_line():
    net, x = built('lenet', {}, 28)
    with pytest.raises(ValueError, match=r"unknown layer 'conv9'; valid names \(the layers whose output is "
                                         r"channel maps\): conv0, pool0, conv1, pool1$"):
        grad_cam(net, x, layer='conv9')
    with pytest.raises(ValueError, match=r"dense0's is not; layers with maps: conv0, pool0, conv1, pool1"):
        grad_cam(net, x, layer='dense0')
    for view in (saliency, grad_cam):
        for cls in (10, -1, True, 2.0):
            with pytest.raises(ValueError, match=r'class .* out of range: the network has 10 classes, 0 to 9'):
                view(net, x, cls=cls)
        with pytest.raises(ValueError, match='batch of one image'):
            view(net, mx.nd.zeros((2, 1, 28, 28)))
    dense = nn.Sequential()
    dense.add(nn.Dense(8, activation='relu'), nn.Dense(3))
    dense.initialize()
    dense(x)
    with pytest.raises(ValueError, match=r'Grad-CAM needs a convolution, and sequential\d+ has none '
                                         r'\(its layers: dense\d+, dense\d+\)'):
        grad_cam(dense, x)
    assert saliency(dense, x).gradient.shape == (1, 28, 28)


# --- filters ----------------------------------------------------------------

def test_first_conv_weights_are_the_first_convolutions_kernels():
    net, _ = built('lenet', {}, 28)
    w = np.arange(150, dtype=np.float32).reshape(6, 1, 5, 5)
    net[0].weight.set_data(mx.nd.array(w))
    got = first_conv_weights(net)
    assert got.shape == (6, 1, 5, 5) and got.dtype == np.float32
    np.testing.assert_array_equal(got, w)
    alexnet, _ = built('alexnet', {}, 67)
    assert first_conv_weights(alexnet).shape == (96, 1, 11, 11)
    vgg, _ = built('vgg11_bn', {'ratio': 16}, 32)      # inside the first block
    np.testing.assert_array_equal(first_conv_weights(vgg), vgg[0][0].weight.data().asnumpy())
    dense = nn.Sequential()
    dense.add(nn.Dense(3))
    dense.initialize()
    dense(mx.nd.zeros((1, 4)))
    with pytest.raises(ValueError, match=r'sequential\d+ has no convolution'):
        first_conv_weights(dense)


def test_weight_stats_of_known_weights():
    net = nn.Sequential()
    net.add(nn.Conv2D(2, kernel_size=1), nn.MaxPool2D(), nn.Dense(4))
    net.initialize()
    net(mx.nd.zeros((1, 1, 2, 2)))
    # Exactly representable values: 2 ** -10 is below 1 % of the largest magnitude, 2; 0.5 is not.
    conv = np.array([-2, 2], np.float32).reshape(2, 1, 1, 1)
    dense = np.array([[1, -1], [0, 2 ** -10], [2, -2], [0.5, 0.5]], np.float32)
    net[0].weight.set_data(mx.nd.array(conv))
    net[2].weight.set_data(mx.nd.array(dense))
    rows = weight_stats(net)
    assert NEAR_ZERO == 0.01
    assert rows[0] == WeightStats(net[0].name, (2, 1, 1, 1), 0.0, 2.0, 0.0, 0.02)
    mean = (1 + 2 ** -10) / 8
    std = np.sqrt(np.mean((dense.astype(np.float64) - mean) ** 2))
    assert rows[1] == WeightStats(net[2].name, (4, 2), mean, std, 0.25, 0.02)
    assert len(rows) == 2      # the pooling has no weight


# --- mistakes ---------------------------------------------------------------

def test_top_mistakes_keep_the_most_confident_wrong_ones_by_probability_then_index():
    top = TopMistakes(3)
    top.add(0, [0, 1, 2, 3], [0, 2, 1, 0], [0.99, 0.6, 0.9, 0.6])      # 1, 2, 3 wrong
    top.add(4, [5, 5, 5], [4, 5, 6], [0.6, 1.0, 0.95])                  # 4, 6 wrong
    assert top.result() == [Mistake(6, 5, 6, 0.95), Mistake(2, 2, 1, 0.9), Mistake(1, 1, 2, 0.6)]
    assert TopMistakes(0).result() == []
    for bad in (-1, 101, 2.5, True):
        with pytest.raises(ValueError, match=r'the number of mistakes to show \(`mistakes`\) must be'):
            TopMistakes(bad)


def test_most_confused_pairs():
    m = np.array([[5, 2, 0], [4, 1, 2], [0, 0, 9]])
    assert most_confused(m) == [Confusion(1, 0, 4), Confusion(0, 1, 2), Confusion(1, 2, 2)]
    assert most_confused(m, 1) == [Confusion(1, 0, 4)]
    assert most_confused(np.eye(3, dtype=int)) == []
