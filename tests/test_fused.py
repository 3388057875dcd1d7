"""The fused conv-sigmoid-pool operator (d2lnets/perf/fused.py): built by the real
compiler, equal to MXNet's own Convolution -> sigmoid -> Pooling in values and
gradients, used by the training loop only where it applies."""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

import d2lnets
from d2lnets.perf import fused
from d2lnets.training.loop import train


@pytest.fixture(scope='module')
def op():
    assert fused.load(), 'the fused operator should build and load on this machine'
    return getattr(mx.nd, fused.OP_NAME)


def _reference(x, w, b, k, p, co):
    z = mx.nd.Convolution(x, w, b, kernel=(k, k), pad=(p, p), num_filter=co)
    return mx.nd.Pooling(mx.nd.Activation(z, act_type='sigmoid'), kernel=(2, 2), stride=(2, 2), pool_type='avg')


def _value_and_grads(f, x, w, b, gy):
    for t in (x, w, b):
        t.attach_grad()
    with autograd.record():
        y = f(x, w, b)
    y.backward(gy)
    return [t.asnumpy() for t in (y, x.grad, w.grad, b.grad)]


# LeNet's two blocks, then odd sizes (the pooling drops a row and a column),
# more than 16 output channels (two vector blocks), a 3x3 kernel, one channel.
SHAPES = [(64, 1, 28, 6, 5, 2), (64, 6, 14, 16, 5, 0), (3, 2, 9, 20, 3, 1), (5, 3, 11, 33, 5, 1),
          (2, 1, 7, 1, 3, 0)]


