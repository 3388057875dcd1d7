"""The fused conv-sigmoid-pool operator (d2lnets/perf/: kernels_build.py,
rewrite.py, choice.py, fused.py): built by the real compiler, equal to MXNet's
own Convolution -> sigmoid -> Pooling in values and gradients, used by the
training loop only where it applies."""
import json
import os
import shutil
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

import d2lnets
from d2lnets.perf import choice, fused, kernels_build, rewrite
from d2lnets.training.loop import train


RUNNABLE = kernels_build.runnable_variants()


@pytest.fixture(autouse=True)
def _always_fused(monkeypatch):
    # The numerics tests compare the fused graph itself: no timing choice.
    monkeypatch.setenv('D2LNETS_FUSED', '1')
    monkeypatch.delenv('D2LNETS_FUSED_VARIANT', raising=False)


@pytest.fixture(scope='module', params=RUNNABLE or [None])
def op(request):
    # Every variant this CPU executes: an AVX-512 machine tests the AVX2 build too.
    if request.param is None:
        pytest.skip('this CPU runs no fused kernel variant (%s)' % kernels_build.instruction_set())
    name = kernels_build.load(request.param)
    assert name == kernels_build.op_name(request.param), \
        'the %s variant should build and load here' % request.param
    return getattr(mx.nd, name)


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
    assert rewrite.fuse_graph(graph) == 2
    after = [n['op'] for n in graph['nodes']]
    assert after.count(kernels_build.OP_NAME) == 2
    assert 'Convolution' not in after and 'Pooling' not in after
    assert after.count('Activation') == before.count('Activation') - 2 == 2  # the dense layers' sigmoids
    assert after.count('FullyConnected') == 3
    first, second = [n for n in graph['nodes'] if n['op'] == kernels_build.OP_NAME]
    assert first['attrs'] == {'kernel': '5', 'pad': '2', 'num_filter': '6', 'need_data_grad': '0'}
    assert second['attrs'] == {'kernel': '5', 'pad': '0', 'num_filter': '16', 'need_data_grad': '1'}


@pytest.mark.parametrize('name', ['alexnet', 'vgg11_small', 'nin'])
def test_other_networks_have_nothing_to_fuse(name):
    net = d2lnets.get_model(name)
    net.initialize()
    graph = json.loads(net(mx.sym.var('data')).tojson())
    assert rewrite.fuse_graph(graph) == 0


def test_a_chain_whose_inner_result_is_read_elsewhere_is_kept():
    data = mx.sym.var('data')
    z = mx.sym.Convolution(data, kernel=(5, 5), num_filter=4, name='c')
    s = mx.sym.Activation(z, act_type='sigmoid', name='s')
    y = mx.sym.Pooling(s, kernel=(2, 2), stride=(2, 2), pool_type='avg', name='p')
    graph = json.loads(mx.sym.Group([y, s]).tojson())
    assert rewrite.fuse_graph(graph) == 0
    graph = json.loads(mx.sym.Pooling(s, kernel=(2, 2), stride=(2, 2), pool_type='max').tojson())
    assert rewrite.fuse_graph(graph) == 0


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
    path = kernels_build.build()
    assert path.parent == tmp_path and path.name.startswith('libd2lnets_fused-') and path.suffix == '.so'
    # no temporary file left; the record of size and sha256 beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, path.with_suffix('.json').name])
    assert kernels_build.intact(path)
    mtime = path.stat().st_mtime_ns
    assert kernels_build.build() == path and path.stat().st_mtime_ns == mtime  # cached: not rebuilt
    assert kernels_build.library_path() == path


def test_an_unwritable_cache_says_how_to_fix_it(tmp_path, monkeypatch):
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    monkeypatch.setenv('D2LNETS_CACHE', str(blocker / 'cache'))
    with pytest.raises(kernels_build.BuildError, match='set D2LNETS_CACHE to a writable folder'):
        kernels_build.build()


