"""Export: MXNet's symbol format and ONNX give the Gluon network's outputs.

Each network is exported once (traced at batch size 2) and run at batch sizes
1 and 3, by ``SymbolBlock.imports`` and by onnxruntime, read here directly
rather than through d2lnets' own runner.
"""
import json
import os
import subprocess
import sys
from typing import NamedTuple

import mxnet as mx
import numpy as np
import onnx
import onnxruntime
import pytest

import d2lnets
from d2lnets import cli, data
from d2lnets.deploy.export import METADATA_KEY, TOLERANCE, export, verify

# name: (builder arguments, input (channels, height, width)); VGG with its
# channels divided by 8, as the lecture's small VGG divides them by 4.
MODELS = {
    'lenet': ({}, (1, 28, 28)),
    'alexnet': ({}, (1, 224, 224)),
    'vgg11': ({'ratio': 8}, (1, 224, 224)),
    'nin': ({}, (1, 224, 224)),
    'vgg11_bn': ({'ratio': 8}, (1, 224, 224)),
}
TRACE_BATCH = 2
BATCH_SIZES = (1, 3)


class Case(NamedTuple):
    name: str
    net: mx.gluon.HybridBlock
    shape: tuple
    symbol_files: list
    onnx_file: str


def build(name, kwargs, shape):
    """An initialized network whose outputs are of order one (so that 1e-4 is
    a real tolerance), with non-trivial batch-norm statistics."""
    mx.random.seed(0)
    net = d2lnets.get_model(name, **kwargs)
    net.initialize(mx.init.Xavier(magnitude=6))
    net(mx.nd.zeros((1,) + shape))
    rng = np.random.RandomState(0)
    for pname, p in net.collect_params('.*gamma|.*beta|.*running_mean|.*running_var').items():
        low = 0.5 if pname.endswith(('gamma', 'running_var')) else -0.5
        p.set_data(mx.nd.array(rng.uniform(low, low + 1, size=p.shape)))
    return net


def batch(shape, n, seed):
    return np.random.RandomState(seed).uniform(size=(n,) + shape).astype(np.float32)


@pytest.fixture(scope='module', params=list(MODELS))
def case(request, tmp_path_factory):
    name = request.param
    kwargs, shape = MODELS[name]
    net = build(name, kwargs, shape)
    prefix = str(tmp_path_factory.mktemp(name) / name)
    symbol = export(net, prefix, (TRACE_BATCH,) + shape, 'symbol')
    onnx_file = export(net, prefix, (TRACE_BATCH,) + shape, 'onnx', metadata={'model': name}).files[0]
    return Case(name, net, shape, symbol.files, onnx_file)


def gluon_output(case, x):
    out = case.net(mx.nd.array(x)).asnumpy()
    # 1e-4 is then at most 0.2% of the largest output (seeded: the same numbers every run).
    assert np.abs(out).max() > 0.05, 'outputs this small would make the tolerance meaningless'
    return out


@pytest.mark.filterwarnings('ignore:Cannot decide type')   # SymbolBlock.imports: the input is float32
@pytest.mark.parametrize('n', BATCH_SIZES)
def test_symbol_block_equals_gluon(case, n):
    assert case.symbol_files == [case.symbol_files[0].replace('-symbol.json', '') + s
                                 for s in ('-symbol.json', '-0000.params')]
    block = mx.gluon.SymbolBlock.imports(case.symbol_files[0], ['data'], case.symbol_files[1])
    x = batch(case.shape, n, seed=n)
    got = block(mx.nd.array(x)).asnumpy()
    assert got.shape == (n, 10)
    assert np.abs(got - gluon_output(case, x)).max() <= TOLERANCE


@pytest.mark.parametrize('n', BATCH_SIZES)
def test_onnxruntime_equals_gluon(case, n):
    session = onnxruntime.InferenceSession(case.onnx_file, providers=['CPUExecutionProvider'])
    x = batch(case.shape, n, seed=n)
    got = session.run(None, {'data': x})[0]
    assert got.shape == (n, 10)
    assert np.abs(got - gluon_output(case, x)).max() <= TOLERANCE


