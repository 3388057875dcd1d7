"""What d2lnets.explain computes: every layer's output from one pass of the
network's graph, equal to the layers run one by one; ... (issue 21)."""
import mxnet as mx
import numpy as np
import pytest

import d2lnets
from d2lnets.explain.activations import activations, probabilities, top_classes

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


@pytest.mark.parametrize('hybridized', [False, True])
def test_nothing_of_the_network_changes(hybridized):
    net, x = built('vgg11_bn', {'ratio': 16, 'dropout': 0.5}, 64, seed=3)
    net.hybridize(hybridized)
    # Moving averages that are not BatchNorm's defaults, so using or updating them would show.
    for name, p in net.collect_params('.*running.*').items():
        p.set_data(mx.nd.random.uniform(0.5, 1.5, shape=p.shape))
    before = state(net, x)
    for view in VIEWS:
        view(net, x)
        assert state(net, x) == before, view.__name__


VIEWS = [activations]