def test_a_failed_build_says_why_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv('D2LNETS_CACHE', str(tmp_path))
    bad = tmp_path / 'bad.cc'
    bad.write_text('this is not C++\n')
    monkeypatch.setattr(kernels_build, 'SOURCE', bad)
    with pytest.raises(kernels_build.BuildError, match='building the fused kernels failed'):
        kernels_build.build()
    assert [p.name for p in tmp_path.iterdir()] == ['bad.cc']


def test_trained_network_exports_gluons_own_layers(tmp_path):
    net = d2lnets.get_model('lenet')
    train_iter = [(mx.nd.array(np.random.RandomState(0).rand(8, 1, 28, 28)), mx.nd.array(np.arange(8) % 10))]
    train(net, train_iter, train_iter, 1, 0.1, ctx=mx.cpu(), verbose=False, seed=0)
    net.export(str(tmp_path / 'lenet'))
    ops = {n['op'] for n in json.loads((tmp_path / 'lenet-symbol.json').read_text())['nodes']}
    assert not any(o.startswith(kernels_build.OP_NAME) for o in ops)
    assert {'Convolution', 'Activation', 'Pooling'} <= ops


def test_fused_inference_equals_the_network():
    net, _ = _lenet_pair([mx.cpu()])
    x = mx.nd.array(np.random.RandomState(2).rand(20, 1, 28, 28))
    infer = fused.for_inference(net, [mx.cpu()])
    got = infer(x).asnumpy()
    assert infer.fused and [c['fused'] for c in infer.chains] == [True, True]
    nodes = [n for n in json.loads(infer._fast(mx.sym.var('data')).tojson())['nodes']
             if n['op'].startswith(kernels_build.OP_NAME)]
    assert [n['attrs']['training'] for n in nodes] == ['0', '0']  # forward only: nothing saved
    np.testing.assert_allclose(got, net(x).asnumpy(), rtol=1e-5, atol=1e-6)
    assert fused.for_inference(infer, [mx.cpu()]) is infer
    # the evaluation helpers take it too, and count the same
    y = mx.nd.array(np.arange(20) % 10)
    from d2lnets.training.metrics import evaluate_accuracy
    assert evaluate_accuracy(infer, [(x, y)]) == evaluate_accuracy(net, [(x, y)])


def _private_cache(tmp_path, monkeypatch):
    # The built library, copied into a cache of the test's own (its name does not depend on the folder).
    real = kernels_build.build()
    monkeypatch.setenv('D2LNETS_CACHE', str(tmp_path))
    shutil.copy(real, tmp_path / real.name)
    record = json.loads(real.with_suffix('.json').read_text())
    (tmp_path / real.name).with_suffix('.json').write_text(json.dumps(dict(record, choices={})))
    return tmp_path / real.name


def test_the_choice_keeps_mxnets_layers_where_the_fused_chain_is_slower(tmp_path, monkeypatch):
    # Forced timings: the first block fused is faster, the second slower.
    if not RUNNABLE:
        pytest.skip('no fused variant runs here')
    _private_cache(tmp_path, monkeypatch)
    monkeypatch.setenv('D2LNETS_FUSED', 'auto')
    calls = []

    def timer(attrs, shape, op, train, ctx):
        calls.append(shape)
        return (10.0, 5.0) if attrs['pad'] == '2' else (4.0, 9.0)  # (MXNet's layers, fused) ms

    monkeypatch.setattr(choice, 'time_chain', timer)
    net, _ = _lenet_pair([mx.cpu()])
    step_net = fused.for_training(net, [mx.cpu()])
    x = mx.nd.array(np.random.RandomState(1).rand(8, 1, 28, 28))
    with autograd.record():
        step_net(x)
    assert [(c['name'], c['fused']) for c in step_net.chains] == [('conv0_fwd', True), ('conv1_fwd', False)]
    assert calls == [(8, 1, 28, 28), (8, 6, 14, 14)]  # the real input shape of each chain
    ops = [n['op'] for n in json.loads(step_net._fast(mx.sym.var('data')).tojson())['nodes']]
    assert ops.count('Convolution') == 1 and sum(o.startswith(kernels_build.OP_NAME) for o in ops) == 1
    assert 'conv1: MXNet' in step_net.describe()
    # Both slower (on another batch size, measured anew): the network as it is.
    monkeypatch.setattr(choice, 'time_chain', lambda *a: (1.0, 2.0))
    slower = fused.for_training(net, [mx.cpu()])
    slower(x[:4])
    assert not slower.fused


