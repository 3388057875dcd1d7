"""A training run as a directory, and the lecture's recipe for each network.

``train_run`` writes one directory::

    model.params    final parameters (Gluon's save_parameters)
    meta.json       what reading model.params needs: see :func:`make_meta`
    history.csv     one row per epoch; history.json the same as columns
    curves.png      loss, train and test accuracy per epoch
    command.txt     the command lines that made the run
    checkpoint/     the last complete epoch (see d2lnets.checkpoint)

Anything that reads ``model.params`` reads ``meta.json`` beside it
(:func:`read_meta`, :func:`load_trained`).
"""
import datetime
import json
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np

from . import __version__, checkpoint, data
from .context import as_context_list
from .distributed import agree_seed, create_kvstore, is_distributed, rank
from .models import get_model
from .summary import infer_block_shapes
from .train import History, train

__all__ = ['RECIPES', 'EPOCHS', 'recipe_for', 'make_meta', 'read_meta', 'load_trained', 'train_run',
           'resume_run', 'evaluate_saved']

# The lecture's recipe per network (notebooks of d2l-ai/berkeley-stat-157,
# slides/2_28): batch size, learning rate, side length fed to the network.
RECIPES: Dict[str, Dict[str, Any]] = {
    'lenet': {'batch_size': 256, 'lr': 0.9, 'resize': None},
    'alexnet': {'batch_size': 128, 'lr': 0.01, 'resize': 224},
    'vgg11_small': {'batch_size': 128, 'lr': 0.05, 'resize': 224},
    'nin': {'batch_size': 128, 'lr': 0.1, 'resize': 224},
}
# The book's 10 epochs (the lecture ran 5).
EPOCHS = 10
META = 'meta.json'


def recipe_for(name: str) -> Dict[str, Any]:
    """Batch size, learning rate, resize and epochs of the lecture's recipe for
    ``name``; the other VGGs take the small VGG's."""
    get_model(name)  # unknown names fail here, listing the valid ones
    recipe = RECIPES.get(name) or RECIPES['vgg11_small' if name.startswith('vgg') else 'alexnet']
    return dict(recipe, epochs=EPOCHS)


def make_meta(name: str, dataset: str, resize: Optional[int], recipe: Dict[str, Any], seed: int,
              model_kwargs: Optional[Dict[str, Any]] = None, limit: Optional[int] = None) -> Dict[str, Any]:
    """What a run records about its model (the content of ``meta.json``).

    ``input_shape`` is (1, C, H, W); pixels become ``(pixel * scale - mean) / std``
    per ``normalization``; ``classes`` are the class names by label.
    """
    side = resize or data.IMAGE_SIZE
    return {
        'format': 'd2lnets-run/1',
        'model': name,
        'model_kwargs': dict(model_kwargs or {}),
        'classes': data.classes(dataset),
        'input_shape': [1, 1, side, side],
        'dataset': dataset,
        'resize': resize,
        'normalization': dict(data.NORMALIZATION),
        'recipe': {'epochs': recipe['epochs'], 'batch_size': recipe['batch_size'], 'lr': recipe['lr'],
                   'optimizer': 'sgd', 'loss': 'softmax_cross_entropy', 'init': 'xavier', 'limit': limit,
                   # batch_size is each worker's when num_workers > 1
                   'kvstore': recipe.get('kvstore', 'device'), 'num_workers': recipe.get('num_workers', 1)},
        'seed': seed,
        'epochs_done': 0,
        'test_acc': None,
        'd2lnets_version': __version__,
        'mxnet_version': mx.__version__,
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
    }


def read_meta(params: Path) -> Dict[str, Any]:
    """The ``meta.json`` beside a ``model.params``."""
    path = Path(params).parent / META
    if not Path(params).is_file():
        raise ValueError('%s does not exist; give the model.params of a run of `d2lnets train`' % params)
    if not path.is_file():
        raise ValueError('there is no %s beside %s: d2lnets reads the input shape and classes from it; '
                         'give the model.params of a run of `d2lnets train`' % (META, params))
    try:
        meta = json.loads(path.read_text())
        meta['model'], meta['input_shape'], meta['classes']
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError('%s is damaged (%s)' % (path, err)) from None
    return meta


