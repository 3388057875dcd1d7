"""The lecture's complexity tables and figure, from :func:`d2lnets.models.summary.complexity`.

- :func:`format_complexity`: one network's per-layer costs as a table, CSV,
  JSON or Markdown.
- :func:`format_compare`: the slide "Complexity" (LeNet vs AlexNet), each of
  the slide's figures beside the exact count.
- :func:`plot_complexity`: parameters and FLOPs per layer group, log scale.
"""
import csv
import io
import json
import os
from typing import Dict, List, Sequence, Tuple

from ..models.summary import Complexity, complexity
from ..registry import entry

FORMATS = ('table', 'csv', 'json', 'markdown')

# The slide "Complexity": (#parameters, FLOP) per row as the slide writes them.
# Its FLOP column counts multiply-accumulates; its LeNet column is 10x too large
# from Dense1 on and in every FLOP row (see docs/complexity.md).
SLIDE = {
    'alexnet': {'Conv1': ('35K', '101M'), 'Conv2': ('614K', '415M'), 'Conv3-5': ('3M', '445M'),
                'Dense1': ('26M', '26M'), 'Dense2': ('16M', '16M'), 'Total': ('46M', '1G'),
                'Increase': ('11x', '250x')},
    'lenet': {'Conv1': ('150', '1.2M'), 'Conv2': ('2.4K', '2.4M'), 'Dense1': ('0.48M', '0.48M'),
              'Dense2': ('0.1M', '0.1M'), 'Total': ('0.6M', '4M'), 'Increase': ('1x', '1x')},
}


def slide_input_shape(name: str) -> Tuple[int, ...]:
    """The input the slide counts for: LeNet on 1x28x28, the others on
    ImageNet's 3x224x224 (batch of one); the registry's entry says."""
    return entry(name).slide_input_shape


def _number(n: int) -> str:
    return '{:,}'.format(n)


def _render(header: Sequence[str], rows: Sequence[Sequence[str]], fmt: str) -> str:
    """Rows of strings as an aligned text table, CSV or Markdown."""
    if fmt == 'csv':
        out = io.StringIO()
        writer = csv.writer(out, lineterminator='\n')
        writer.writerow(header)
        writer.writerows(rows)
        return out.getvalue().rstrip('\n')
    if fmt == 'markdown':
        right = [i > 0 for i in range(len(header))]
        lines = ['| ' + ' | '.join(header) + ' |',
                 '|' + '|'.join('---:' if r else '---' for r in right) + '|']
        return '\n'.join(lines + ['| ' + ' | '.join(row) + ' |' for row in rows])
    widths = [max(len(str(r[i])) for r in [header] + list(rows)) for i in range(len(header))]
    lines = []
    for row in [header] + list(rows):
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append('  '.join(cells).rstrip())
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError('unknown format %r; choose one of %s' % (fmt, ', '.join(FORMATS)))


def format_complexity(cost: Complexity, fmt: str = 'table') -> str:
    """One network's per-layer costs and totals in ``fmt`` (``table``,
    ``csv``, ``json`` or ``markdown``); FLOPs are 2 x MACs."""
    _check_format(fmt)
    if fmt == 'json':
        return json.dumps(cost.to_dict(), indent=2)
    header = ['layer', 'kind', 'output shape', 'weights', 'biases', 'parameters', 'MACs', 'FLOPs']
    rows = [[l.name, l.kind, 'x'.join(map(str, l.output_shape))]
            + [_number(v) if fmt != 'csv' else str(v)
               for v in (l.weights, l.biases, l.parameters, l.macs, l.flops)]
            for l in cost.layers]
    total = [cost.weights, cost.biases, cost.parameters, cost.macs, cost.flops]
    rows.append(['total', '', 'x'.join(map(str, cost.input_shape)) + ' in']
                + [_number(v) if fmt != 'csv' else str(v) for v in total])
    text = _render(header, rows, fmt)
    if fmt == 'csv':
        return text
    return text + '\n\nA training step (forward and backward) counts 3 x the forward pass: %s FLOPs.' \
        % _number(cost.training_flops)


def layer_groups(cost: Complexity) -> Dict[str, Tuple[int, int, int]]:
    """``{label: (weights, parameters, macs)}`` in the slide's grouping:
    ``Conv1``, ``Conv2``, the remaining convolutions together (``Conv3-5``
    for AlexNet), then each dense layer (``Dense1``, ``Dense2``, ...)."""
    convs = [l for l in cost.layers if l.kind.startswith('Conv')]
    dense = [l for l in cost.layers if l.kind == 'Dense']
    groups = [('Conv%d' % (i + 1), [l]) for i, l in enumerate(convs[:2])]
    if len(convs) > 2:
        groups.append(('Conv3' if len(convs) == 3 else 'Conv3-%d' % len(convs), convs[2:]))
    groups += [('Dense%d' % (i + 1), [l]) for i, l in enumerate(dense)]
    return {label: (sum(l.weights for l in ls), sum(l.parameters for l in ls), sum(l.macs for l in ls))
            for label, ls in groups}


def _ratio(a: int, b: int) -> str:
    r = a / b
    return ('%.0fx' % r) if r >= 10 else ('%.1fx' % r).replace('.0x', 'x')