def test_choices_are_cached_beside_the_library(tmp_path, monkeypatch):
    lib = tmp_path / 'libd2lnets_fused-avx2-0.so'
    lib.write_bytes(b'not a real library')
    record = {'size': lib.stat().st_size, 'sha256': kernels_build._sha256(lib), 'choices': {}}
    kernels_build.write_record(lib, record)
    chain = {'name': 'conv1_fwd', 'input': 'pool0_fwd_output',
             'attrs': {'kernel': '5', 'pad': '0', 'num_filter': '16', 'need_data_grad': '1'}}
    calls = []

    def timer(*args):
        calls.append(args)
        return 4.0, 9.0


    def kernels():
        # As kernels_build.ready() hands them to each network: the record read when the library is loaded.
        return kernels_build.Kernels('op', 'avx2', lib, kernels_build.intact_record(lib))

    for _ in range(2):
        got = choice.choose([chain], {'pool0_fwd_output': (256, 6, 14, 14)}, kernels(), True, mx.cpu(), timer)
        assert got[0]['fused'] is False and got[0]['mxnet_ms'] == 4.0
    assert len(calls) == 1  # measured once, then read from the record
    assert len(json.loads(lib.with_suffix('.json').read_text())['choices']) == 1
    # another shape (or thread count, or CPU) is measured anew
    choice.choose([chain], {'pool0_fwd_output': (16, 6, 14, 14)}, kernels(), True, mx.cpu(), timer)
    assert len(calls) == 2


def test_time_chain_measures_both_sides():
    if not RUNNABLE:
        pytest.skip('no fused variant runs here')
    op = kernels_build.load()
    attrs = {'kernel': '5', 'pad': '0', 'num_filter': '16', 'need_data_grad': '1'}
    layers_ms, fused_ms = choice.time_chain(attrs, (8, 6, 14, 14), op, True, mx.cpu(), repeats=2)
    assert 0 < layers_ms < 1000 and 0 < fused_ms < 1000


@pytest.mark.parametrize('value,want', [('0', '0'), ('off', '0'), ('1', '1'), ('auto', 'auto'), ('', 'auto')])
def test_the_switch(monkeypatch, value, want):
    monkeypatch.setenv('D2LNETS_FUSED', value)
    assert kernels_build.mode() == want


def test_a_wrong_switch_or_variant_says_what_is_allowed(monkeypatch):
    monkeypatch.setenv('D2LNETS_FUSED', 'fast')
    with pytest.raises(ValueError, match='D2LNETS_FUSED must be 0, 1 or auto'):
        kernels_build.mode()
    monkeypatch.setenv('D2LNETS_FUSED_VARIANT', 'sse')
    with pytest.raises(ValueError, match='must be one of avx512, avx2'):
        kernels_build.best_variant()


def test_variants_follow_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(kernels_build.platform, 'machine', lambda: 'x86_64')
    v3 = set(kernels_build.VARIANTS['avx2'][1])
    for flags, want in [(v3, ['avx2']), (v3 | set(kernels_build.VARIANTS['avx512'][1]), ['avx512', 'avx2']),
                        (v3 - {'avx2'}, [])]:
        monkeypatch.setattr(kernels_build, 'cpu_flags', lambda flags=flags: flags)
        assert kernels_build.runnable_variants() == want
    monkeypatch.setattr(kernels_build.platform, 'machine', lambda: 'aarch64')
    assert kernels_build.runnable_variants() == [] and kernels_build.instruction_set() == 'not x86-64 (aarch64)'