def load_trained(params: Path, name: Optional[str] = None, ctx=None) -> Tuple[mx.gluon.HybridBlock, Dict[str, Any]]:
    """The network of a finished run, with its parameters, and its meta.

    ``name``, when given, must be the run's model name."""
    meta = read_meta(params)
    if name is not None and name != meta['model']:
        raise ValueError('%s holds a %r, not a %r' % (params, meta['model'], name))
    net = get_model(meta['model'], **meta.get('model_kwargs', {}))
    try:
        net.load_parameters(str(params), ctx=as_context_list(ctx))
    except (AssertionError, mx.base.MXNetError) as err:
        raise ValueError('%s does not fit a %r: %s' % (params, meta['model'], str(err).strip().splitlines()[0])) from None
    return net, meta


def _default_out(name: str) -> Path:
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    return Path('runs') / ('%s-%s' % (name, stamp))


def _check_positive(what: str, value, kind=int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, kind) or not value > 0):
        raise ValueError('%s must be a positive %s, got %r' % (what, 'integer' if kind is int else 'number', value))


class _RunWriter:
    """Writes a run's files as epochs complete."""

    def __init__(self, out: Path, meta: Dict[str, Any]):
        self.out, self.meta = out, meta

    def epoch_done(self, history: History) -> None:
        from .plot import plot_history
        checkpoint.write_text(self.out / 'history.csv', history.to_csv())
        checkpoint.write_json(self.out / 'history.json', history.to_dict())
        self.meta.update(epochs_done=len(history), test_acc=history.test_acc[-1])
        checkpoint.write_json(self.out / META, self.meta)
        plot_history(history, self.out / 'curves.png', title='%s, %s' % (self.meta['model'], self.meta['dataset']))

    def finish(self, net: mx.gluon.Block) -> None:
        checkpoint.atomic_write(self.out / 'model.params', net.save_parameters)


def _append_command(out: Path, command: Optional[Sequence[str]]) -> None:
    line = shlex.join(command if command is not None else sys.argv)
    old = (out / 'command.txt').read_text() if (out / 'command.txt').is_file() else ''
    checkpoint.write_text(out / 'command.txt', old + line + '\n')


def _fit(net, meta, out, train_iter, test_iter, ctx, verbose, progress, resume, kvstore='device') -> History:
    writer = _RunWriter(out, meta) if out is not None else None     # None: a worker other than 0
    recipe = meta['recipe']
    history = train(net, train_iter, test_iter, recipe['epochs'], recipe['lr'], ctx=ctx, verbose=verbose,
                    seed=meta['seed'], checkpoint_dir=out / 'checkpoint' if writer else None, resume=resume,
                    progress=progress, run_info=meta, on_epoch=writer.epoch_done if writer else None,
                    kvstore=kvstore)
    if len(history) and writer:
        writer.finish(net)
    return history


def train_run(name: str, out: Optional[Path] = None, epochs: Optional[int] = None, lr: Optional[float] = None,
              batch_size: Optional[int] = None, resize: Optional[int] = None, dataset: str = 'fashion-mnist',
              data_dir: Optional[str] = None, ctx=None, seed: Optional[int] = None, limit: Optional[int] = None,
              verbose: bool = True, progress: Optional[bool] = None,
              command: Optional[Sequence[str]] = None, kvstore: str = 'device') -> Tuple[History, Optional[Path]]:
    """Train ``name`` with the lecture's recipe (any argument given overrides
    it) and write the run directory ``out`` (default ``runs/<name>-<time>``).
    Returns the history and the directory.

    With ``kvstore='dist_sync'`` (or ``'dist_async'``) this process is one
    worker of a parameter-server job (see ``d2lnets launch``): the batch size
    is each worker's, and only worker 0 writes the run directory (the others
    return ``None`` for it)."""
    recipe = recipe_for(name)
    _check_positive('the number of epochs', epochs)
    _check_positive('the batch size', batch_size)
    _check_positive('the resize', resize)
    _check_positive('the learning rate', lr, (int, float))
    recipe.update({k: v for k, v in dict(epochs=epochs, lr=lr, batch_size=batch_size, resize=resize).items()
                   if v is not None})
    data.get_dataset(dataset)
    ctxs = as_context_list(ctx)
    seed = int(np.random.randint(0, 2 ** 31 - 1)) if seed is None else seed
    kv = create_kvstore(kvstore)
    # All workers must read the data in the order worker 0 does.
    seed = agree_seed(kv, seed)
    if is_distributed(kv):
        recipe.update(kvstore=kv.type, num_workers=kv.num_workers)
        if kv.rank != 0 and verbose:
            print('worker rank %d of %d (%s): worker 0 writes the run directory'
                  % (kv.rank, kv.num_workers, kv.type), flush=True)
    # On the parameter server, worker 0 writes the run directory and the others nothing.
    out = None if rank(kv) != 0 else Path(out) if out is not None else _default_out(name)
    if out is not None and ((out / META).exists() or checkpoint.is_checkpoint(out / 'checkpoint')):
        raise ValueError('%s already holds a run; continue it with --resume %s, or choose another --out'
                         % (out, out))
    meta = make_meta(name, dataset, recipe['resize'], recipe, seed, limit=limit)
    net = get_model(name)
    try:
        infer_block_shapes(net, meta['input_shape'])
    except ValueError as err:
        side = meta['input_shape'][-1]
        raise ValueError('%s cannot take %dx%d input: %s; use a larger --resize (the recipe: %s)'
                         % (name, side, side, err, recipe_for(name)['resize'])) from None
    train_iter, test_iter = data.load_data(recipe['batch_size'], recipe['resize'], data_dir, dataset,
                                           limit=limit, seed=seed)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        _append_command(out, command)
        checkpoint.write_json(out / META, meta)
    return _fit(net, meta, out, train_iter, test_iter, ctxs, verbose, progress, resume=False, kvstore=kv), out