def test_onnx_file_is_clean(case):
    model = onnx.load(case.onnx_file)
    onnx.checker.check_model(model)
    graph = model.graph
    # One input (the weights are initializers only), with a named dynamic batch axis.
    assert [i.name for i in graph.input] == ['data']
    for value in (graph.input[0], graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == 'batch' and not dims[0].dim_value
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:]] == list(case.shape)
    assert [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim[1:]] == [10]
    # Every parameter, batch-norm statistics included, is in the file.
    assert {i.name for i in graph.initializer} >= set(case.net.collect_params())
    assert json.loads({p.key: p.value for p in model.metadata_props}[METADATA_KEY]) == {'model': case.name}


@pytest.mark.parametrize('case', ['lenet', 'vgg11_bn'], indirect=True)   # the same code for every network
def test_verify_is_the_largest_difference(case):
    x = batch(case.shape, 3, seed=0)
    expected = gluon_output(case, x)
    session = onnxruntime.InferenceSession(case.onnx_file, providers=['CPUExecutionProvider'])
    assert verify(case.net, [case.onnx_file], (3,) + case.shape, seed=0) == \
        float(np.abs(session.run(None, {'data': x})[0] - expected).max())
    assert verify(case.net, case.symbol_files, (3,) + case.shape, seed=0) <= TOLERANCE


# --- the command line --------------------------------------------------------------------------

FASHION_MNIST_CLASSES = data.FASHION_MNIST_CLASSES


def save_lenet(folder, channels=1, side=28, meta=None):
    """A LeNet's model.params (and meta.json, as `d2lnets train` writes it) in ``folder``."""
    net = d2lnets.get_model('lenet')
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, channels, side, side)))
    folder.mkdir(parents=True, exist_ok=True)
    net.save_parameters(str(folder / 'model.params'))
    if meta is not None:
        (folder / 'meta.json').write_text(json.dumps(meta))
    return folder / 'model.params'


def lenet_meta(side=28):
    return {'format': 'd2lnets-run/1', 'model': 'lenet', 'model_kwargs': {}, 'classes': FASHION_MNIST_CLASSES,
            'input_shape': [1, 1, side, side], 'dataset': 'fashion-mnist', 'resize': side if side != 28 else None,
            'normalization': {'scale': 1 / 255, 'mean': 0.0, 'std': 1.0}}


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def onnx_input_dims(path):
    dims = onnx.load(path).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_param or d.dim_value for d in dims]


@pytest.mark.parametrize('fmt', ['onnx', 'symbol'])
def test_cli_export_verify(tmp_path, capsys, fmt):
    params = save_lenet(tmp_path / 'run', meta=lenet_meta())
    code, out, err = run(capsys, 'export', 'lenet', '--params', params, '--format', fmt,
                         '--out', tmp_path / 'lenet', '--verify')
    assert (code, err) == (0, '')
    lines = out.splitlines()
    assert [line.split()[-1] for line in lines[:2]] == ['1', '2']   # the batch sizes verified
    assert all(float(line.split()[4]) <= TOLERANCE for line in lines[:2])
    files = {'onnx': ['lenet.onnx'], 'symbol': ['lenet-symbol.json', 'lenet-0000.params']}[fmt]
    assert lines[2:] == [str(tmp_path / f) for f in files]
    assert sorted(os.listdir(tmp_path)) == sorted(files + ['run'])
    if fmt == 'onnx':
        meta = json.loads({p.key: p.value for p in onnx.load(str(tmp_path / 'lenet.onnx')).metadata_props}
                          [METADATA_KEY])
        assert meta['classes'] == FASHION_MNIST_CLASSES and meta['input_shape'] == [1, 1, 28, 28]


