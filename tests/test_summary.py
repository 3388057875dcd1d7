"""The lecture's shape printouts, to the letter."""
import mxnet as mx
import pytest

import d2lnets
from d2lnets import nn
from d2lnets.models.summary import format_layer_shapes, infer_block_shapes, layer_shapes

from conftest import fold

# name -> (input shape, with batch axis)
PRINTOUTS = {
    'lenet': ((1, 1, 28, 28), True),
    'alexnet': ((1, 1, 224, 224), True),
    'vgg11': ((1, 1, 224, 224), True),
    'nin': ((1, 1, 224, 224), False),
}


@pytest.mark.parametrize('name', sorted(PRINTOUTS))
def test_cli_printout_in_fresh_process(name, golden, run_cli):
    args = ['summary', name] + ([] if PRINTOUTS[name][1] else ['--no-batch'])
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert fold(proc.stdout) == golden(name)
    # The lecture's exact print: name, 'output shape:\t', shape, joined by spaces.
    assert proc.stdout.splitlines()[0].split(' output shape:\t ')[0] in ('conv0', 'sequential1')


@pytest.mark.parametrize('name', sorted(PRINTOUTS))
def test_printout_after_other_networks_were_built(name, golden):
    # Advance MXNet's global name counters, as a notebook session would.
    for other in ('lenet', 'nin', 'vgg11', 'alexnet'):
        d2lnets.get_model(other)
    nn.Sequential(), nn.Conv2D(3, 3), nn.Dense(3), nn.MaxPool2D(), nn.Dropout(0.1)
    shape, batch = PRINTOUTS[name]
    net = d2lnets.get_model(name)
    assert fold('\n'.join(format_layer_shapes(layer_shapes(net, shape), batch=batch))) == golden(name)


def test_print_layer_shapes_is_the_lecture_print(capsys):
    net = d2lnets.get_model('lenet')
    d2lnets.print_layer_shapes(net, (1, 1, 28, 28))
    first = capsys.readouterr().out.splitlines()[0]
    assert first == 'conv0 output shape:\t (1, 6, 28, 28)'


def test_lecture_code_verbatim_matches_get_model():
    # The lecture's own loop over a network written with d2lnets.nn.
    with mx.name.NameManager():
        net = nn.Sequential()
        net.add(nn.Conv2D(channels=6, kernel_size=5, padding=2, activation='sigmoid'),
                nn.AvgPool2D(pool_size=2, strides=2),
                nn.Conv2D(channels=16, kernel_size=5, activation='sigmoid'),
                nn.AvgPool2D(pool_size=2, strides=2),
                nn.Dense(120, activation='sigmoid'),
                nn.Dense(84, activation='sigmoid'),
                nn.Dense(10))
    X = mx.nd.random.uniform(shape=(1, 1, 28, 28))
    net.initialize()
    printed = []
    for blk in net:
        X = blk(X)
        printed.append((blk.name, X.shape))
    assert printed == layer_shapes(d2lnets.get_model('lenet'), (1, 1, 28, 28))


def test_slide_snippet_without_padding():
    shapes = dict(layer_shapes(d2lnets.get_model('lenet', padding=0), (1, 1, 28, 28)))
    assert shapes['conv0'] == (1, 6, 24, 24) and shapes['pool1'] == (1, 16, 4, 4)


@pytest.mark.parametrize('shape', [(1, 1, 224, 224), (1, 3, 224, 224)])
def test_same_builder_serves_other_inputs(shape):
    assert layer_shapes(d2lnets.get_model('alexnet'), shape)[-1] == ('dense2', (1, 10))


@pytest.mark.parametrize('name, shape, block, got', [
    ('alexnet', (1, 1, 28, 28), 'pool1', (1, 256, 2, 2)),     # shrinks below the 3x3 pooling
    ('lenet', (1, 28, 28), 'conv0', (1, 28, 28)),               # wrong rank
    ('lenet', (1, 1, 4, 4), 'conv1', (1, 6, 2, 2)),             # below the 5x5 kernel
    ('nin', (2, 1, 32, 32), 'pool1', (2, 256, 2, 2)),
])
def test_bad_input_names_block_and_shape(name, shape, block, got):
    net = d2lnets.get_model(name)
    with pytest.raises(ValueError) as info:
        layer_shapes(net, shape)
    message = str(info.value)
    assert message.startswith('%s (' % block) and str(got) in message
    assert '\n' not in message and 'Traceback' not in message
    # Nothing was initialized by the failed call: the right input still works.
    assert not [p for p in net.collect_params().values() if d2lnets.models.params.is_initialized(p)]
    layer_shapes(net, d2lnets.models.default_input_shape(name))


@pytest.mark.parametrize('shape', [(), (1, 0, 28, 28), (1, -1, 28, 28), (1.5, 1, 28, 28), 'abc'])
def test_bad_input_shape_values(shape):
    with pytest.raises(ValueError, match='input shape'):
        infer_block_shapes(d2lnets.get_model('lenet'), shape)


def test_bad_input_from_cli_is_one_line(run_cli):
    proc = run_cli('summary', 'alexnet', '--input-shape', '1,1,28,28')
    assert proc.returncode == 1
    assert proc.stdout == ''
    assert proc.stderr.strip().splitlines() == [
        'd2lnets summary: error: pool1 (MaxPool2D) cannot take input of shape (1, 256, 2, 2): '
        'kernel size (3) exceeds input (2 padded to 2)']
