"""Every JSON file d2lnets reads goes through io.read_json (issue 19, principles 4 and 5): its size
is checked before it is read and its depth before it is parsed, and a damaged file is one line
naming it. Real files, FIFOs, links to devices, a real ONNX file; a property test over any bytes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from d2lnets import io
from d2lnets.deploy import onnx_model
from d2lnets.training.checkpoint import CheckpointError, load_checkpoint
from d2lnets.weights.meta import read_meta

DEEP = '[' * 100_000 + ']' * 100_000
HISTORY = {'epoch': [1], 'loss': [0.5], 'train_acc': [0.8], 'test_acc': [0.7], 'seconds': [1.0],
           'examples_per_sec': [10.0]}
LATEST = {'epoch': 1, 'params': 'epoch-0001.params', 'trainer': 'epoch-0001.trainer.json', 'history': HISTORY,
          'run': {}}


def checkpoint(folder, latest=None, trainer='{"states": [], "arrays": null}'):
    """A checkpoint folder whose latest.json is ``latest`` (text; default: a valid one)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'epoch-0001.params').write_bytes(b'')
    (folder / 'epoch-0001.trainer.json').write_text(trainer)
    (folder / 'latest.json').write_text(json.dumps(LATEST) if latest is None else latest)
    return folder


def onnx_file(path, metadata: str):
    """A real ONNX file (an identity on (1, 1, 28, 28)) carrying ``metadata`` as d2lnets' metadata."""
    import onnx
    from onnx import TensorProto, helper
    shape = [1, 1, 28, 28]
    graph = helper.make_graph([helper.make_node('Identity', ['data'], ['out'])], 'g',
                              [helper.make_tensor_value_info('data', TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info('out', TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    helper.set_model_props(model, {onnx_model.METADATA_KEY: metadata})
    onnx.save(model, str(path))
    return str(path)


def test_read_json_bounds_depth_and_size_before_parsing(tmp_path):
    path = tmp_path / 'x.json'
    path.write_text(DEEP)
    with pytest.raises(io.DamagedFile) as err:
        io.read_json(path, 'the file', 'fix it')
    assert str(err.value) == 'the file %s is damaged (nested more than 32 levels deep); fix it' % path
    path.write_text('[' * 32 + ']' * 32)
    deepest = []
    for _ in range(31):
        deepest = [deepest]
    assert io.read_json(path, 'the file') == deepest
    # brackets inside strings are text, not depth
    path.write_text(json.dumps({'a': '[' * 1000, 'b': '"\\[' * 100}))
    assert io.read_json(path, 'the file') == {'a': '[' * 1000, 'b': '"\\[' * 100}
    path.write_text('[' + '0,' * 1000 + '0]')
    with pytest.raises(io.DamagedFile, match=r'x.json is damaged \(2003 bytes, more than the 1000 a file of its '
                                             r'kind can have\); remove it, or write it anew$'):
        io.read_json(path, 'the file', max_bytes=1000)
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(io.DamagedFile, match=r'x.json is damaged \(not UTF-8 text\)'):
        io.read_json(path, 'the file')
    path.write_text('{"a": ' + '9' * 5000 + '}')
    with pytest.raises(io.DamagedFile, match=r'x.json is damaged \(not JSON: Exceeds the limit'):
        io.read_json(path, 'the file')


def test_a_deep_meta_json_is_named_damaged_not_a_recursion_error(tmp_path):
    (tmp_path / 'meta.json').write_text(DEEP)
    with pytest.raises(ValueError) as err:
        read_meta(tmp_path / 'model.params')
    assert str(err.value) == ("the weights' metadata %s is damaged (nested more than 32 levels deep); remove it or "
                              'write it anew with `d2lnets train`' % (tmp_path / 'meta.json'))


def test_a_huge_meta_json_is_refused_before_it_is_read(tmp_path):
    meta = tmp_path / 'meta.json'
    meta.write_text(json.dumps({'classes': ['x' * 1000] * 2000}))     # valid, 2 MB
    with pytest.raises(ValueError, match=r"metadata %s is damaged \(2008013 bytes, more than the 1048576 a file"
                                         % meta):
        read_meta(tmp_path / 'model.params')


@pytest.mark.parametrize('name', ['latest.json', 'epoch-0001.trainer.json'])
def test_a_deep_checkpoint_file_is_one_damaged_line(tmp_path, name):
    folder = checkpoint(tmp_path / 'checkpoint')
    (folder / name).write_text(DEEP)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(folder)
    assert str(err.value) == ('the checkpoint file %s is damaged (nested more than 32 levels deep); start a new run '
                              'with another `out`' % (folder / name))


def test_a_deep_checkpoint_is_one_line_from_the_cli(tmp_path, run_cli):
    run = tmp_path / 'run'
    checkpoint(run / 'checkpoint', latest=DEEP)
    out = run_cli('train', '--resume', run, '--epochs', '2', '--quiet')
    assert out.returncode == 1 and out.stdout == ''
    assert out.stderr.splitlines() == ['d2lnets train: error: the checkpoint file %s is damaged (nested more than '
                                       '32 levels deep); start a new run with another --out'
                                       % (run / 'checkpoint' / 'latest.json')]


def test_deep_onnx_metadata_is_one_damaged_line(tmp_path):
    path = onnx_file(tmp_path / 'm.onnx', DEEP)
    with pytest.raises(ValueError) as err:
        onnx_model.OnnxModel(path)
    assert str(err.value) == ('%s (its d2lnets metadata) is damaged (nested more than 32 levels deep); export it '
                              'again' % path)
    assert onnx_model.OnnxModel(onnx_file(tmp_path / 'ok.onnx', '{"model": "lenet"}')).model_name == 'lenet'


@pytest.mark.parametrize('record', [DEEP, '{"size": 1, ' * 5000, 'fifo'])
def test_a_bad_kernel_record_is_rebuilt_and_never_breaks_info(tmp_path, monkeypatch, record):
    from d2lnets.perf import kernels_build
    from test_fused import FAKE_CXX, RUNNABLE
    if not RUNNABLE:
        pytest.skip('no fused variant runs here')
    real = kernels_build.build()
    cxx = tmp_path / 'cxx'
    cxx.write_text(FAKE_CXX % {'lib': real, 'fail': tmp_path / 'fail'})
    cxx.chmod(0o755)
    monkeypatch.setenv('CXX', str(cxx))
    monkeypatch.setenv('D2LNETS_CACHE', str(tmp_path / 'cache'))
    lib = kernels_build.build()
    lib.with_suffix('.json').unlink()
    os.mkfifo(lib.with_suffix('.json')) if record == 'fifo' else lib.with_suffix('.json').write_text(record)
    assert kernels_build.status()['cached'] is False
    if record == 'fifo':     # io writes no FIFO: the kernels are not used, in one line
        with pytest.raises(kernels_build.BuildError, match=r'lib.*\.json is not a regular file; d2lnets writes only'):
            kernels_build.build()
        return
    assert kernels_build.build() == lib and kernels_build.intact(lib) and kernels_build.status()['cached'] is True


# A FIFO would block the read forever and a link to /dev/zero never end it: run in a child with a deadline.
READERS = """
import sys
from pathlib import Path
from pathlib import Path
from d2lnets.training.checkpoint import load_checkpoint
from d2lnets.weights.meta import read_meta
from d2lnets.perf import kernels_build
folder = Path(sys.argv[1])
for read in (lambda: read_meta(folder / 'model.params'), lambda: load_checkpoint(folder)):
    try:
        read()
    except ValueError as err:
        print(err)
print(kernels_build.read_record(folder / 'lib.so'))
"""


@pytest.mark.parametrize('kind', ['fifo', 'device'])
def test_a_json_file_that_is_a_fifo_or_a_device_is_named_damaged_at_once(tmp_path, kind):
    folder = checkpoint(tmp_path / 'files')
    for name in ('meta.json', 'latest.json', 'lib.json'):
        (folder / name).unlink(missing_ok=True)
        os.mkfifo(folder / name) if kind == 'fifo' else (folder / name).symlink_to('/dev/zero')
    out = subprocess.run([sys.executable, '-c', READERS, str(folder)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "the weights' metadata %s is damaged (not a regular file); remove it or write it anew with `d2lnets train`"
        % (folder / 'meta.json'),
        'the checkpoint file %s is damaged (not a regular file); start a new run with another `out`'
        % (folder / 'latest.json'),
        '{}']


# --- any bytes: a value, or the one line naming the file ---

def json_texts():
    values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                          lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4), max_leaves=20)
    valid = values.map(lambda v: json.dumps(v).encode())
    # deep nesting, and valid JSON with a few bytes put in somewhere
    bombs = st.builds(lambda n, unit: unit * n, st.integers(0, 3000), st.sampled_from([b'[', b'{"a":', b'["', b'[{}']))
    mutated = st.builds(lambda text, extra, at: text[:at] + extra + text[at:], valid, st.binary(max_size=8),
                        st.integers(0, 200))
    return st.one_of(st.binary(max_size=300), valid, bombs, mutated)


def one_line_naming(err: BaseException, name: str) -> None:
    assert isinstance(err, ValueError), repr(err)
    assert '\n' not in str(err) and name in str(err), str(err)


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(data=json_texts())
def test_any_meta_json_is_a_value_or_one_line(tmp_path, data):
    (tmp_path / 'meta.json').write_bytes(data)
    try:
        assert isinstance(read_meta(tmp_path / 'model.params'), dict)
    except Exception as err:        # noqa: B902  (the property: nothing but the one line)
        one_line_naming(err, str(tmp_path / 'meta.json'))


@PROPERTY
@given(data=json_texts(), which=st.sampled_from(['latest.json', 'epoch-0001.trainer.json']))
def test_any_checkpoint_file_is_a_value_or_one_line(tmp_path, data, which):
    folder = checkpoint(tmp_path / 'checkpoint')
    (folder / which).write_bytes(data)
    try:
        assert isinstance(load_checkpoint(folder), dict)
    except Exception as err:        # noqa: B902
        one_line_naming(err, str(folder))
        assert 'start a new run with another `out`' in str(err)


@PROPERTY
@given(data=json_texts())
def test_any_onnx_metadata_is_a_value_or_one_line(data):
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError:
        return      # ONNX stores metadata as UTF-8 strings: onnxruntime hands d2lnets only text
    try:
        assert isinstance(onnx_model.read_metadata(text, 'm.onnx'), dict)
    except Exception as err:        # noqa: B902
        one_line_naming(err, 'm.onnx')


@PROPERTY
@given(data=json_texts())
def test_any_kernel_record_is_a_record_or_none(tmp_path, data):
    from d2lnets.perf import kernels_build
    lib = tmp_path / 'lib.so'
    lib.write_bytes(b'library')
    (tmp_path / 'lib.json').write_bytes(data)
    assert isinstance(kernels_build.read_record(lib), dict)        # a damaged record is an empty one: rebuilt
    assert kernels_build.intact(lib) in (True, False)


# --- meta.json's sizes, checked when it is read ---

SHIPPED = Path(__file__).resolve().parent.parent / 'd2lnets' / 'weights' / 'lenet-fashion-mnist-5a8ada67.params'


@pytest.mark.parametrize('field, value, message', [
    ('input_shape', [1, 1, 100000, 100000], "the field 'input_shape' is out of bounds (the input shape [1, 1, 100000, "
                                            '100000]: each side must be at most 16384, got 100000)'),
    ('input_shape', [1, 4096, 16384, 16384], "the field 'input_shape' is out of bounds (an input of shape (1, 4096, "
                                             '16384, 16384): 1099511627776 elements, more than the 2147483647'),
    ('input_shape', [1, 1, 28, 28.0], "the field 'input_shape' must be a list [1, channels, height, width] of "
                                      'positive integers, not [1, 1, 28, 28.0]'),
    ('input_shape', [1, 1, 28], "the field 'input_shape' must be a list [1, channels, height, width]"),
    ('classes', ['x'] * 100_001, "the field 'classes' must be a list of 1 to 100000 class names of at most 200 "
                                 'characters'),
    ('classes', ['x' * 201], "the field 'classes' must be a list of 1 to 100000 class names"),
])
def test_a_hostile_meta_json_is_one_line_before_anything_is_allocated(tmp_path, capsys, field, value, message):
    from d2lnets.cli import main
    from PIL import Image
    params = tmp_path / 'model.params'
    params.write_bytes(SHIPPED.read_bytes())
    meta = json.loads(SHIPPED.with_suffix('.json').read_text())
    (tmp_path / 'meta.json').write_text(json.dumps(dict(meta, **{field: value})))
    Image.new('L', (28, 28)).save(tmp_path / 'x.png')
    assert main(['predict', 'lenet', '--params', str(params), str(tmp_path / 'x.png')]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith('d2lnets predict: error: %s: ' % (tmp_path / 'meta.json')), err
    assert message in err[0] and err[0].endswith('; write the file anew with `d2lnets train` (or fix that field)')