def test_cli_input_shape_is_what_the_weights_were_trained_for(tmp_path, capsys):
    # meta.json says 32 x 32 (a run with --resize 32).
    params = save_lenet(tmp_path / 'run32', side=32, meta=lenet_meta(32))
    assert run(capsys, 'export', 'lenet', '--params', params, '--format', 'onnx', '--out', tmp_path / 'a')[0] == 0
    assert onnx_input_dims(str(tmp_path / 'a.onnx')) == ['batch', 1, 32, 32]
    # No meta.json: the channels come from the weights, the size is LeNet's.
    params = save_lenet(tmp_path / 'rgb', channels=3)
    assert run(capsys, 'export', 'lenet', '--params', params, '--format', 'onnx', '--out', tmp_path / 'b')[0] == 0
    assert onnx_input_dims(str(tmp_path / 'b.onnx')) == ['batch', 3, 28, 28]
    # No weights: the model's default; --input-shape wins.
    assert run(capsys, 'export', 'lenet', '--format', 'onnx', '--out', tmp_path / 'c')[0] == 0
    assert onnx_input_dims(str(tmp_path / 'c.onnx')) == ['batch', 1, 28, 28]
    assert run(capsys, 'export', 'lenet', '--input-shape', '4,3,36,36', '--format', 'onnx', '--out', tmp_path / 'd')[0] == 0
    assert onnx_input_dims(str(tmp_path / 'd.onnx')) == ['batch', 3, 36, 36]


@pytest.fixture(scope='module')
def nin_params(tmp_path_factory):
    net = d2lnets.get_model('nin')
    net.initialize()
    net(mx.nd.zeros((1, 1, 96, 96)))
    path = tmp_path_factory.mktemp('nin') / 'nin.params'
    net.save_parameters(str(path))
    return path


@pytest.mark.parametrize('args, message', [
    (['lenet', '--format', 'tflite'], "unsupported export format 'tflite'; use one of: symbol, onnx"),
    (['lenet', '--params', 'NIN', '--format', 'onnx'], "does not hold weights of 'lenet': missing 0.bias"),
    (['lenet', '--params', 'nothere.params', '--format', 'onnx'], 'no such file: nothere.params'),
    (['lenet', '--params', 'NOT_PARAMS', '--format', 'symbol'], 'is not a readable MXNet .params file'),
    (['alexnet', '--input-shape', '1,1,28,28', '--format', 'onnx'], 'cannot take input of shape'),
    (['lenet', '--format', 'onnx', '--out', 'missing/dir/x'], 'the output directory'),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, nin_params, args, message):
    not_params = tmp_path / 'notes.txt'
    not_params.write_text('not parameters')
    args = [{'NIN': nin_params, 'NOT_PARAMS': not_params}.get(a, a) for a in args]
    if '--out' not in args:
        args += ['--out', tmp_path / 'out']
    before = sorted(os.listdir(tmp_path))
    code, out, err = run(capsys, 'export', *args, '--verify')
    assert code == 1 and out == ''
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert sorted(os.listdir(tmp_path)) == before


def test_failed_verification_writes_nothing_and_keeps_old_files(tmp_path):
    net = d2lnets.get_model('lenet')
    net.initialize()
    (tmp_path / 'lenet.onnx').write_text('the previous export')
    with pytest.raises(ValueError, match='differs from the network by up to .*; nothing was written'):
        export(net, str(tmp_path / 'lenet'), (1, 1, 28, 28), 'onnx', tolerance=-1.0)
    assert os.listdir(tmp_path) == ['lenet.onnx']
    assert (tmp_path / 'lenet.onnx').read_text() == 'the previous export'


def test_an_uninitialized_network_is_refused(tmp_path):
    with pytest.raises(ValueError, match='not initialized: load its weights'):
        export(d2lnets.get_model('lenet'), str(tmp_path / 'lenet'), (1, 1, 28, 28), 'symbol')
    assert os.listdir(tmp_path) == []


def test_cli_export_pretrained_carries_the_manifest(tmp_path, capsys):
    from d2lnets.models.loading import pretrained_meta
    code, out, err = run(capsys, 'export', 'lenet', '--pretrained', '--format', 'onnx', '--out', tmp_path / 'lenet',
                         '--verify')
    assert (code, err) == (0, '')
    meta = json.loads({p.key: p.value for p in onnx.load(str(tmp_path / 'lenet.onnx')).metadata_props}
                      [METADATA_KEY])
    assert meta['sha1'] == pretrained_meta('lenet')['sha1'] and meta['classes'] == FASHION_MNIST_CLASSES
    assert onnx_input_dims(str(tmp_path / 'lenet.onnx')) == ['batch', 1, 28, 28]


def test_cli_pretrained_without_weights_is_one_line(tmp_path, capsys):
    code, out, err = run(capsys, 'export', 'nin', '--pretrained', '--format', 'onnx', '--out', tmp_path / 'nin')
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "no pretrained weights are available for 'nin'" in err
    assert list(tmp_path.iterdir()) == []


def test_a_folder_as_out_gets_the_models_name_and_dead_staging_is_removed(tmp_path, capsys):
    out = tmp_path / 'ex'
    out.mkdir()
    # What an export killed by SIGKILL left: its staging folder, named with its (dead) process id.
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    stale = out / ('.lenet.%s.0123abcd.tmp' % dead.stdout.strip())
    stale.mkdir()
    (stale / 'model-0000.params').write_bytes(b'x' * 1000)
    code, stdout, err = run(capsys, 'export', 'lenet', '--pretrained', '--format', 'symbol', '--out', str(out) + '/')
    assert (code, err) == (0, '')
    assert sorted(os.listdir(out)) == ['lenet-0000.params', 'lenet-symbol.json']


def test_replacing_is_all_or_nothing(tmp_path, monkeypatch):
    from d2lnets.deploy import export as export_module
    net = d2lnets.get_model('lenet')
    net.initialize()
    (tmp_path / 'lenet-symbol.json').write_text('old symbol')
    (tmp_path / 'lenet-0000.params').mkdir()          # the second file cannot be replaced
    with pytest.raises(ValueError, match='lenet-0000.params is a folder'):
        export(net, str(tmp_path / 'lenet'), (1, 1, 28, 28), 'symbol')
    assert (tmp_path / 'lenet-symbol.json').read_text() == 'old symbol'
    # A failure while replacing (here: the second rename) puts the first file back.
    (tmp_path / 'lenet-0000.params').rmdir()
    (tmp_path / 'lenet-0000.params').write_text('old params')
    real_replace, calls = os.replace, []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, 'No space left on device')
        return real_replace(src, dst)
    monkeypatch.setattr(export_module.os, 'replace', failing_replace)
    with pytest.raises(OSError):
        export(net, str(tmp_path / 'lenet'), (1, 1, 28, 28), 'symbol')
    monkeypatch.undo()
    assert (tmp_path / 'lenet-symbol.json').read_text() == 'old symbol'
    assert (tmp_path / 'lenet-0000.params').read_text() == 'old params'
    assert sorted(os.listdir(tmp_path)) == ['lenet-0000.params', 'lenet-symbol.json']


