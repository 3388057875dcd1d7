"""MkDocs hook: draw what the docs show from the code itself, before each build.

Writes into docs/generated/ (not committed): the slide's complexity table
(`d2lnets complexity --compare lenet alexnet`), each network's shape printout
(`d2lnets summary`), its architecture diagram (mx.viz.plot_network through
Graphviz's `dot`), the `--help` of every CLI sub-command, the browser
page's model, test images and runtime (docs/browser/README.md), and the
pictures of docs/explain.md from the shipped LeNet weights (`_explain_figures`). A file is
rewritten only when its content changes, so `mkdocs serve` does not loop.
"""
import io
import json
import os
import contextlib
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

GENERATED = Path(__file__).resolve().parent / 'generated'
BROWSER = Path(__file__).resolve().parent / 'browser'
# onnxruntime-web's files the page loads: the WebAssembly-only build, its loader and its binary.
ORT_FILES = ('ort.wasm.min.js', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm')
# The test images the page offers: the first few of each class in the test split.
SAMPLES_PER_CLASS = 4

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


def _npm_ci() -> Path:
    """onnxruntime-web as package-lock.json pins it, in docs/browser/node_modules (`npm ci`,
    again only when the lockfile changed); its dist folder."""
    lock = (BROWSER / 'package-lock.json').read_bytes()
    stamp = BROWSER / 'node_modules' / '.d2lnets-package-lock.json'
    if not stamp.exists() or stamp.read_bytes() != lock:
        npm = shutil.which('npm')
        if npm is None:
            raise RuntimeError('the browser page needs npm (Debian: apt-get install npm) to fetch onnxruntime-web')
        proc = subprocess.run([npm, 'ci', '--ignore-scripts', '--no-audit', '--no-fund'], cwd=BROWSER,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError('npm ci in %s failed: %s' % (BROWSER, (proc.stderr or proc.stdout).strip()))
        stamp.write_bytes(lock)
    return BROWSER / 'node_modules' / 'onnxruntime-web' / 'dist'


def _block(child) -> str:
    # 'Conv2D, sigmoid': the layer and its activation, as the page titles a block.
    act = getattr(child, 'act', None)
    return type(child).__name__ + (', %s' % act._act_type if act is not None else '')


def _browser_page() -> None:
    """The page's files: LeNet exported with its activations from the shipped weights,
    model.json (what runs: the weights' manifest, the outputs), samples.json (test images),
    and onnxruntime-web's files, all in docs/generated/browser/."""
    import numpy as np
    import onnxruntime
    import d2lnets
    from d2lnets import data
    from d2lnets.deploy.export import export
    from d2lnets.models.loading import load_network
    out = GENERATED / 'browser'
    (out / 'ort').mkdir(parents=True, exist_ok=True)
    dist = _npm_ci()
    for name in ORT_FILES:
        _write('browser/ort/' + Path(name).name, (dist / name).read_bytes())
    net, meta = load_network('lenet', pretrained=True)
    with tempfile.TemporaryDirectory() as tmp:
        files = export(net, os.path.join(tmp, 'lenet'), meta['input_shape'], 'onnx', metadata=meta,
                       tolerance=1e-5, activations=True).files
        model = Path(files[0]).read_bytes()
    _write('browser/lenet.onnx', model)
    session = onnxruntime.InferenceSession(model, providers=['CPUExecutionProvider'])
    blocks = {child.name: child for child in net._children.values()}
    web = json.loads((dist.parent / 'package.json').read_text())['version']
    _write('browser/model.json', json.dumps({
        'onnx': 'lenet.onnx', 'input': session.get_inputs()[0].name, 'classes': meta['classes'],
        'normalization': meta['normalization'], 'd2lnets_version': d2lnets.__version__, 'onnxruntime_web': web,
        'weights': {k: meta[k] for k in ('file', 'sha1', 'test_acc', 'date')},
        'outputs': [{'name': o.name, 'shape': [1] + o.shape[1:], 'block': _block(blocks[o.name])}
                    for o in session.get_outputs()]}, indent=1) + '\n')
    images, labels = data.load_arrays('fashion-mnist', train=False)
    picked = sorted(i for c in range(len(meta['classes'])) for i in np.flatnonzero(labels == c)[:SAMPLES_PER_CLASS])
    _write('browser/samples.json', json.dumps({
        'indices': [int(i) for i in picked], 'labels': [int(labels[i]) for i in picked],
        'pixels': [images[i].ravel().tolist() for i in picked]}, separators=(',', ':')) + '\n')


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
    from d2lnets.drawing import figure_bytes, pyplot
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
    # What `d2lnets evaluate lenet --pretrained --out DIR` writes beside its confusion matrix.
    from d2lnets.training.runs import evaluate_saved
    figures['mistakes'] = show.show_mistakes(evaluate_saved('lenet', pretrained=True),
                                             title='lenet: most confidently wrong')[1]
    for name in EXPLAIN:
        _write('explain-%s.png' % name, figure_bytes(figures[name]))
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
    _browser_page()
    _explain_figures()
    import graphviz
    dot = (Path(__file__).resolve().parent / 'architecture.dot').read_text()
    _write('architecture.svg', graphviz.Source(dot).pipe(format='svg'))
