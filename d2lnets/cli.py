"""The ``d2lnets`` command: parses arguments, calls the library, prints.

Every sub-command is a pair ``_add_<name>(subparsers)`` / ``_run_<name>(args)``.
Errors the user can fix (``ValueError``, ``OSError``) end in one line on stderr
and exit status 1, never a traceback.
"""
import argparse
import contextlib
import os
import re
import signal
import sys
import traceback
import warnings
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from . import MISSING_MXNET, __version__, datasets, limits


def parse_shape(text: str) -> Tuple[int, ...]:
    """``'1,1,224,224'`` -> ``(1, 1, 224, 224)``."""
    try:
        shape = tuple(int(d) for d in text.replace('x', ',').split(','))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError('expected positive integers separated by commas, such as '
                                         '1,1,224,224; got %r' % text)
    try:
        return limits.check_shape(shape, 'the input shape')
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_summary(sub) -> None:
    p = sub.add_parser('summary', help="print the lecture's per-block output shapes",
                       description="Print each top-level block's output shape, as the lecture's "
                                   "`for blk in net: X = blk(X); print(blk.name, 'output shape:\\t', X.shape)`.")
    p.add_argument('name', help='model name (see `d2lnets list`)')
    p.add_argument('--input-shape', type=parse_shape, default=None, metavar='N,C,H,W',
                   help='input shape; default 1,1,28,28 for lenet and 1,1,224,224 for the rest')
    p.add_argument('--no-batch', action='store_true',
                   help='print shapes without the batch axis, as the slide prints NiN')


def _run_summary(args) -> int:
    from .models import default_input_shape, get_model
    from .models.summary import format_layer_shapes, layer_shapes
    shape = args.input_shape or default_input_shape(args.name)
    net = get_model(args.name)
    for line in format_layer_shapes(layer_shapes(net, shape), batch=not args.no_batch):
        print(line)
    return 0


def _add_list(sub) -> None:
    sub.add_parser('list', help='list the model names', description='List the registered model names.')


def _run_list(args) -> int:
    from .models import list_models
    print('\n'.join(list_models()))
    return 0


def _add_weights(p, with_onnx: bool = False) -> None:
    """Where the weights come from: --params FILE, --pretrained (or, with
    ``with_onnx``, --onnx FILE); one of them at most."""
    group = p.add_mutually_exclusive_group()
    group.add_argument('--params', type=_path, metavar='FILE',
                       help='a parameter file, such as model.params from `d2lnets train` (the meta.json '
                            'beside it says the classes and input shape)')
    group.add_argument('--pretrained', action='store_true', help='the published weights')
    if with_onnx:
        group.add_argument('--onnx', type=_path, metavar='FILE',
                           help='an ONNX file from `d2lnets export --format onnx`, run by onnxruntime '
                                '(MXNet is not needed)')


def _add_export(sub) -> None:
    p = sub.add_parser('export', help="export a network to MXNet's symbol format or to ONNX",
                       description="Export a network with its weights: MXNet's deploy format "
                                   '(PREFIX-symbol.json, PREFIX-0000.params) or ONNX (PREFIX.onnx, '
                                   'with a dynamic batch axis). Without --params or --pretrained the '
                                   'network is freshly initialized.')
    p.add_argument('name', help='model name (see `d2lnets list`)')
    _add_weights(p)
    p.add_argument('--input-shape', type=parse_shape, default=None, metavar='N,C,H,W',
                   help="input shape to trace with; default what the weights were trained for "
                        "(meta.json beside --params), else the model's default")
    p.add_argument('--format', required=True, metavar='FORMAT', help='symbol or onnx')
    p.add_argument('--out', type=_path, required=True, metavar='PREFIX',
                   help='output path without extension; its directory must exist')
    p.add_argument('--verify', action='store_true',
                   help='run the exported model and the network on the same random batches; '
                        'fail (and write nothing) if they differ by more than 1e-4')
    p.add_argument('--activations', action='store_true',
                   help='ONNX only: output, after the logits, each top-level block\'s output (named by the '
                        'block, e.g. conv0), as the browser page draws them')


