"""Parameters and multiply-accumulates per layer: the slide's numbers, exactly."""
import csv
import io
import json

import mxnet as mx
import pytest

import d2lnets
from d2lnets import nn
from d2lnets.perf.complexity_report import compare, format_compare, format_complexity, layer_groups
from d2lnets.models.summary import complexity, layer_shapes


def _cost(name, shape):
    return complexity(d2lnets.get_model(name), shape)


def test_alexnet_slide_column_exact():
    groups = layer_groups(_cost('alexnet', (1, 3, 224, 224)))
    assert list(groups) == ['Conv1', 'Conv2', 'Conv3-5', 'Dense1', 'Dense2', 'Dense3']
    weights = [groups[g][0] for g in ('Conv1', 'Conv2', 'Conv3-5', 'Dense1', 'Dense2')]
    macs = [groups[g][2] for g in ('Conv1', 'Conv2', 'Conv3-5', 'Dense1', 'Dense2')]
    assert weights == [34848, 614400, 3096576, 26214400, 16777216]
    assert macs == [101616768, 415334400, 445906944, 26214400, 16777216]


def test_alexnet_totals():
    cost = _cost('alexnet', (1, 3, 224, 224))
    assert cost.weights == 46778400                 # the slide's 46M
    assert cost.macs == 1005890688                  # the slide's 1G
    assert cost.flops == 2 * cost.macs and cost.training_flops == 6 * cost.macs
    # With biases (96 + 256 + 384 + 384 + 256 + 4096 + 4096 + 10).
    assert cost.parameters == cost.weights + cost.biases == 46787978


def test_lenet_true_counts():
    cost = _cost('lenet', (1, 1, 28, 28))
    by_name = {l.name: l for l in cost.layers}
    assert [l.name for l in cost.layers] == ['conv0', 'pool0', 'conv1', 'pool1', 'dense0', 'dense1', 'dense2']
    # conv: Cout x Hout x Wout x Cin x k x k.
    assert by_name['conv0'].macs == 6 * 28 * 28 * 1 * 5 * 5 == 117600
    assert by_name['conv1'].macs == 16 * 10 * 10 * 6 * 5 * 5 == 240000
    assert (by_name['conv0'].weights, by_name['conv1'].weights) == (150, 2400)
    # The slide's 0.48M and 0.1M are ten times these.
    assert (by_name['dense0'].weights, by_name['dense1'].weights) == (48000, 10080)
    assert by_name['pool0'].parameters == by_name['pool0'].macs == 0
    assert by_name['pool0'].kind == 'AvgPool2D' and by_name['pool0'].output_shape == (1, 6, 14, 14)
    assert (cost.weights, cost.parameters, cost.macs) == (61470, 61706, 416520)


@pytest.mark.parametrize('name, shape, weights', [
    ('lenet', (1, 1, 28, 28), 48000),              # 16 x 5 x 5 x 120
    ('alexnet', (1, 1, 224, 224), 26214400),       # 256 x 5 x 5 x 4096
    ('vgg11', (1, 1, 224, 224), 102760448),        # 512 x 7 x 7 x 4096
])
def test_curse_of_the_last_layer(name, shape, weights):
    first_dense = [l for l in _cost(name, shape).layers if l.kind == 'Dense'][0]
    assert first_dense.weights == weights


@pytest.mark.parametrize('name', ['lenet', 'alexnet', 'nin', 'vgg11_small', 'vgg11_bn'])
def test_parameters_and_shapes_agree_with_the_network(name):
    shape = (2, 1, 28, 28) if name == 'lenet' else (2, 1, 224, 224)
    net = d2lnets.get_model(name)
    cost = complexity(net, shape)
    # Nothing was initialized to count...
    assert all(p._data is None for p in net.collect_params().values())
    shapes = dict(layer_shapes(net, shape))
    # ...and the counts are those of the initialized network; the shapes the lecture's.
    assert cost.parameters == d2lnets.count_parameters(net)
    assert all(l.output_shape == shapes[l.name] for l in cost.layers if l.name in shapes)
    # The counts are for the whole batch: twice a batch of one.
    assert cost.macs == 2 * complexity(net, (1,) + shape[1:]).macs


