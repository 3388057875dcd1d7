"""The ``d2lnets`` command: parses arguments, calls the library, prints.

Every sub-command is a pair ``_add_<name>(subparsers)`` / ``_run_<name>(args)``.
Errors the user can fix (``ValueError``, ``OSError``) end in one line on stderr
and exit status 1, never a traceback.
"""
import argparse
import sys
from typing import List, Optional, Tuple

from . import __version__


def parse_shape(text: str) -> Tuple[int, ...]:
    """``'1,1,224,224'`` -> ``(1, 1, 224, 224)``."""
    try:
        shape = tuple(int(d) for d in text.replace('x', ',').split(','))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError('expected positive integers separated by commas, such as '
                                         '1,1,224,224; got %r' % text)
    return shape


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
    from .summary import format_layer_shapes, layer_shapes
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


def _add_launch(sub) -> None:
    p = sub.add_parser('launch', help="run a command as workers of MXNet's parameter server on this host",
                       description="Start a scheduler, SERVERS servers and WORKERS copies of COMMAND with "
                                   "MXNet's DMLC_* environment, all bound to 127.0.0.1; stream their output "
                                   "prefixed by role; stop them all when one worker fails.",
                       epilog='example: d2lnets launch -n 2 -s 1 -- d2lnets train lenet --kvstore dist_sync')
    p.add_argument('-n', '--num-workers', type=int, required=True, metavar='WORKERS')
    p.add_argument('-s', '--num-servers', type=int, default=1, metavar='SERVERS')
    p.add_argument('--host', default='127.0.0.1', help='address the scheduler listens on (default 127.0.0.1)')
    p.add_argument('--port', type=int, default=None, help="the scheduler's port (default: a free one)")
    p.add_argument('--timeout', type=float, default=None, help='stop everything after this many seconds')
    p.add_argument('worker_command', nargs=argparse.REMAINDER, metavar='-- COMMAND ...')


def _run_launch(args) -> int:
    from .launch import launch
    command = args.worker_command[1:] if args.worker_command[:1] == ['--'] else args.worker_command
    return launch(command, args.num_workers, args.num_servers, host=args.host, port=args.port,
                  timeout=args.timeout)


def _add_predict(sub) -> None:
    p = sub.add_parser('predict', help='classify images with pretrained weights',
                       description='Print the top-5 classes of each image. With --pretrained, the '
                                   "ImageNet networks (alexnet_gluoncv, vgg11 ... vgg19_bn) use GluonCV's "
                                   'ImageNet weights (found in --root, $MXNET_HOME/models or '
                                   '~/.mxnet/models, else downloaded) and print ImageNet classes.')
    p.add_argument('name', help='model name (see `d2lnets list`)')
    p.add_argument('images', nargs='+', metavar='IMAGE', help='image files (JPEG, PNG, ...)')
    p.add_argument('--pretrained', action='store_true', help='use the published weights')
    p.add_argument('--root', default=None, metavar='DIR',
                   help="directory searched first for GluonCV's weights, and where they are downloaded")


def _run_predict(args) -> int:
    from . import zoo
    if not args.pretrained:
        raise ValueError('say which weights to use: --pretrained')
    if args.name in zoo.zoo_names():
        return _predict_imagenet(args)
    raise ValueError(zoo.no_weights_message(args.name))


def _predict_imagenet(args) -> int:
    from .imagenet import format_predictions, predict, read_image
    from .models import get_model
    images = [read_image(path) for path in args.images]   # bad paths fail before the weights load
    net = get_model(args.name, pretrained=True, root=args.root)
    for path, image in zip(args.images, images):
        print('\n'.join(format_predictions(path, predict(net, [image], k=5)[0])))
    return 0


_commands = ['list', 'summary', 'predict', 'launch']


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='d2lnets', description=(
        'The networks of the lecture "LeNet, AlexNet, VGG, NiN" in MXNet Gluon.'))
    parser.add_argument('--version', action='version', version='d2lnets ' + __version__)
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    for name in _commands:
        globals()['_add_' + name](sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return globals()['_run_' + args.command](args)
    except (ValueError, OSError) as err:
        print('d2lnets %s: error: %s' % (args.command, err), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('d2lnets %s: interrupted' % args.command, file=sys.stderr)
        return 130