def _run_export(args) -> int:
    from .deploy.export import TOLERANCE, check_format, export, output_prefix
    from .models.loading import load_network
    check_format(args.format)
    net, meta = load_network(args.name, args.params, args.pretrained, args.input_shape)
    shape = args.input_shape or tuple(meta['input_shape'])
    result = export(net, output_prefix(args.out, args.name), shape, args.format, metadata=meta,
                    tolerance=TOLERANCE if args.verify else None, activations=args.activations)
    for batch, diff in sorted(result.differences.items()):
        print('verified: largest absolute difference %.3g at batch size %d' % (diff, batch))
    print('\n'.join(result.files))
    return 0


def _add_predict(sub) -> None:
    p = sub.add_parser('predict', help='classify image files',
                       description='Print the most probable classes of each image. The Fashion-MNIST '
                                   'networks (--params, --onnx, or --pretrained for the shipped weights) '
                                   'print the top 3: each image is prepared as Fashion-MNIST was made '
                                   '(grayscale, light background inverted, trimmed and fitted to 28x28, then '
                                   'resized as in training). With --pretrained, the ImageNet networks '
                                   "(alexnet_gluoncv, vgg11 ... vgg19_bn) use GluonCV's ImageNet weights "
                                   '(found in --root, $MXNET_HOME/models or ~/.mxnet/models, else downloaded) '
                                   'and print the top 5 ImageNet classes.')
    p.add_argument('name', help='model name (see `d2lnets list`)')
    _add_weights(p, with_onnx=True)
    p.add_argument('images', nargs='+', metavar='IMAGE', help='image files (PNG, JPEG, ...)')
    p.add_argument('--top', type=_bounded('top'), default=None, metavar='K',
                   help='how many classes to print (default 3, ImageNet 5)')
    p.add_argument('--batch-size', type=_bounded('batch_size'), default=None, metavar='N',
                   help='images read and run at once (default: at most 64, at most 2**21 input elements); '
                        'memory follows it')
    p.add_argument('--root', type=_path, default=None, metavar='DIR',
                   help="directory searched first for GluonCV's weights, and where they are downloaded")


def _run_predict(args) -> int:
    # predict --onnx runs on onnxruntime alone: predict imports MXNet only for the other sources.
    from .deploy.predict import format_predictions, iter_predictions
    # Printed as each batch is done: memory is one batch's, however many images.
    for path, preds in iter_predictions(args.name, args.images, params=args.params, pretrained=args.pretrained,
                                        onnx=args.onnx, k=args.top, root=args.root, batch=args.batch_size):
        print('\n'.join(format_predictions(path, preds)), flush=True)
    return 0