def resume_run(run_dir: Path, name: Optional[str] = None, epochs: Optional[int] = None,
               data_dir: Optional[str] = None, ctx=None, verbose: bool = True, progress: Optional[bool] = None,
               command: Optional[Sequence[str]] = None) -> Tuple[History, Path]:
    """Continue the run in ``run_dir`` from its last complete epoch, up to its
    recipe's epochs (or ``epochs``, to extend it). ``name``, when given, must
    be the run's model name."""
    run_dir = Path(run_dir)
    if run_dir.name == 'checkpoint' and checkpoint.is_checkpoint(run_dir):
        run_dir = run_dir.parent
    if not checkpoint.is_checkpoint(run_dir / 'checkpoint'):
        raise ValueError('%s is not a checkpoint folder: it has no checkpoint/%s; give the --out folder of '
                         'an earlier `d2lnets train`' % (run_dir, checkpoint.LATEST))
    state = checkpoint.load_checkpoint(run_dir / 'checkpoint')
    meta = state['run']
    if name is not None and name != meta['model']:
        raise ValueError('%s is a run of %r, not of %r' % (run_dir, meta['model'], name))
    _check_positive('the number of epochs', epochs)
    if epochs is not None and epochs < state['epoch']:
        raise ValueError('%s has done %d epochs already; give --epochs %d or more to extend it'
                         % (run_dir, state['epoch'], state['epoch']))
    if epochs is not None:
        meta['recipe']['epochs'] = epochs
    ctxs = as_context_list(ctx)
    net = get_model(meta['model'], **meta.get('model_kwargs', {}))
    train_iter, test_iter = data.load_data(meta['recipe']['batch_size'], meta['resize'], data_dir, meta['dataset'],
                                           limit=meta['recipe']['limit'], seed=meta['seed'])
    _append_command(run_dir, command)
    return _fit(net, meta, run_dir, train_iter, test_iter, ctxs, verbose, progress, resume=True), run_dir


def evaluate_saved(name: str, params: Optional[Path] = None, pretrained: bool = False,
                   data_dir: Optional[str] = None, batch_size: int = 256, ctx=None,
                   limit: Optional[int] = None) -> Dict[str, Any]:
    """Test accuracy, per-class accuracy and confusion matrix of a run's
    ``model.params`` or of the weights shipped for ``name``.

    Returns a dict with ``accuracy``, ``per_class`` (list), ``matrix``
    (numpy, rows true, columns predicted), ``classes`` and ``meta``.
    """
    from .evaluate import accuracy_from_confusion, confusion_matrix, per_class_accuracy
    if (params is None) == (not pretrained):
        raise ValueError('give either a parameter file (--params) or --pretrained')
    ctxs = as_context_list(ctx)
    if pretrained:
        from .weights import manifest
        meta = manifest(name)
        net = get_model(name, pretrained=True)
        net.collect_params().reset_ctx(ctxs)
    else:
        net, meta = load_trained(Path(params), name, ctxs)
    _check_positive('the batch size', batch_size)
    data.get_dataset(meta['dataset'])
    _, test_iter = data.load_data(batch_size, meta['resize'], data_dir, meta['dataset'], limit=limit)
    net.hybridize()
    matrix = confusion_matrix(net, test_iter, len(meta['classes']), ctxs)
    return {'accuracy': accuracy_from_confusion(matrix), 'per_class': per_class_accuracy(matrix).tolist(),
            'matrix': matrix, 'classes': meta['classes'], 'meta': meta}