def test_a_full_disk_is_one_line_and_keeps_the_old_files(tmp_path, capsys):
    import subprocess as sp
    disk = tmp_path / 'tiny'
    disk.mkdir()
    if os.geteuid() != 0 or sp.run(['mount', '-t', 'tmpfs', '-o', 'size=200k', 'tmpfs', str(disk)],
                                   capture_output=True).returncode != 0:
        pytest.skip('mounting a tmpfs needs root')
    try:
        (disk / 'lenet.onnx').write_text('the previous export')
        code, out, err = run(capsys, 'export', 'lenet', '--pretrained', '--format', 'onnx', '--out', disk / 'lenet')
        assert code == 1 and err.strip().splitlines() == [
            'd2lnets export: error: no space left on the device to write %s; free some space and run again '
            '(nothing was replaced)' % (disk / 'lenet')]
        assert os.listdir(disk) == ['lenet.onnx'] and (disk / 'lenet.onnx').read_text() == 'the previous export'
    finally:
        sp.run(['umount', str(disk)], check=True)


# --- activations: the logits and every top-level block's output (the browser page's model) -----

ACTIVATION_TOLERANCE = 1e-5


def blocks_one_by_one(net, x):
    """Each top-level block's output, applying the blocks one after the other (imperatively)."""
    outputs, y = [], mx.nd.array(x)
    for child in net._children.values():
        y = child(y)
        outputs.append(y.asnumpy())
    return outputs


