"""The networks: registry, exact sizes, one graph, hybridized == imperative."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

import d2lnets
from d2lnets import nn
from d2lnets.models.params import count_parameters

ALL = ['alexnet', 'alexnet_gluoncv', 'lenet', 'nin', 'vgg11', 'vgg11_bn', 'vgg11_small', 'vgg13', 'vgg13_bn',
       'vgg16', 'vgg16_bn', 'vgg19', 'vgg19_bn']

# Small inputs that every block of the network can still take (fast on a CPU).
SMALL_INPUT = {'lenet': (2, 1, 28, 28), 'alexnet': (2, 1, 96, 96), 'alexnet_gluoncv': (2, 1, 96, 96),
               'nin': (2, 1, 96, 96)}


def small_input(name):
    return SMALL_INPUT.get(name, (2, 1, 32, 32))   # VGG: five halvings, 32 -> 1


def build(name, init=None, **kwargs):
    if name != 'lenet':
        kwargs.setdefault('dropout', 0.0)
    net = d2lnets.get_model(name, **kwargs)
    net.initialize(init or mx.init.Xavier())
    return net


def test_list_models():
    assert d2lnets.list_models() == ALL


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError) as info:
        d2lnets.get_model('resnet18')
    assert "'resnet18'" in str(info.value) and ', '.join(ALL) in str(info.value)


@pytest.mark.parametrize('kwargs, match', [
    ({'classes': 0}, 'classes'), ({'classes': 2.5}, 'classes'), ({'dropout': 1.0}, 'dropout'),
    ({'dropout': -0.1}, 'dropout'), ({'depth': 3}, 'takes the arguments classes, dropout'),
])
def test_bad_arguments_fail_before_building(kwargs, match):
    with pytest.raises(ValueError, match=match):
        d2lnets.get_model('alexnet', **kwargs)


def test_bad_vgg_arguments():
    with pytest.raises(ValueError, match='ratio'):
        d2lnets.get_model('vgg11', ratio=0)
    with pytest.raises(ValueError, match='conv_arch'):
        d2lnets.models.vgg([(1, 0)])
    with pytest.raises(ValueError, match='padding'):
        d2lnets.get_model('lenet', padding=-1)


def test_pretrained_without_weights_is_refused():
    with pytest.raises(ValueError, match='no pretrained weights'):
        d2lnets.get_model('nin', pretrained=True)


def test_every_network_is_one_hybrid_block():
    for name in ALL:
        net = d2lnets.get_model(name)
        assert isinstance(net, mx.gluon.HybridBlock) and type(net).__name__ == 'Sequential'
        assert net.name == 'sequential0'


# Exact counts, checked by hand: e.g. AlexNet 1x224x224 = conv 11,712 + 614,656 + 885,120
# + 1,327,488 + 884,992, dense 26,218,496 + 16,781,312 + 40,970.
COUNTS = {
    ('lenet', (1, 1, 28, 28)): 61706,
    ('alexnet', (1, 1, 224, 224)): 46764746,
    ('alexnet', (1, 3, 224, 224)): 46787978,
    ('nin', (1, 1, 224, 224)): 1992166,
    ('vgg11', (1, 1, 224, 224)): 128806154,
    ('vgg11_small', (1, 1, 224, 224)): 43093322,
}


@pytest.mark.parametrize('name, shape', sorted(COUNTS))
def test_exact_parameter_counts(name, shape):
    net = build(name, init=mx.init.Zero())   # counting needs shapes, not random values
    net(mx.nd.zeros(shape)).wait_to_read()
    assert count_parameters(net) == COUNTS[name, shape]


# GluonCV's VGGs are the lecture's VGG with 1000 classes on 3x224x224 input.
@pytest.mark.parametrize('name', [n for n in ALL if n.startswith('vgg') and n != 'vgg11_small'])
def test_vgg_counts_equal_gluoncv(name):
    import gluoncv
    ours = d2lnets.get_model(name, classes=1000)
    theirs = gluoncv.model_zoo.get_model(name)
    counts = []
    for net in (ours, theirs):
        # Shapes only: 140M parameters need not be allocated to be counted.
        sym = net(mx.sym.var('data'))
        arg, _, aux = sym.infer_shape(data=(1, 3, 224, 224))
        names = sym.list_arguments() + sym.list_auxiliary_states()
        counts.append(sum(int(np.prod(s)) for n, s in zip(names, arg + aux) if n != 'data'))
    assert counts[0] == counts[1]
    expected = {'vgg11': 132863336, 'vgg13': 133047848, 'vgg16': 138357544, 'vgg19': 143667240}
    base = name.replace('_bn', '')
    channels = sum(n * c for n, c in d2lnets.models.conv_archs[int(base[3:])])
    # BatchNorm adds gamma, beta, running mean and running variance per channel.
    assert counts[0] == expected[base] + (4 * channels if name.endswith('_bn') else 0)


def test_alexnet_gluoncv_is_gluoncvs_alexnet():
    import gluoncv
    x = mx.nd.zeros((1, 3, 224, 224))
    ours = build('alexnet_gluoncv', classes=1000)
    theirs = gluoncv.model_zoo.get_model('alexnet')
    theirs.initialize()
    ours(x), theirs(x)
    shapes = [p.shape for p in ours.collect_params().values()]
    assert shapes == [p.shape for p in theirs.collect_params().values()]
    # conv 23,296 + 307,392 + 663,936 + 884,992 + 590,080, dense 37,752,832 + 16,781,312 + 4,097,000
    assert count_parameters(ours) == 61100840
    # GluonCV's layout, not the lecture's: 64 channels and padding 2 give 55 x 55.
    assert ours[0](x).shape == (1, 64, 55, 55)


def test_vgg11_forward_count_equals_gluoncv():
    import gluoncv
    x = mx.nd.zeros((1, 3, 224, 224))
    ours = build('vgg11', init=mx.init.Zero(), classes=1000)
    theirs = gluoncv.model_zoo.get_model('vgg11')
    theirs.initialize(mx.init.Zero(), force_reinit=True)
    ours(x).wait_to_read(), theirs(x).wait_to_read()
    assert count_parameters(ours) == count_parameters(theirs) == 132863336


def _train_output_and_input_grad(net, x):
    x = x.copy()
    x.attach_grad()
    # Train mode: oneDNN's max-pooling backward is wrong when recorded in predict mode.
    with autograd.record(train_mode=True):
        y = net(x)
    y.backward()
    return y.asnumpy(), x.grad.asnumpy()


@pytest.mark.parametrize('name', ALL)
def test_hybridized_equals_imperative(name):
    mx.random.seed(0)
    net = build(name)
    x = mx.nd.random.uniform(shape=small_input(name))
    # Inference mode first: training passes move batch norm's running statistics.
    y_imp = net(x).asnumpy()
    params = {k: v.data().asnumpy() for k, v in net.collect_params().items()}
    net.hybridize()
    y_hyb = net(x).asnumpy()
    np.testing.assert_allclose(y_hyb, y_imp, rtol=1e-5, atol=1e-7)
    assert list(net.collect_params()) == list(params)
    for k, v in net.collect_params().items():
        np.testing.assert_array_equal(v.data().asnumpy(), params[k])

    net.hybridize(False)
    t_imp, g_imp = _train_output_and_input_grad(net, x)
    net.hybridize()
    t_hyb, g_hyb = _train_output_and_input_grad(net, x)
    np.testing.assert_allclose(t_hyb, t_imp, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(g_hyb, g_imp, rtol=1e-5, atol=1e-7)
    assert np.abs(g_imp).sum() > 0    # the gradient is real


@pytest.mark.parametrize('name', ALL)
def test_whole_network_exports_as_one_graph(name, tmp_path):
    net = build(name)
    x = mx.nd.random.uniform(shape=small_input(name))
    net.hybridize()
    y = net(x)
    net.export(str(tmp_path / name))
    assert sorted(p.name for p in tmp_path.iterdir()) == [name + '-0000.params', name + '-symbol.json']
    loaded = mx.gluon.SymbolBlock.imports(str(tmp_path / (name + '-symbol.json')), ['data'],
                                          str(tmp_path / (name + '-0000.params')))
    np.testing.assert_allclose(loaded(x).asnumpy(), y.asnumpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('name', ['lenet', 'alexnet', 'vgg11_bn', 'nin'])
def test_save_and_reload_into_fresh_instance(name, tmp_path):
    net = build(name)
    x = mx.nd.random.uniform(shape=small_input(name))
    y = net(x)
    net.save_parameters(str(tmp_path / 'net.params'))
    for other in ALL[:3]:
        d2lnets.get_model(other)
    nn.Dense(5), nn.Sequential()
    fresh = d2lnets.get_model(name, **({} if name == 'lenet' else {'dropout': 0.0}))
    fresh.load_parameters(str(tmp_path / 'net.params'))
    np.testing.assert_array_equal(fresh(x).asnumpy(), y.asnumpy())


def test_two_networks_in_one_parent_need_its_name_scope():
    x = mx.nd.random.uniform(shape=(2, 1, 28, 28))
    # Built apart, both networks' parameters are named conv0_weight, ...: one parent cannot hold both.
    clash = nn.HybridSequential()
    clash.add(d2lnets.get_model('lenet'), d2lnets.get_model('lenet'))
    with pytest.raises(AssertionError, match='same name'):
        clash.collect_params()
    # Built inside the parent's name_scope, their names carry the parent's prefix and differ.
    parent = nn.HybridSequential()
    with parent.name_scope():
        first, second = d2lnets.get_model('lenet'), d2lnets.get_model('lenet')
    parent.add(first, second)
    names = list(parent.collect_params())
    assert len(names) == len(set(names)) == 20
    assert set(first.collect_params()).isdisjoint(second.collect_params())
    parent.initialize()
    parent.hybridize()
    assert first(x).shape == second(x).shape == (2, 10)