def test_grouped_convolution_and_batch_norm():
    with mx.name.NameManager():
        net = nn.Sequential()
        net.add(nn.Conv2D(8, kernel_size=3, groups=2, in_channels=4, use_bias=False),
                nn.BatchNorm(), nn.Dense(5, flatten=False), nn.Conv2DTranspose(2, kernel_size=2, strides=2))
    cost = complexity(net, (1, 4, 6, 6))
    conv, bn, dense, deconv = cost.layers
    assert conv.macs == 8 * 4 * 4 * (4 // 2) * 3 * 3 and conv.weights == 8 * 2 * 3 * 3 and conv.biases == 0
    # gamma counts as weights, beta as biases; running statistics only as parameters.
    assert (bn.weights, bn.biases, bn.parameters, bn.macs) == (8, 8, 32, 0)
    # A dense layer that does not flatten acts on every position: 8 x 4 rows of 4 -> 5.
    assert dense.output_shape == (1, 8, 4, 5) and dense.macs == 8 * 4 * 4 * 5
    # A transposed convolution spreads every input value over Cout x k x k outputs.
    assert deconv.output_shape == (1, 2, 8, 10) and deconv.macs == (8 * 4 * 5) * 2 * 2 * 2


def test_bad_shape_names_the_layer():
    with pytest.raises(ValueError, match=r'conv1 \(Conv2D\) cannot take input of shape \(1, 6, 2, 2\)'):
        _cost('lenet', (1, 1, 4, 4))
    with pytest.raises(ValueError, match='positive integers'):
        _cost('lenet', (1, 0, 28, 28))


def test_formats_carry_the_same_numbers():
    cost = _cost('lenet', (1, 1, 28, 28))
    data = json.loads(format_complexity(cost, 'json'))
    assert data['total'] == dict(weights=61470, biases=236, parameters=61706, macs=416520, flops=833040,
                                 training_flops=2499120)
    assert [l['macs'] for l in data['layers']] == [l.macs for l in cost.layers]
    rows = list(csv.DictReader(io.StringIO(format_complexity(cost, 'csv'))))
    assert [r['layer'] for r in rows] == [l.name for l in cost.layers] + ['total']
    assert int(rows[-1]['MACs']) == 416520 and int(rows[-1]['FLOPs']) == 833040
    table = format_complexity(cost, 'table')
    assert 'dense0  Dense' in table and '48,000' in table and '2,499,120 FLOPs' in table
    markdown = format_complexity(cost, 'markdown').splitlines()
    assert markdown[0].startswith('| layer | kind |') and markdown[2].startswith('| conv0 | Conv2D |')
    with pytest.raises(ValueError, match='unknown format'):
        format_complexity(cost, 'xml')


def test_compare_is_the_slide_with_true_ratios():
    data = compare(['lenet', 'alexnet'])
    lenet, alexnet = data['lenet']['rows'], data['alexnet']['rows']
    assert data['alexnet']['input_shape'] == [1, 3, 224, 224] and data['lenet']['input_shape'] == [1, 1, 28, 28]
    assert alexnet['Conv3-5']['weights'] == 3096576 and alexnet['Conv3-5']['slide'] == ('3M', '445M')
    assert lenet['Dense1'] == dict(weights=48000, macs=48000, slide=('0.48M', '0.48M'))
    assert 'Conv3-5' not in lenet
    assert lenet['Increase']['weights'] == 1 and alexnet['Increase']['slide'] == ('11x', '250x')
    assert alexnet['Increase']['weights'] == 46778400 / 61470     # 761x, not 11x
    assert alexnet['Increase']['macs'] == 1005890688 / 416520      # 2415x, not 250x
    rows = list(csv.reader(io.StringIO(format_compare(['lenet', 'alexnet'], 'csv'))))
    assert [r[0] for r in rows] == ['', 'Conv1', 'Conv2', 'Conv3-5', 'Dense1', 'Dense2', 'Dense3', 'Total',
                                    'Increase']
    header, conv1 = rows[0], rows[1]
    assert conv1[header.index('alexnet params (slide)')] == '35K'
    assert conv1[header.index('alexnet params')] == '34848'
    assert conv1[header.index('alexnet MACs')] == '101616768'
    text = format_compare(['lenet', 'alexnet'])
    assert '761x' in text and '2415x' in text and 'docs/complexity.md' in text


def test_cli_complexity(run_cli, capsys):
    from d2lnets import cli
    proc = run_cli('complexity', 'alexnet', '--input-shape', '1,3,224,224', '--format', 'json')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)['layers'][0]['weights'] == 34848
    # The other cases through cli.main in this process, as the process runs it (each process loads MXNet).
    code = cli.main(['complexity', '--compare', 'lenet', 'alexnet'])
    stdout, stderr = capsys.readouterr()
    assert code == 0 and stderr == ''
    lines = stdout.splitlines()
    assert [l.split()[0] for l in lines[2:10]] == ['Conv1', 'Conv2', 'Conv3-5', 'Dense1', 'Dense2', 'Dense3',
                                                  'Total', 'Increase']
    assert '415,334,400' in lines[3]
    code = cli.main(['complexity'])
    stderr = capsys.readouterr().err
    assert code == 1 and len(stderr.strip().splitlines()) == 1
    assert 'name a network' in stderr


def test_cli_plot(run_cli, tmp_path, capsys):
    from d2lnets import cli
    out = tmp_path / 'complexity.png'
    proc = run_cli('complexity', '--plot', out)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and out.stat().st_size > 10000
    assert [p.name for p in tmp_path.iterdir()] == ['complexity.png']   # no temporary file left
    # The bad name through cli.main in this process, as the process runs it.
    assert cli.main(['complexity', '--plot', str(tmp_path / 'figure.xyz')]) == 1
    assert 'use a file name ending in .png' in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ['complexity.png']


def test_public_name():
    assert d2lnets.complexity is complexity