@pytest.mark.parametrize('name', ['lenet', 'nin'])
def test_activations_export_equals_every_block(tmp_path, name):
    kwargs, shape = MODELS[name]
    net = build(name, kwargs, shape)
    result = export(net, str(tmp_path / name), (TRACE_BATCH,) + shape, 'onnx', activations=True,
                    tolerance=ACTIVATION_TOLERANCE)
    assert max(result.differences.values()) <= ACTIVATION_TOLERANCE
    children = list(net._children.values())
    session = onnxruntime.InferenceSession(result.files[0], providers=['CPUExecutionProvider'])
    # The logits first (so that `d2lnets predict --onnx` reads this file too), named by the last block.
    assert [o.name for o in session.get_outputs()] == [children[-1].name] + [c.name for c in children[:-1]]
    for n in BATCH_SIZES:
        x = batch(shape, n, seed=n)
        got = session.run(None, {'data': x})
        expected = blocks_one_by_one(net, x)
        expected = [expected[-1]] + expected[:-1]
        assert [a.shape for a in got] == [a.shape for a in expected]
        for g, e in zip(got, expected):
            assert np.abs(g - e).max() <= ACTIVATION_TOLERANCE
        assert np.abs(got[0] - gluon_output(Case(name, net, shape, [], ''), x)).max() <= ACTIVATION_TOLERANCE


def test_cli_activations_of_the_shipped_lenet_on_test_images(tmp_path, capsys):
    from d2lnets.deploy.predict import predict_onnx
    code, out, err = run(capsys, 'export', 'lenet', '--pretrained', '--format', 'onnx', '--activations',
                         '--out', tmp_path / 'lenet', '--verify')
    assert (code, err) == (0, '')
    path = str(tmp_path / 'lenet.onnx')
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    assert [(o.name, o.shape) for o in session.get_outputs()] == [
        ('dense2', ['batch', 10]), ('conv0', ['batch', 6, 28, 28]), ('pool0', ['batch', 6, 14, 14]),
        ('conv1', ['batch', 16, 10, 10]), ('pool1', ['batch', 16, 5, 5]), ('dense0', ['batch', 120]),
        ('dense1', ['batch', 84])]
    images, labels = data.load_arrays('fashion-mnist', train=False)
    x = (images[:32, None] / np.float32(255)).astype(np.float32)
    from d2lnets.models.loading import load_network
    net, _ = load_network('lenet', None, True, None)
    expected = blocks_one_by_one(net, x)
    got = session.run(None, {'data': x})
    for g, e in zip(got, [expected[-1]] + expected[:-1]):
        assert np.abs(g - e).max() <= ACTIVATION_TOLERANCE
    assert (got[0].argmax(1) == labels[:32]).mean() >= 0.75      # the shipped weights, not random ones
    # `d2lnets predict --onnx` reads the file: the logits come first.
    png = tmp_path / 'image.png'
    from PIL import Image
    Image.fromarray(images[0]).save(png)
    assert predict_onnx(path, [str(png)], k=1)[0][0][0] == int(got[0][0].argmax())


def test_activations_are_refused_for_the_symbol_format(tmp_path, capsys):
    code, out, err = run(capsys, 'export', 'lenet', '--format', 'symbol', '--activations', '--out', tmp_path / 'x')
    assert code == 1 and err.strip().splitlines()[-1].endswith('activations are exported to ONNX only; '
                                                               'use --format onnx')
    assert list(tmp_path.iterdir()) == []


def test_a_staging_folder_swapped_for_a_link_is_refused_at_cleanup_and_the_outside_kept(tmp_path):
    # What the export wrote went where the link points: one line says so, the link stays for the user to
    # see, and nothing it points to is deleted.
    from d2lnets.deploy.export import _staging
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'keep.txt').write_text('precious data')
    (tmp_path / 'out').mkdir()
    with pytest.raises(ValueError) as info:
        with _staging(str(tmp_path / 'out' / 'model')) as staged:
            os.rename(staged, tmp_path / 'moved')      # another process, mid-export
            os.symlink(outside, staged)
    assert str(info.value) == ('%s is a symbolic link; d2lnets deletes only files and folders of its own: remove '
                               'it yourself, or choose another folder' % staged)
    assert os.path.islink(staged) and os.listdir(outside) == ['keep.txt']
    assert (outside / 'keep.txt').read_text() == 'precious data'