def compare(names: Sequence[str], classes: int = 10) -> Dict:
    """The slide's comparison for ``names`` (the first is the base of the
    ``Increase`` row): per network, its input shape and per row its exact
    weights and MACs, with the slide's figures where the slide has them."""
    from ..models import get_model
    if not names:
        raise ValueError('name at least one network to compare, such as: lenet alexnet')
    costs = {name: complexity(get_model(name, classes=classes), slide_input_shape(name)) for name in names}
    base = costs[names[0]]
    result = {}
    for name, cost in costs.items():
        groups = layer_groups(cost)
        rows = {}
        for label, (weights, _, macs) in groups.items():
            rows[label] = dict(weights=weights, macs=macs, slide=SLIDE.get(name, {}).get(label))
        rows['Total'] = dict(weights=cost.weights, macs=cost.macs, parameters=cost.parameters,
                             slide=SLIDE.get(name, {}).get('Total'))
        rows['Increase'] = dict(weights=cost.weights / base.weights, macs=cost.macs / base.macs,
                                slide=SLIDE.get(name, {}).get('Increase'))
        result[name] = dict(input_shape=list(cost.input_shape), rows=rows)
    return result


def format_compare(names: Sequence[str], fmt: str = 'table', classes: int = 10) -> str:
    """The slide "Complexity" for ``names``: rows Conv1, Conv2, Conv3-5,
    Dense1, Dense2 (and any further groups), Total, Increase; per network its
    weights and MACs, each with the slide's figure beside it."""
    _check_format(fmt)
    data = compare(names, classes=classes)
    if fmt == 'json':
        return json.dumps(data, indent=2)
    text = _render(*_compare_table(data, plain=fmt == 'csv'), fmt)
    return text if fmt == 'csv' else text + '\n' + '\n'.join(_compare_notes(data, classes))


def _compare_table(data: Dict, plain: bool) -> Tuple[List[str], List[List[str]]]:
    """(header, rows) of the slide's table, each slide figure beside the exact count."""
    labels: List[str] = []
    for network in data.values():
        labels += [l for l in network['rows'] if l not in labels and l not in ('Total', 'Increase')]
    # The slide's order: convolutions, then dense layers, then Total and Increase.
    labels.sort(key=lambda l: (not l.startswith('Conv'), l))
    labels += ['Total', 'Increase']
    header = ['']
    for name in data:
        slide = name in SLIDE
        header += ([name + ' params (slide)'] if slide else []) + [name + ' params']
    for name in data:
        slide = name in SLIDE
        header += ([name + ' MACs (slide "FLOP")'] if slide else []) + [name + ' MACs']
    rows = []
    for label in labels:
        row = [label]
        for col, idx in (('weights', 0), ('macs', 1)):
            for name, network in data.items():
                cell = network['rows'].get(label)
                if name in SLIDE:
                    row.append(cell['slide'][idx] if cell and cell['slide'] else '')
                if cell is None:
                    row.append('')
                elif label == 'Increase':
                    row.append(('%.4g' % cell[col]) if plain else _ratio(cell[col], 1))
                else:
                    row.append(str(cell[col]) if plain else _number(cell[col]))
        rows.append(row)
    return header, rows


def _compare_notes(data: Dict, classes: int) -> List[str]:
    shapes = ', '.join('%s %s' % (n, 'x'.join(map(str, e['input_shape'][1:]))) for n, e in data.items())
    notes = ['',
             'Inputs: %s; %d classes. Parameters count weights (c_in x c_out x k x k, in x out), as the '
             'slide does; MACs are multiply-accumulates per image (the slide\'s "FLOP"; FLOPs = 2 x MACs).'
             % (shapes, classes),
             'Total includes the output layer; with biases the totals are %s.'
             % ', '.join('%s %s' % (n, _number(e['rows']['Total']['parameters'])) for n, e in data.items())]
    if 'lenet' in data:
        notes.append("The slide's LeNet figures from Dense1 on and all its LeNet FLOP figures are 10x the "
                     "true counts, hence its Increase row; see docs/complexity.md.")
    return notes


PLOT_NETWORKS = ('lenet', 'alexnet', 'vgg11', 'nin')


def _plot_groups(name: str, groups: Sequence[str], classes: int) -> List[Tuple[int, int, int]]:
    """(weights, parameters, MACs) of ``name`` per plotted group, on the slide's input."""
    from ..models import get_model
    cost = complexity(get_model(name, classes=classes), slide_input_shape(name))
    per = {('Conv3+' if label.startswith('Conv3') else label): v for label, v in layer_groups(cost).items()}
    return [per.get(g, (0, 0, 0)) for g in groups]


def plot_complexity(path: str, names: Sequence[str] = PLOT_NETWORKS, classes: int = 10) -> str:
    """Save a bar chart (log scale) of parameters and FLOPs per layer group
    (Conv1, Conv2, Conv3+, Dense1, Dense2, Dense3) for ``names`` side by side.
    The file is written whole or not at all; returns ``path``."""
    from ..drawing import figure_format, pyplot, save_figure
    fmt = figure_format(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError('the folder %s does not exist; create it first' % directory)
    groups = ['Conv1', 'Conv2', 'Conv3+', 'Dense1', 'Dense2', 'Dense3']
    data = {name: _plot_groups(name, groups, classes) for name in names}
    fig, axes = pyplot().subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(names)
    for ax, (title, pick) in zip(axes, [('parameters (weights)', lambda v: v[0]),
                                        ('FLOPs per image (2 x MACs)', lambda v: 2 * v[2])]):
        for i, name in enumerate(names):
            xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(groups))]
            ys = [pick(v) for v in data[name]]
            ax.bar([x for x, y in zip(xs, ys) if y], [y for y in ys if y], width, label=name)
        ax.set_yscale('log')
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups)
        ax.set_title(title)
        ax.grid(axis='y', which='major', alpha=0.3)
    axes[0].legend()
    fig.suptitle('Complexity per layer group (LeNet on 1x28x28, the others on 3x224x224)')
    fig.tight_layout()
    save_figure(fig, path, fmt, dpi=100)
    return path