@pytest.mark.parametrize('n,ci,h,co,k,p', SHAPES)
def test_values_and_gradients_equal_mxnets_layers(op, n, ci, h, co, k, p):
    rng = np.random.RandomState(n * 1000 + co)
    x = mx.nd.array(rng.rand(n, ci, h, h + 1))
    w = mx.nd.array(rng.randn(co, ci, k, k) * 0.3)
    b = mx.nd.array(rng.randn(co) * 0.1)
    ho, wo = h + 2 * p - k + 1, h + 1 + 2 * p - k + 1
    gy = mx.nd.array(rng.randn(n, co, ho // 2, wo // 2))
    want = _value_and_grads(lambda x, w, b: _reference(x, w, b, k, p, co), x.copy(), w.copy(), b.copy(), gy)
    got = _value_and_grads(lambda x, w, b: op(x, w, b, kernel=k, pad=p, num_filter=co), x.copy(), w.copy(),
                           b.copy(), gy)
    for name, a, c in zip(('y', 'dx', 'dw', 'db'), want, got):
        assert a.shape == c.shape, name
        # relative to the largest value: sums over thousands of terms, in another order
        np.testing.assert_allclose(c, a, rtol=0, atol=1e-5 * max(1.0, np.abs(a).max()), err_msg=name)


def test_bias_gradient_is_closer_to_float64_than_mxnets(op):
    # The largest difference above (about 1e-5 relative) is the first block's
    # bias gradient, a sum of 64 x 784 terms; exact arithmetic decides who is off.
    rng = np.random.RandomState(0)
    x, w, b = rng.rand(64, 1, 28, 28), rng.randn(6, 1, 5, 5) * 0.3, rng.randn(6) * 0.1
    gy = rng.randn(64, 6, 14, 14)
    nd = [mx.nd.array(a) for a in (x, w, b)]
    want = _value_and_grads(lambda x, w, b: _reference(x, w, b, 5, 2, 6), *[a.copy() for a in nd],
                            mx.nd.array(gy))[3]
    got = _value_and_grads(lambda x, w, b: op(x, w, b, kernel=5, pad=2, num_filter=6), *[a.copy() for a in nd],
                           mx.nd.array(gy))[3]
    s = 1 / (1 + np.exp(-_conv64(x, w, b, 2)))
    g = np.repeat(np.repeat(gy, 2, axis=2), 2, axis=3) / 4 * s * (1 - s)
    exact = g.sum(axis=(0, 2, 3))
    assert np.abs(got - exact).max() <= np.abs(want - exact).max() + 1e-6


def _conv64(x, w, b, p):
    n, ci, h, wd = x.shape
    co, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    ho, wo = h + 2 * p - k + 1, wd + 2 * p - k + 1
    out = np.zeros((n, co, ho, wo)) + b[None, :, None, None]
    for kh in range(k):
        for kw in range(k):
            out += np.einsum('nchw,oc->nohw', xp[:, :, kh:kh + ho, kw:kw + wo], w[:, :, kh, kw])
    return out


def test_lenet_graph_fuses_both_blocks_and_nothing_else():
    net = d2lnets.get_model('lenet')
    net.initialize()
    graph = json.loads(net(mx.sym.var('data')).tojson())
    before = [n['op'] for n in graph['nodes']]
    assert fused.fuse_graph(graph) == 2
    after = [n['op'] for n in graph['nodes']]
    assert after.count(fused.OP_NAME) == 2
    assert 'Convolution' not in after and 'Pooling' not in after
    assert after.count('Activation') == before.count('Activation') - 2 == 2  # the dense layers' sigmoids
    assert after.count('FullyConnected') == 3
    first, second = [n for n in graph['nodes'] if n['op'] == fused.OP_NAME]
    assert first['attrs'] == {'kernel': '5', 'pad': '2', 'num_filter': '6', 'need_data_grad': '0'}
    assert second['attrs'] == {'kernel': '5', 'pad': '0', 'num_filter': '16', 'need_data_grad': '1'}


@pytest.mark.parametrize('name', ['alexnet', 'vgg11_small', 'nin'])
def test_other_networks_have_nothing_to_fuse(name):
    net = d2lnets.get_model(name)
    net.initialize()
    graph = json.loads(net(mx.sym.var('data')).tojson())
    assert fused.fuse_graph(graph) == 0


def test_a_chain_whose_inner_result_is_read_elsewhere_is_kept():
    data = mx.sym.var('data')
    z = mx.sym.Convolution(data, kernel=(5, 5), num_filter=4, name='c')
    s = mx.sym.Activation(z, act_type='sigmoid', name='s')
    y = mx.sym.Pooling(s, kernel=(2, 2), stride=(2, 2), pool_type='avg', name='p')
    graph = json.loads(mx.sym.Group([y, s]).tojson())
    assert fused.fuse_graph(graph) == 0
    graph = json.loads(mx.sym.Pooling(s, kernel=(2, 2), stride=(2, 2), pool_type='max').tojson())
    assert fused.fuse_graph(graph) == 0


def _lenet_pair(ctxs, grad_req='write'):
    mx.random.seed(3)
    net = d2lnets.get_model('lenet')
    net.initialize(mx.init.Xavier(), ctx=ctxs)
    if grad_req != 'write':
        net.collect_params('.*conv0.*').setattr('grad_req', grad_req)
    net.hybridize(static_alloc=True, static_shape=True)
    return net, fused.for_training(net, ctxs)


def _step_grads(step_net, net, ctxs, x):
    xs = mx.gluon.utils.split_and_load(x, ctxs)
    with autograd.record():
        outs = [step_net(xi) for xi in xs]
        losses = [(o * o).sum() for o in outs]
    for l in losses:
        l.backward()
    return ([o.asnumpy() for o in outs],
            {k: sum(g.asnumpy() for g in p.list_grad()) for k, p in net.collect_params().items()
             if p.grad_req != 'null'})


@pytest.mark.parametrize('ctxs', [[mx.cpu(0)], [mx.cpu(0), mx.cpu(1)]], ids=['one-cpu', 'two-cpus'])
def test_training_net_equals_the_network(ctxs):
    x = mx.nd.array(np.random.RandomState(1).rand(32, 1, 28, 28))
    net, step_net = _lenet_pair(ctxs)
    outs, grads = _step_grads(step_net, net, ctxs, x)
    assert step_net.fused
    ref_outs, ref_grads = _step_grads(net, net, ctxs, x)
    for a, b in zip(outs, ref_outs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert grads.keys() == ref_grads.keys() and len(grads) == 10
    for k in grads:
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=0, atol=1e-5 * np.abs(ref_grads[k]).max(),
                                   err_msg=k)


def test_parameters_accumulating_gradients_are_left_to_mxnet():
    # The operator writes gradients; grad_req='add' (or 'null') must keep MXNet's layers.
    for req in ('add', 'null'):
        net, step_net = _lenet_pair([mx.cpu()], grad_req=req)
        with autograd.record():
            step_net(mx.nd.ones((2, 1, 28, 28)))
        graph = json.loads(step_net._fast(mx.sym.var('data')).tojson())
        convs = [n['name'] for n in graph['nodes'] if n['op'] == 'Convolution']
        assert convs == ['conv0_fwd'], req


def test_off_switch_and_other_devices_keep_the_network():
    code = ('import d2lnets, mxnet as mx; from d2lnets.perf import fused; net = d2lnets.get_model("lenet"); '
            'net.initialize(); t = fused.for_training(net, [mx.cpu()]); t(mx.nd.ones((1, 1, 28, 28))); '
            'print(t.fused)')
    env = dict(os.environ, D2LNETS_FUSED='0')
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ['False'], out.stderr
    # A GPU context: decided at once, without building anything or touching the GPU.
    gpu = fused.for_training(d2lnets.get_model('lenet'), [mx.gpu(0)])
    assert gpu._decided and not gpu.fused


def test_without_a_compiler_training_warns_once_and_uses_the_network(tmp_path):
    code = ('import warnings, d2lnets, mxnet as mx; from d2lnets.perf import fused; '
            'net = d2lnets.get_model("lenet"); net.initialize(); '
            'ts = [fused.for_training(net, [mx.cpu()]) for _ in range(2)]; '
            '[t(mx.nd.ones((1, 1, 28, 28))) for t in ts]; print([t.fused for t in ts])')
    env = dict(os.environ, CXX=str(tmp_path / 'no-such-compiler'), D2LNETS_CACHE=str(tmp_path / 'cache'))
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['[False,', 'False]']
    warned = [l for l in out.stderr.splitlines() if 'without its fused CPU kernels' in l]
    assert len(warned) == 1 and 'no C++ compiler found' in warned[0] and 'install g++' in warned[0]
    assert not (tmp_path / 'cache').exists() or not any((tmp_path / 'cache').iterdir())


def test_build_is_cached_and_atomic(tmp_path, monkeypatch):
    monkeypatch.setenv('D2LNETS_CACHE', str(tmp_path))
    path = fused.build()
    assert path.parent == tmp_path and path.name.startswith('libd2lnets_fused-') and path.suffix == '.so'
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    mtime = path.stat().st_mtime_ns
    assert fused.build() == path and path.stat().st_mtime_ns == mtime  # cached: not rebuilt
    assert fused.library_path() == path


def test_an_unwritable_cache_says_how_to_fix_it(tmp_path, monkeypatch):
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    monkeypatch.setenv('D2LNETS_CACHE', str(blocker / 'cache'))
    with pytest.raises(fused.BuildError, match='set D2LNETS_CACHE to a writable folder'):
        fused.build()


def test_a_failed_build_says_why_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv('D2LNETS_CACHE', str(tmp_path))
    bad = tmp_path / 'bad.cc'
    bad.write_text('this is not C++\n')
    monkeypatch.setattr(fused, 'SOURCE', bad)
    with pytest.raises(fused.BuildError, match='building the fused kernels failed'):
        fused.build()
    assert [p.name for p in tmp_path.iterdir()] == ['bad.cc']


def test_trained_network_exports_gluons_own_layers(tmp_path):
    net = d2lnets.get_model('lenet')
    train_iter = [(mx.nd.array(np.random.RandomState(0).rand(8, 1, 28, 28)), mx.nd.array(np.arange(8) % 10))]
    train(net, train_iter, train_iter, 1, 0.1, ctx=mx.cpu(), verbose=False, seed=0)
    net.export(str(tmp_path / 'lenet'))
    ops = {n['op'] for n in json.loads((tmp_path / 'lenet-symbol.json').read_text())['nodes']}
    assert fused.OP_NAME not in ops and {'Convolution', 'Activation', 'Pooling'} <= ops