def test_a_cpu_without_avx2_trains_through_mxnets_layers_with_one_message(tmp_path):
    # A CPU without AVX2: the flags as the process sees them, through /proc/cpuinfo's reader.
    code = ('import warnings, d2lnets, mxnet as mx; from d2lnets.perf import fused, kernels_build; '
            'kernels_build.cpu_flags = lambda: {"sse2", "avx"}; '
            'net = d2lnets.get_model("lenet"); net.initialize(); '
            'ts = [fused.for_training(net, [mx.cpu()]) for _ in range(2)]; '
            '[t(mx.nd.ones((1, 1, 28, 28))) for t in ts]; print([t.fused for t in ts])')
    env = dict(os.environ, D2LNETS_CACHE=str(tmp_path / 'cache'))
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['[False,', 'False]']
    warned = [l for l in out.stderr.splitlines() if "through MXNet's layers" in l]
    assert len(warned) == 1 and 'no AVX2 and FMA' in warned[0]
    assert not (tmp_path / 'cache').exists()


FAKE_CXX = """#!/bin/sh
# A stand-in compiler: copies a real, prebuilt library to the -o target,
# or fails when $FAIL exists.
case "$1" in --version) echo "fake-cxx 1"; exit 0;; esac
[ -e "%(fail)s" ] && { echo "fake-cxx: out of luck" >&2; exit 1; }
while [ $# -gt 1 ]; do shift; done
cp "%(lib)s" "$1"
"""


def test_a_truncated_library_is_rebuilt_not_loaded(tmp_path, monkeypatch):
    if not RUNNABLE:
        pytest.skip('no fused variant runs here')
    real = kernels_build.build()
    cxx, fail = tmp_path / 'cxx', tmp_path / 'fail'
    cxx.write_text(FAKE_CXX % {'lib': real, 'fail': fail})
    cxx.chmod(0o755)
    monkeypatch.setenv('CXX', str(cxx))
    monkeypatch.setenv('D2LNETS_CACHE', str(tmp_path / 'cache'))
    lib = kernels_build.build()
    size = lib.stat().st_size
    with open(lib, 'r+b') as f:
        f.truncate(size // 2)
    assert not kernels_build.intact(lib)
    code = 'from d2lnets.perf import kernels_build; print(kernels_build.load())'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr  # not SIGBUS
    assert out.stdout.split() == [kernels_build.op_name(kernels_build.best_variant())]
    assert 'damaged' in out.stderr and 'rebuilding' in out.stderr
    assert lib.stat().st_size == size and kernels_build.intact(lib)
    # It cannot be rebuilt: one clear message, MXNet's layers, no crash.
    with open(lib, 'r+b') as f:
        f.truncate(size // 2)
    fail.write_text('')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['None']
    warned = [l for l in out.stderr.splitlines() if 'without its fused CPU kernels' in l]
    assert len(warned) == 1 and 'building the fused kernels failed' in warned[0], out.stderr


def test_the_fused_kernels_modules_import_downward_only():
    # One job per module (docs/architecture.md, the perf row): the runtime wrapper uses the choice and the
    # rewrite, both use the build; the build uses none of them, and none imports the runtime wrapper.
    import ast
    from pathlib import Path
    folder = Path(kernels_build.__file__).parent
    jobs = ('fused', 'choice', 'rewrite', 'kernels_build')
    found = set()
    for user in jobs:
        for node in ast.walk(ast.parse((folder / (user + '.py')).read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module in jobs:
                found.add((user, node.module))
    assert found == {('fused', 'choice'), ('fused', 'rewrite'), ('fused', 'kernels_build'),
                     ('choice', 'kernels_build'), ('rewrite', 'kernels_build')}
