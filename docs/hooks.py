"""MkDocs hook: draw what the docs show from the code itself, before each build.

Writes into docs/generated/ (not committed): the slide's complexity table
(`d2lnets complexity --compare lenet alexnet`), each network's shape printout
(`d2lnets summary`), its architecture diagram (mx.viz.plot_network through
Graphviz's `dot`), the `--help` of every CLI sub-command, and the pictures of
docs/explain.md from the shipped LeNet weights (`_explain_figures`). A file is
rewritten only when its content changes, so `mkdocs serve` does not loop.
"""
import io
import os
import contextlib
import warnings
from pathlib import Path

GENERATED = Path(__file__).resolve().parent / 'generated'

# page name -> (model, input shape, print the batch axis)
NETWORKS = {
    'lenet': ('lenet', (1, 1, 28, 28), True),
    'alexnet': ('alexnet', (1, 1, 224, 224), True),
    'vgg11': ('vgg11', (1, 1, 224, 224), True),
    'vgg11_bn': ('vgg11_bn', (1, 1, 224, 224), True),
    'nin': ('nin', (1, 1, 224, 224), False),
}


def _write(name: str, content) -> None:
    path = GENERATED / name
    data = content.encode() if isinstance(content, str) else content
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)


def _cli_help() -> str:
    from d2lnets import cli
    parser = cli.build_parser()
    sections = ['```text\n%s```\n' % parser.format_help()]
    sub = next(a for a in parser._actions if a.__class__.__name__ == '_SubParsersAction')
    for name in cli._COMMANDS:
        sections.append('## d2lnets %s\n\n```text\n%s```\n' % (name, sub.choices[name].format_help()))
    return '\n'.join(sections)


# docs/explain.md's pictures: generated/explain-NAME.png, each of the shipped LeNet on real
# Fashion-MNIST test images (the first of each class, so the pictures stay the same).
EXPLAIN = ('activations', 'pullover-coat', 'filters', 'saliency', 'gradcam', 'mistakes')


def _explain_figures() -> None:
    import numpy as np
    from d2lnets.data import classes, load_arrays
    from d2lnets.drawing import png_bytes, pyplot
    from d2lnets.explain import show
    labels = load_arrays('fashion-mnist', train=False)[1]
    first = {name: int(np.flatnonzero(labels == i)[0]) for i, name in enumerate(classes('fashion-mnist'))}
    boot = show.load_subject('lenet', pretrained=True, index=first['ankle boot'])
    figures = {'activations': show.show_activations(boot)[1], 'filters': show.show_filters(boot)[1],
               'saliency': show.show_saliency(boot)[1], 'gradcam': show.show_gradcam(boot)[1]}
    # The book's exercise: a pullover and a coat side by side through both convolution blocks.
    both = pyplot().figure(figsize=(13, 6.4), layout='constrained')
    for sub, name in zip(both.subfigures(1, 2), ('pullover', 'coat')):
        subject = show.load_subject('lenet', pretrained=True, index=first[name])
        show.show_activations(subject, layers=['conv0', 'pool0', 'conv1', 'pool1'], fig=sub)
    figures['pullover-coat'] = both
    # What `d2lnets evaluate lenet --pretrained` writes beside its confusion matrix.
    from d2lnets.training.runs import evaluate_saved
    figures['mistakes'] = show.show_mistakes(evaluate_saved('lenet', pretrained=True),
                                             title='lenet: most confidently wrong')[1]
    for name in EXPLAIN:
        _write('explain-%s.png' % name, png_bytes(figures[name]))
        pyplot().close(figures[name])


def on_pre_build(config, **kwargs):
    # MXNet 1.9.1 trips NumPy's and distutils' deprecation warnings on import: not ours to show.
    warnings.filterwarnings('ignore', category=DeprecationWarning)
    import d2lnets  # first: sets MXNet's thread defaults
    import mxnet as mx
    from d2lnets.perf.complexity_report import format_compare
    from d2lnets.models.summary import format_layer_shapes, layer_shapes

    GENERATED.mkdir(exist_ok=True)
    _write('complexity-compare.txt', format_compare(['lenet', 'alexnet'], 'markdown') + '\n')
    os.environ.setdefault('COLUMNS', '100')     # argparse wraps help at the terminal width
    for page, (model, shape, batch) in NETWORKS.items():
        net = d2lnets.get_model(model)
        lines = format_layer_shapes(layer_shapes(net, shape), batch=batch)
        _write(page + '-printout.txt', '\n'.join(lines) + '\n')
        symbol = d2lnets.get_model(model)(mx.sym.var('data'))
        with contextlib.redirect_stdout(io.StringIO()):
            graph = mx.viz.plot_network(symbol, shape={'data': shape}, title=model,
                                        node_attrs={'fontsize': '10'})
        _write(page + '.svg', graph.pipe(format='svg'))
    _write('cli-help.txt', _cli_help())
    _explain_figures()
    import graphviz
    dot = (Path(__file__).resolve().parent / 'architecture.dot').read_text()
    _write('architecture.svg', graphviz.Source(dot).pipe(format='svg'))