def _path(text: str) -> str:
    """An argparse type for a path option: text the file system can encode (io.check_encodable)."""
    from .io import check_encodable
    try:
        return check_encodable(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _bounded(name: str):
    """An argparse type for the number ``d2lnets.limits.BOUNDS[name]`` bounds."""
    def parse(text: str):
        try:
            return limits.parse(name, text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return parse


def _recipes_text() -> str:
    """The lecture's recipes as the registry holds them, for the help text."""
    from .registry import REGISTRY
    by_recipe = {}
    for name, entry in REGISTRY.items():
        by_recipe.setdefault(entry.recipe, []).append(name)
    return '; '.join('%s: batch %d, lr %g%s, %d epochs' % (', '.join(names), r.batch_size, r.lr,
                                                           ', resize %d' % r.resize if r.resize else '', r.epochs)
                     for r, names in by_recipe.items())


def _add_train(sub) -> None:
    p = sub.add_parser('train', help="train a network on Fashion-MNIST with the lecture's recipe",
                       description="Train NAME with the lecture's recipe (Xavier initialization, SGD, "
                                   "softmax cross-entropy) and write a run directory: model.params, "
                                   "meta.json, history.csv, history.json, curves.png, command.txt, checkpoint/. "
                                   "Defaults per network: %s." % _recipes_text())
    p.add_argument('name', nargs='?', help='model name (see `d2lnets list`); optional with --resume')
    p.add_argument('--epochs', type=_bounded('epochs'), help='number of epochs (default 10); with --resume, '
                                                          'the new total')
    p.add_argument('--lr', type=_bounded('lr'), help='learning rate (default: the recipe\'s)')
    p.add_argument('--batch-size', type=_bounded('batch_size'), help='batch size (default: the recipe\'s)')
    p.add_argument('--resize', type=_bounded('resize'), help='side length fed to the network (default: the recipe\'s)')
    p.add_argument('--dataset', choices=datasets.TRAINABLE, help='default %s' % datasets.DEFAULT)
    p.add_argument('--data-dir', type=_path, help='folder searched first for the data set files')
    p.add_argument('--ctx', help='device(s): cpu, gpu, gpu:1, or a list such as cpu:0,cpu:1 (default: '
                                 'the first GPU if any, else cpu)')
    p.add_argument('--out', type=_path, help='run directory (default runs/NAME-DATE-TIME)')
    p.add_argument('--resume', type=_path, metavar='DIR', help='continue the run in DIR from its last complete epoch')
    p.add_argument('--seed', type=_bounded('seed'), help='random seed (default: a random one, recorded)')
    p.add_argument('--limit', type=_bounded('limit'), help='use only the first N training and N test examples')
    p.add_argument('--quiet', action='store_true', help='no progress bar and no per-epoch lines')
    p.add_argument('--kvstore', choices=['device', 'local', 'dist_sync', 'dist_async'],
                   help='how gradients are summed: device or local across the --ctx devices (default '
                        'device); dist_sync or dist_async across the workers of a parameter-server job '
                        'started by `d2lnets launch` (--batch-size is then each worker\'s)')


def _run_train(args) -> int:
    from .training.loop import TrainingInterrupted
    from .training.runs import resume_run, run_config, start_run
    verbose = not args.quiet
    command = ['d2lnets'] + args.argv
    # None: not given, so the run configuration takes the recipe's value or the default.
    overrides = dict(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, resize=args.resize,
                     dataset=args.dataset, limit=args.limit, seed=args.seed, kvstore=args.kvstore)
    if args.resume is not None:
        # A resumed run keeps its own settings: only --epochs (the new total) among them.
        fixed = sorted(k for k, v in dict(overrides, out=args.out).items() if k != 'epochs' and v is not None)
        if fixed:
            raise ValueError('--resume continues a run with its own settings; drop %s (only --epochs, --ctx, '
                             '--data-dir and --quiet can be given)' % ', '.join('--' + o.replace('_', '-')
                                                                               for o in fixed))
        run = lambda: resume_run(args.resume, args.name, args.epochs, args.data_dir, args.ctx, verbose,  # noqa: E731
                                 None, command)
    elif args.name is None:
        raise ValueError('give a model name (see `d2lnets list`) or --resume DIR')
    else:
        config = run_config(args.name, **overrides)
        run = lambda: start_run(config, args.out, args.data_dir, args.ctx, verbose, None, command)  # noqa: E731
    try:
        with _sigterm_as_interrupt():
            history, out = run()
    except TrainingInterrupted as stop:
        where = ('the checkpoint of epoch %d is kept; continue with: d2lnets train --resume %s'
                 % (stop.epochs_done, stop.checkpoint_dir.parent) if stop.checkpoint_dir
                 else 'no epoch was complete, nothing was kept')
        print('d2lnets train: interrupted; %s' % where, file=sys.stderr)
        return 130
    if verbose and out is not None:
        print('test acc %.3f after %d epochs; curves: %s' % (history.test_acc[-1], len(history), out / 'curves.png'))
    return 0


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (``kill``, a batch system's time limit) ends training as Ctrl-C
    does: the last complete epoch kept, the resume command printed."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _add_evaluate(sub) -> None:
    p = sub.add_parser('evaluate', help='test accuracy, per class, and a confusion matrix',
                       description='Evaluate NAME on the test set of the data set it was trained on: '
                                   'accuracy, accuracy per class, the most confused pairs of classes, a '
                                   'confusion-matrix PNG and, beside it, a PNG of the test images it is most '
                                   'confidently wrong on (all from one pass over the test set). The PNGs '
                                   'go into --out, or beside --params; --pretrained alone writes none.')
    p.add_argument('name', help='model name (see `d2lnets list`)')
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument('--params', type=_path, help='model.params of a run of `d2lnets train` (meta.json beside it)')
    which.add_argument('--pretrained', action='store_true', help='the weights shipped with d2lnets')
    p.add_argument('--data-dir', type=_path, help='folder searched first for the data set files')
    p.add_argument('--batch-size', type=_bounded('batch_size'), default=256)
    p.add_argument('--ctx', help='device(s), as for train')
    p.add_argument('--limit', type=_bounded('limit'), help='use only the first N test examples')
    p.add_argument('--mistakes', type=_bounded('mistakes'), default=16, metavar='N',
                   help='how many of the most confident mistakes to draw (default 16; 0: none)')
    where = p.add_mutually_exclusive_group()
    where.add_argument('--out', type=_path, metavar='DIR',
                       help='the folder NAME-confusion.png and NAME-mistakes.png are written into (made if '
                            'missing; its parent must exist); default: confusion.png and mistakes.png beside '
                            '--params, nothing with --pretrained')
    where.add_argument('--confusion', type=_path, metavar='PNG',
                       help='where to write the confusion matrix instead; the mistakes go beside it, '
                            'confusion -> mistakes in the name')


def _evaluate_pictures(args) -> Optional[Tuple[Path, Path]]:
    """(confusion matrix, mistakes) PNGs evaluate writes, each in the folder the user gave
    (``--out``, ``--confusion``'s, the run's beside ``--params``); None with ``--pretrained`` alone."""
    from .explain.show import check_out
    if args.out:
        out = check_out(args.out)
        return out / ('%s-confusion.png' % args.name), out / ('%s-mistakes.png' % args.name)
    if not (args.confusion or args.params):
        return None
    path = Path(args.confusion) if args.confusion else Path(args.params).parent / 'confusion.png'
    # The mistakes beside the confusion matrix: confusion.png -> mistakes.png, X.png -> X-mistakes.png.
    return path, path.with_name(path.name.replace('confusion', 'mistakes') if 'confusion' in path.name
                                else path.stem + '-mistakes.png')


def _run_evaluate(args) -> int:
    from .drawing import save_png
    from .explain.show import show_mistakes
    from .training.plot import plot_confusion
    from .io import check_replaceable
    from .training.runs import evaluate_saved
    pictures = _evaluate_pictures(args)
    for target in pictures or ():
        check_replaceable(target)     # a link or a FIFO there is refused before the evaluation, not after
    result = evaluate_saved(args.name, params=args.params, pretrained=args.pretrained, data_dir=args.data_dir,
                            batch_size=args.batch_size, ctx=args.ctx, limit=args.limit,
                            mistakes=args.mistakes if pictures else 0)
    meta = result['meta']
    print('%s on the %s test set (%d examples): test acc %.4f'
          % (args.name, meta['dataset'], int(result['matrix'].sum()), result['accuracy']))
    width = max(len(c) for c in result['classes'])
    for label, (cls, acc) in enumerate(zip(result['classes'], result['per_class'])):
        print('%d  %-*s  %.3f' % (label, width, cls, acc))
    if pictures:
        plot_confusion(result['matrix'], result['classes'], pictures[0],
                       title='%s: test acc %.3f' % (args.name, result['accuracy']))
        print('confusion matrix: %s' % pictures[0])
    print('most confused (true -> predicted: count):')
    for true, predicted, count in result['confused']:
        print('  %-*s -> %-*s  %d' % (width, result['classes'][true], width, result['classes'][predicted], count))
    if not pictures:
        print('no pictures written: --out DIR writes the confusion matrix and the most confident mistakes there')
        return 0
    _, fig = show_mistakes(result, args.data_dir, title='%s: most confidently wrong' % args.name)
    if fig is not None:
        save_png(fig, pictures[1])
        print('most confident mistakes: %s' % pictures[1])
    return 0


def _add_explain(sub) -> None:
    p = sub.add_parser('explain', help="see inside a network: every layer's output, filters, where it looks",
                       description='Draw what NAME computes for one input, as PNGs in --out: every layer\'s '
                                   'output with the top classes and the answer (activations), the first '
                                   'convolution\'s kernels and the weight statistics (filters), the vanilla '
                                   'saliency (saliency) and Grad-CAM (gradcam) of the predicted class or of '
                                   '--class. The input is an image file, prepared as `d2lnets predict` '
                                   'prepares it, or a test-set image by index. Prints each path written.')
    p.add_argument('name', help='model name (see `d2lnets list`)')
    _add_weights(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument('--image', type=_path, metavar='FILE', help='an image file (PNG, JPEG, ...)')
    which.add_argument('--index', type=int, metavar='N', help="the N-th image of the weights' test set")
    p.add_argument('--show', default=None, metavar='KINDS',
                   help='which figures, comma-separated: activations,filters,saliency,gradcam (default all)')
    p.add_argument('--class', dest='cls', default=None, metavar='C',
                   help='the class the saliency and Grad-CAM explain, by index or name (default the predicted)')
    p.add_argument('--layer', default=None, metavar='L',
                   help='the layer Grad-CAM reads (default the last convolutional block)')
    p.add_argument('--root', type=_path, default=None, metavar='DIR',
                   help="directory searched first for GluonCV's weights, and where they are downloaded")
    p.add_argument('--out', type=_path, required=True, metavar='DIR',
                   help='the folder the PNGs are written into (made if missing; its parent must exist)')


def _run_explain(args) -> int:
    from .explain.show import check_out, load_subject, parse_kinds, write_figures
    if not (args.params or args.pretrained):
        raise ValueError('say which weights to explain: --pretrained or --params FILE')
    kinds = parse_kinds(args.show)
    check_out(args.out)     # before the weights load
    subject = load_subject(args.name, args.params, args.pretrained, args.image, args.index, args.root)
    for path in write_figures(subject, kinds, args.out, args.cls, args.layer):
        print(path)
    return 0


def _add_complexity(sub) -> None:
    p = sub.add_parser('complexity', help='parameters and multiply-accumulates per layer',
                       description='Per-layer weights, biases, parameters and MACs (FLOPs = 2 x MACs) of a '
                                   'network, the slide "Complexity" (--compare) or a figure (--plot).')
    p.add_argument('name', nargs='?', help='model name (see `d2lnets list`)')
    p.add_argument('--input-shape', type=parse_shape, default=None, metavar='N,C,H,W',
                   help='input shape; default 1,1,28,28 for lenet and 1,1,224,224 for the rest')
    p.add_argument('--format', choices=('table', 'csv', 'json', 'markdown'), default='table')
    p.add_argument('--compare', nargs='+', metavar='NAME',
                   help="the slide's table for these networks, e.g. --compare lenet alexnet "
                        '(LeNet on 1x28x28, the others on 3x224x224)')
    p.add_argument('--classes', type=_bounded('classes'), default=10, help='number of classes (default 10)')
    p.add_argument('--plot', type=_path, metavar='FILE.png',
                   help='save a log-scale bar chart of parameters and FLOPs per layer group of '
                        'lenet, alexnet, vgg11 and nin')


def _run_complexity(args) -> int:
    from .perf import complexity_report as report
    if not (args.name or args.compare or args.plot):
        raise ValueError('name a network (e.g. `d2lnets complexity alexnet`), or use --compare or --plot')
    if args.name and args.compare:
        raise ValueError('give either a network name or --compare NAME..., not both')
    if args.name:
        from .models import default_input_shape, get_model
        from .models.summary import complexity
        shape = args.input_shape or default_input_shape(args.name)
        print(report.format_complexity(complexity(get_model(args.name, classes=args.classes), shape),
                                       args.format))
    if args.compare:
        print(report.format_compare(args.compare, args.format, classes=args.classes))
    if args.plot:
        print('wrote', report.plot_complexity(args.plot, classes=args.classes))
    return 0


def _add_bench(sub) -> None:
    p = sub.add_parser('bench', help='images per second of training or inference',
                       description='Time training steps (forward, backward, SGD update) or inference on '
                                   "synthetic data of the lecture's input shape: median images/sec after "
                                   'warm-up, achieved GFLOP/s and its share of the fp32 matrix-multiply '
                                   'peak measured in the same run, and peak resident memory.')
    p.add_argument('names', nargs='*', metavar='NAME', default=['lenet'],
                   help='model names (default: lenet)')
    p.add_argument('--mode', choices=('train', 'infer'), default='train')
    p.add_argument('--batch-size', type=_bounded('batch_size'), default=None,
                   help="default: the lecture's (256 for lenet, 128 for the others)")
    p.add_argument('--imperative', action='store_true', help='do not hybridize')
    p.add_argument('--no-fused', action='store_true',
                   help="train through MXNet's own layers, not d2lnets' fused CPU operator (d2lnets.perf.fused)")
    p.add_argument('--runs', type=_bounded('runs'), default=5, help='timed runs; the median is reported (default 5)')
    p.add_argument('--seconds', type=_bounded('seconds'), default=1.0, help='length of one timed run (default 1)')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')


def _run_bench(args) -> int:
    import json
    from .perf.bench import bench, format_results, matmul_peak
    from .models import get_builder
    for name in args.names:
        get_builder(name)
    peak = matmul_peak()
    results = [bench(name, args.mode, args.batch_size, hybridize=not args.imperative, runs=args.runs,
                     seconds_per_run=args.seconds, peak=peak, fuse=not args.no_fused) for name in args.names]
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        print(format_results(results))
        print('fp32 matrix-multiply peak measured in this run: %.1f GFLOP/s' % peak)
    return 0


def _add_info(sub) -> None:
    p = sub.add_parser('info', help='versions, CPU, fused kernels, data and weights: what to report when '
                                    'something is slow or missing',
                       description="d2lnets', MXNet's and Python's versions, the CPU's model, instruction set, "
                                   'cores and OpenMP threads, the engine, the fused CPU kernels (variant, where '
                                   'cached, or why not), the GPUs MXNet sees, where Fashion-MNIST was found, and '
                                   "GluonCV's weight cache. Nothing is built or downloaded.")
    p.add_argument('--json', action='store_true', help='print JSON instead of text')


def _run_info(args) -> int:
    import json
    from .sysinfo import format_info, gather
    info = gather()
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def _add_launch(sub) -> None:
    p = sub.add_parser('launch', help="run a command as workers of MXNet's parameter server, on this host or "
                                      "across hosts",
                       description="Start a scheduler, SERVERS servers and WORKERS copies of COMMAND with "
                                   "MXNet's DMLC_* environment, all bound to 127.0.0.1 (or, with --hosts, spread "
                                   "over the hosts, each started through --remote); stream their output "
                                   "prefixed by role; stop them all when one worker fails or the launcher gets "
                                   "SIGINT, SIGTERM or SIGHUP; they die with the launcher.",
                       epilog='examples: d2lnets launch -n 2 -s 1 -- d2lnets train lenet --kvstore dist_sync; '
                              'd2lnets launch --hosts hosts -n 2 -- d2lnets train lenet --kvstore dist_sync')
    p.add_argument('-n', '--num-workers', type=int, required=True, metavar='WORKERS')
    p.add_argument('-s', '--num-servers', type=int, default=1, metavar='SERVERS')
    p.add_argument('--host', default=None, help='address the scheduler listens on (default 127.0.0.1); with '
                                                '--hosts, the host the scheduler and servers run on (default: the '
                                                'first in FILE)')
    p.add_argument('--port', type=int, default=None, help="the scheduler's port (default: a free one; with "
                                                          "--hosts 9091, and the next SERVERS+WORKERS ports)")
    p.add_argument('--timeout', type=float, default=None, help='stop everything after this many seconds')
    p.add_argument('--hosts', type=_path, metavar='FILE',
                   help='run across the hosts in FILE, one "HOST [SLOTS]" a line; '
                                                   'the scheduler and servers on the first, unless --host says')
    p.add_argument('--remote', metavar='TEMPLATE', default=None,
                   help='how to run a shell command line on {host} (default "ssh -o BatchMode=yes -o '
                        'ConnectTimeout=10 {host}"; e.g. "ip netns exec ns-{host} sh -c")')
    p.add_argument('--start-timeout', type=float, default=30.0, metavar='SECONDS',
                   help='with --hosts: fail when a host has not started its process by then (default 30)')
    p.add_argument('worker_command', nargs=argparse.REMAINDER, metavar='-- COMMAND ...')


def _run_launch(args) -> int:
    from .training.launch import Job, launch, launch_hosts, read_hosts
    command = args.worker_command[1:] if args.worker_command[:1] == ['--'] else args.worker_command
    if args.hosts is None and args.remote is not None:
        raise ValueError('--remote needs --hosts FILE: without it every process runs on this host')
    # None for what the user did not give: the launcher that runs the job has its own default.
    job = Job(command, args.num_workers, args.num_servers, host=args.host, port=args.port, timeout=args.timeout,
              remote=args.remote, start_timeout=args.start_timeout)
    if args.hosts is None:
        return launch(job, parse_args=build_parser().parse_args)
    return launch_hosts(job, read_hosts(args.hosts), parse_args=build_parser().parse_args)


# name -> (adds its parser, runs it); in the order `d2lnets --help` lists them.
_COMMANDS = {'list': (_add_list, _run_list), 'summary': (_add_summary, _run_summary),
             'complexity': (_add_complexity, _run_complexity), 'bench': (_add_bench, _run_bench),
             'train': (_add_train, _run_train), 'evaluate': (_add_evaluate, _run_evaluate),
             'predict': (_add_predict, _run_predict), 'launch': (_add_launch, _run_launch),
             'export': (_add_export, _run_export), 'explain': (_add_explain, _run_explain),
             'info': (_add_info, _run_info)}
REPORT = ('this is a bug in d2lnets; please report it with the command line and the output of '
          '`d2lnets --version`, and run again with --debug for the traceback')


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (the usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, '%s: error: %s (see %s --help)\n' % (self.prog, message, self.prog))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog='d2lnets', description=(
        'The networks of the lecture "LeNet, AlexNet, VGG, NiN" in MXNet Gluon.'))
    parser.add_argument('--version', action='version', version='d2lnets ' + __version__)
    parser.add_argument('--debug', action='store_true', help='print the traceback of an unexpected error')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    for name, (add, run) in _COMMANDS.items():
        add(sub)
        sub.choices[name].set_defaults(func=run)
    return parser


# The library's errors name its arguments in backquotes, `out` or `out=VALUE`
# (and two calls); the user reads the option that gives each. The one table of them.
OPTIONS = {'out': '--out', 'prefix': '--out', 'params': '--params', 'pretrained': '--pretrained',
           'onnx': '--onnx', 'resize': '--resize', 'batch_size': '--batch-size', 'epochs': '--epochs',
           'ctx': '--ctx', 'kvstore': '--kvstore', 'lr': '--lr', 'limit': '--limit', 'seed': '--seed',
           'classes': '--classes', 'input_shape': '--input-shape', 'k': '--top', 'runs': '--runs',
           'seconds_per_run': '--seconds', 'mistakes': '--mistakes',
           'image': '--image', 'index': '--index', 'show': '--show'}
_CALLS = ((re.compile(r'`resume_run\(run_dir=(.*?)\)`'), r'--resume \1'),
          (re.compile(r'`train_run\(NAME, out=(.*?)\)`'), r'`d2lnets train NAME --out \1`'),
          (re.compile(r'`pretrained=True`'), '--pretrained'))
_ARGUMENT = re.compile(r'`(%s)(?:=(.*?))?`' % '|'.join(OPTIONS))


def cli_words(message: str) -> str:
    """A library message with each argument it names (```out```, ```out=VALUE```)
    as the option that gives it (``--out``, ``--out VALUE``)."""
    for pattern, words in _CALLS:
        message = pattern.sub(words, message)
    return _ARGUMENT.sub(lambda m: OPTIONS[m.group(1)] + (' ' + m.group(2) if m.group(2) is not None else ''),
                         message)


def _error_line(args, err: BaseException) -> str:
    """The one line an error ends in: the message for what the user can fix
    (``ValueError``, ``OSError``), the type and where to report it otherwise."""
    if isinstance(err, ImportError) and err.name == 'mxnet':
        return 'd2lnets %s: error: %s' % (args.command, MISSING_MXNET)
    if isinstance(err, (ValueError, OSError)):
        return 'd2lnets %s: error: %s' % (args.command, cli_words(str(err)))
    return 'd2lnets %s: internal error: %s: %s; %s' % (args.command, type(err).__name__, err, REPORT)


def _run_as_worker(args) -> int:
    # A parameter-server worker that fails must leave at once: a normal exit
    # waits in MXNet's kvstore for the other workers, forever.
    try:
        return args.func(args)
    except BaseException as err:  # anything: the process must not hang
        if isinstance(err, KeyboardInterrupt):
            print('d2lnets %s: interrupted' % args.command, file=sys.stderr)
        else:
            print(_error_line(args, err), file=sys.stderr)
            if args.debug:
                traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130 if isinstance(err, KeyboardInterrupt) else 1)


def _warning_line(command: str) -> Callable[..., None]:
    """How the CLI shows a library's warning: one line, ``d2lnets CMD: warning: ...``
    (--debug keeps Python's form, with the file and line)."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print('d2lnets %s: warning: %s' % (command, cli_words(' '.join(str(message).split()))),
              file=file or sys.stderr)
    return show


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded by `train` in command.txt
    try:
        # predict --onnx runs on onnxruntime alone, launch only starts processes: no MXNet
        if getattr(args, 'onnx', None) is None and args.command != 'launch':
            from .runtime import start_engine_quietly
            start_engine_quietly()   # else MXNet logs its engine type, at the latest when the process exits
        with warnings.catch_warnings():
            if not args.debug:
                warnings.showwarning = _warning_line(args.command)
            if os.environ.get('DMLC_ROLE') == 'worker':
                return _run_as_worker(args)
            return args.func(args)
    except KeyboardInterrupt:
        print('d2lnets %s: interrupted' % args.command, file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of the output went away (`d2lnets info | head`): nothing to report,
        # and nothing more to flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:
        print(_error_line(args, err), file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return 1
