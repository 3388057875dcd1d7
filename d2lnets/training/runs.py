"""A training run as a folder: created, locked, written, resumed, or removed whole.

``train_run`` writes one folder::

    model.params    final parameters (Gluon's save_parameters)
    meta.json       what reading model.params needs (d2lnets.weights.meta)
    history.csv     one row per epoch; history.json the same as columns
    curves.png      loss, train and test accuracy per epoch
    command.txt     the command lines that made the run
    checkpoint/     the last complete epoch (see d2lnets.training.checkpoint)
    .lock           held while a process writes the folder

What a run folder promises (docs/guarantees.md): everything is checked before
the folder is created; a folder holding anything but a run of d2lnets is
never written into; two processes never write one folder; a run that ends
before its first complete epoch (an error, Ctrl-C, SIGTERM) removes what it
created, so :func:`train_run` (``out``) can start it again; one that ends later keeps its
last complete epoch for :func:`resume_run`.
"""
import datetime
import errno
import fcntl
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import mxnet as mx

from .. import __version__, data, datasets, limits
from ..context import as_context_list
from ..io import (atomic_write, check_encodable, check_own, open_regular, read_bounded, remove_own,
                  remove_stale_temporaries, write_json, write_text)
from ..models import entry, get_model
from ..models.loading import load_network
from ..models.summary import infer_block_shapes
from ..weights.meta import META_FILE, FORMAT, write_meta
from . import checkpoint
from .distributed import join
from .config import RunConfig
from .loop import Checkpoints, History, Hook, OnEpoch, Parts, TrainingInterrupted, default_hooks, fit

__all__ = ['make_meta', 'run_config', 'start_run', 'train_run', 'resume_run', 'evaluate_saved', 'RunFolder',
           'LOCK']

LOCK = '.lock'
# command.txt: a line per train/resume, each within the system's argument limit (2 MiB on Linux).
MAX_COMMAND_BYTES = 4 << 20
MOST_CONFUSED = 10      # class pairs evaluate_saved reports
MAX_SAME_NAME = 1000    # default folders of one name (model, second): runs/lenet-20261205-213000-1000 at most
# What a run writes; a folder holding only these and no checkpoint is a run
# that never completed an epoch (killed in epoch 1), which a new run may replace.
RUN_FILES = {META_FILE, 'command.txt', 'history.csv', 'history.json', 'curves.png', LOCK}


def make_meta(config: RunConfig, data_folder: Optional[Path] = None) -> Dict[str, Any]:
    """What a run records about its model (the content of ``meta.json``): the
    fields of ``config`` (:meth:`RunConfig.to_meta`) and those that follow from them.

    ``input_shape`` is (1, C, H, W); pixels become ``(pixel * scale - mean) / std``
    per ``normalization``; ``classes`` are the class names by label.
    """
    row = datasets.get(config.dataset)
    side = config.resize or row.image_size
    own = config.to_meta()
    return {
        'format': FORMAT,
        'model': own['model'],
        'model_kwargs': own['model_kwargs'],
        'classes': row.classes,
        'input_shape': [1, row.input_shape[1], side, side],
        'dataset': own['dataset'],
        'data_folder': str(data_folder) if data_folder else None,
        'resize': own['resize'],
        'normalization': row.normalization,
        'recipe': own['recipe'],    # batch_size is each worker's when num_workers > 1
        'seed': own['seed'],
        'epochs_done': 0,
        'test_acc': None,
        'd2lnets_version': __version__,
        'mxnet_version': mx.__version__,
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
    }


def _default_out(name: str) -> Path:
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    return Path('runs') / ('%s-%s' % (name, stamp))


def run_config(name: str, **overrides: Any) -> RunConfig:
    """The run configuration of ``name``: the registry's recipe with ``overrides``
    (``None``: not given) and the defaults, checked before any folder is made."""
    return RunConfig.from_recipe(entry(name).recipe, name, **overrides)


def _check_input(config: RunConfig) -> None:
    native = datasets.get(config.dataset).image_size
    side = config.resize or native
    try:
        infer_block_shapes(get_model(config.model, **config.kwargs), (1, 1, side, side))
    except ValueError as err:
        recipe = entry(config.model).recipe.resize
        # Above the recipe's side a network fails by size (too many elements), below it by a kernel too large.
        raise ValueError('%s cannot take %dx%d input: %s; use a %s `resize` (the recipe: %s)'
                         % (config.model, side, side, err,
                            'smaller' if side > (recipe or native) else 'larger', recipe)) from None
    try:    # and a whole batch of it, each layer's output within what MXNet can hold (int32 sizes)
        infer_block_shapes(get_model(config.model, **config.kwargs), (config.batch_size, 1, side, side))
    except ValueError as err:
        raise ValueError('%s cannot train on batches of %d at %dx%d (`batch_size`, `resize`): %s'
                         % (config.model, config.batch_size, side, side, err)) from None


def _make_parents(folder: Path) -> List[Path]:
    """Create ``folder`` and the folders above it that are missing; return those this
    process created (not another one at the same moment), innermost first."""
    missing = []
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    created = []
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
            created.append(folder)
        except FileExistsError:
            pass
    return created[::-1]


def _make_folder(path: Path, unique: bool) -> Tuple[Path, bool]:
    """(the run's folder, whether this process created it). ``unique``: an exclusive ``mkdir``
    of ``path``, else ``path-2``, ``path-3``, ...: two processes never get one folder."""
    if not unique:
        created = not os.path.lexists(path)
        path.mkdir(exist_ok=True)
        return path, created
    for n in range(1, MAX_SAME_NAME + 1):
        candidate = path if n == 1 else path.with_name('%s-%d' % (path.name, n))
        try:
            os.mkdir(candidate)
            return candidate, True
        except FileExistsError:
            continue
    raise ValueError('%s and %d more folders of that name exist already; give the run a folder with `out`'
                     % (path, MAX_SAME_NAME - 1))


def _remove_empty(folders: Sequence[Path]) -> None:
    # Innermost first; a folder someone put anything into meanwhile is kept (OSError), and those above
    # it; a link put in a folder's place is refused in one line (ValueError), and what it points to stays.
    for folder in folders:
        try:
            remove_own(folder, 'empty folder')
        except OSError:
            return


class RunFolder:
    """A run folder held by this process: locked, and removed again if the
    run completes no epoch. Use as a context manager around the run."""

    def __init__(self, path: Path, created: bool, lock_fd: int, parents: Sequence[Path] = ()):
        # parents: the folders above path this process created for it, innermost first
        self.path, self.created, self._lock_fd, self.parents = path, created, lock_fd, list(parents)

    @staticmethod
    def _lock(path: Path) -> int:
        # Not through a symbolic link, a FIFO or a hard link: a run folder someone sent may hold one,
        # and truncating it would destroy a file outside the run.
        if (path / 'checkpoint').is_symlink():
            raise ValueError('%s is a symbolic link; d2lnets writes a run\'s checkpoints only into a folder of '
                             'its own: remove it, or choose another folder' % (path / 'checkpoint'))
        fd = open_regular(path / LOCK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.read(fd, 32).decode(errors='replace').strip() or 'unknown'
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise ValueError('%s is in use by another d2lnets process (pid %s); wait for it to end, or '
                                 'choose another folder' % (path, holder)) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, b'%d\n' % os.getpid())
        return fd

    @classmethod
    def for_new_run(cls, path: Path, unique: bool = False) -> 'RunFolder':
        """Create (or take over an empty, or a never-completed run's) folder ``path``.
        ``unique``: always a new folder, ``path`` or the first of ``path-2``, ``path-3``, ...
        that no one has made (a default name, which two runs started in one second share)."""
        path = Path(check_encodable(path, 'the run folder'))
        if path.exists() and not path.is_dir():
            raise ValueError('%s is a file; give a folder (new or empty) for the run' % path)
        parents = _make_parents(path.parent)
        try:
            path, created = _make_folder(path, unique)
        except BaseException:
            _remove_empty(parents)
            raise
        try:
            held = cls(path, created, cls._lock(path), parents)
        except BaseException:
            _remove_empty(([path] if created else []) + parents)
            raise
        try:
            held._check_free()
        except BaseException:
            if not created:
                remove_own(path / LOCK)     # the lock this process made; nothing else of a folder it did not make
            held._release(remove=created)
            raise
        return held

    @classmethod
    def for_resume(cls, path: Path) -> 'RunFolder':
        """Lock the run folder ``path`` (or its ``checkpoint/``) to continue it."""
        path = Path(check_encodable(path, 'the run folder'))
        if path.name == 'checkpoint' and checkpoint.is_checkpoint(path):
            path = path.parent
        if not checkpoint.is_checkpoint(path / 'checkpoint'):
            if (path / META_FILE).is_file():
                raise ValueError('%s holds a run that completed no epoch, so there is nothing to resume; start '
                                 'it again with `train_run(NAME, out=%s)`' % (path, path))
            raise ValueError('%s is not a checkpoint folder: it has no checkpoint/%s; give the `out` folder of '
                             'an earlier run' % (path, checkpoint.LATEST))
        return cls(path, False, cls._lock(path))

    def _check_free(self) -> None:
        remove_stale_temporaries(self.path)
        if checkpoint.is_checkpoint(self.path / 'checkpoint'):
            raise ValueError('%s already holds a run; continue it with `resume_run(run_dir=%s)`, or choose '
                             'another `out`' % (self.path, self.path))
        entries = set(os.listdir(self.path))
        if entries - RUN_FILES:
            shown = sorted(entries - RUN_FILES)
            raise ValueError('%s is not empty (it holds %s) and is not a run d2lnets can continue; choose a new '
                             'or empty folder for `out`' % (self.path, ', '.join(shown[:3]) +
                                                           (' ...' if len(shown) > 3 else '')))
        # What is left is a run killed before its first epoch: replace it, if every file is one d2lnets
        # made (a link, a FIFO, a hard link or another user's file is refused before anything is deleted).
        for name in sorted(entries - {LOCK}):
            check_own(self.path / name)
        for name in entries - {LOCK}:
            remove_own(self.path / name)

    def _release(self, remove: bool) -> None:
        try:
            if remove and self.created:
                # The folder this process made, with all in it; a link put in its place (the run's files
                # then went where it points) is refused in one line, and nothing it points to is deleted.
                try:
                    remove_own(self.path, 'tree')
                except OSError:     # gone already, or a file in it no longer ours to delete: it stays
                    pass
                _remove_empty(self.parents)
            elif remove:
                # Only what this run wrote (the folder held nothing else once _check_free passed); a link,
                # a FIFO or a hard link put there meanwhile is left alone, as in a folder of the user's.
                for name in os.listdir(self.path):
                    try:
                        remove_own(self.path / name, 'tree')
                    except ValueError:
                        pass
        finally:
            os.close(self._lock_fd)

    def __enter__(self) -> 'RunFolder':
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Nothing complete to keep: leave no dead end behind (the folder was free before).
        ckpt = self.path / 'checkpoint'
        incomplete = exc_type is not None and not checkpoint.is_checkpoint(ckpt)
        if not incomplete:
            try:
                remove_own(self.path / LOCK)
            except (OSError, ValueError):
                pass
        self._release(remove=incomplete)
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt) \
                and not issubclass(exc_type, TrainingInterrupted):
            # Ctrl-C (or SIGTERM) before the loop began: say what is kept, as the loop does.
            done = 0 if incomplete else checkpoint.load_checkpoint(ckpt)['epoch']
            raise TrainingInterrupted(done, ckpt if done else None) from None


class _RunWriter:
    """Writes a run's files as epochs complete."""

    def __init__(self, out: Path, meta: Dict[str, Any]):
        self.out, self.meta = out, meta

    def epoch_done(self, history: History) -> None:
        from .plot import plot_history
        write_text(self.out / 'history.csv', history.to_csv())
        write_json(self.out / 'history.json', history.to_dict())
        self.meta.update(epochs_done=len(history), test_acc=history.test_acc[-1])
        write_meta(self.out, self.meta)
        plot_history(history, self.out / 'curves.png', title='%s, %s' % (self.meta['model'], self.meta['dataset']))

    def finish(self, net: mx.gluon.Block) -> None:
        atomic_write(self.out / 'model.params', net.save_parameters)


def _append_command(out: Path, command: Optional[Sequence[str]]) -> None:
    line = shlex.join(command if command is not None else sys.argv)
    path = out / 'command.txt'
    old = read_bounded(path, MAX_COMMAND_BYTES, 'the run\'s command record', 'remove it, or start a new run with '
                       'another `out`').decode('utf-8', 'replace') if os.path.lexists(path) else ''
    write_text(out / 'command.txt', old + line + '\n')


def _fit(net: mx.gluon.Block, config: RunConfig, iters: Tuple[Any, Any], out: Optional[Path],
         meta: Dict[str, Any], ctxs: List[mx.Context], hooks: Tuple[Hook, ...], kvstore: Any) -> History:
    """Train ``net`` as ``config`` says, writing the run folder ``out`` (``None``: a
    worker other than 0) and continuing its checkpoint if there is one; ``hooks``
    print. ``kvstore``: the joined job's, or ``'device'`` for a resume in one process."""
    writer = _RunWriter(out, meta) if out is not None else None
    if writer:
        # A new run's folder holds no checkpoint (RunFolder checked), a resumed one's does.
        ckpt = out / 'checkpoint'
        hooks = (Checkpoints(ckpt, checkpoint.is_checkpoint(ckpt), meta),) + hooks + (OnEpoch(writer.epoch_done),)
    history = fit(config, Parts(net, *iters, ctxs, kvstore=kvstore), hooks)
    if len(history) and writer:
        writer.finish(net)
    return history


def start_run(config: RunConfig, out: Optional[Path] = None, data_dir: Optional[str] = None, ctx=None,
              verbose: bool = True, progress: Optional[bool] = None,
              command: Optional[Sequence[str]] = None) -> Tuple[History, Optional[Path]]:
    """Train as ``config`` says and write the run folder ``out`` (default
    ``runs/<model>-<time>``); return the history and the folder.

    Every setting, the data and the network's input are checked before the
    folder is created. With ``config.kvstore`` ``'dist_sync'`` (or
    ``'dist_async'``) this process is one worker of a parameter-server job
    (see ``d2lnets launch``): the batch size is each worker's, and only worker
    0 writes the run folder (the others return ``None`` for it)."""
    data.get_dataset(config.dataset)
    ctxs = as_context_list(ctx)
    _check_input(config)
    folder = data.find_dataset(config.dataset, data_dir)
    job = join(config.kvstore, config.seed)
    # The seed every worker agreed on, and the job as it is: what meta.json records.
    config = config.replace(seed=job.seed, **(dict(kvstore=job.kvstore.type, num_workers=job.num_workers)
                                             if job.num_workers > 1 else {}))
    meta = make_meta(config, data_folder=folder)
    iters = data.load_data(config.batch_size, config.resize, str(folder), config.dataset, limit=config.limit,
                           seed=config.seed)
    hooks = default_hooks(verbose, progress)
    net = get_model(config.model, **config.kwargs)
    if job.rank != 0:
        # On the parameter server, worker 0 writes the run folder and the others nothing.
        if verbose:
            print('worker rank %d of %d (%s): worker 0 writes the run folder'
                  % (job.rank, job.num_workers, job.kvstore.type), flush=True)
        return _fit(net, config, iters, None, meta, ctxs, hooks, job.kvstore), None
    with RunFolder.for_new_run(Path(out) if out is not None else _default_out(config.model),
                               unique=out is None) as run:
        _append_command(run.path, command)
        write_meta(run.path, meta)
        history = _fit(net, config, iters, run.path, meta, ctxs, hooks, job.kvstore)
    return history, run.path


def train_run(name: str, out: Optional[Path] = None, epochs: Optional[int] = None, lr: Optional[float] = None,
              batch_size: Optional[int] = None, resize: Optional[int] = None, limit: Optional[int] = None,
              seed: Optional[int] = None, ctx=None, verbose: bool = True, progress: Optional[bool] = None,
              command: Optional[Sequence[str]] = None) -> Tuple[History, Optional[Path]]:
    """Train ``name`` with the lecture's recipe (any argument given overrides
    it) on Fashion-MNIST and write the run folder ``out`` (default
    ``runs/<name>-<time>``). Returns the history and the folder.

    One of the three public entry points that keep keyword options
    (docs/architecture.md): the options become a :class:`RunConfig` at once,
    then :func:`start_run` runs it. Another data set, data folder or
    kvstore: ``start_run(run_config(name, dataset=..., kvstore=...), data_dir=...)``."""
    config = run_config(name, epochs=epochs, lr=lr, batch_size=batch_size, resize=resize, limit=limit, seed=seed)
    return start_run(config, out, None, ctx, verbose, progress, command)


def resume_run(run_dir: Path, name: Optional[str] = None, epochs: Optional[int] = None,
               data_dir: Optional[str] = None, ctx=None, verbose: bool = True, progress: Optional[bool] = None,
               command: Optional[Sequence[str]] = None) -> Tuple[History, Path]:
    """Continue the run in ``run_dir`` from its last complete epoch, up to its
    recipe's epochs (or ``epochs``, to extend it). ``name``, when given, must
    be the run's model name. The run's :class:`RunConfig` is read back from its
    checkpoint as it was written.

    A parameter-server run continues in this one process with its global
    batch (each worker's batch x workers, the incomplete last one dropped as
    the workers did), so it ends where the uninterrupted run would."""
    limits.check('epochs', epochs, optional=True)
    ctxs = as_context_list(ctx)
    with RunFolder.for_resume(run_dir) as run:
        state = checkpoint.load_checkpoint(run.path / 'checkpoint', required=('model', 'recipe', 'dataset', 'seed'))
        config = RunConfig.from_meta(state['run'])
        if name is not None and name != config.model:
            raise ValueError('%s is a run of %r, not of %r' % (run.path, config.model, name))
        if epochs is not None and epochs < state['epoch']:
            raise ValueError('%s has done %d epochs already; give `epochs=%d` or more to extend it'
                             % (run.path, state['epoch'], state['epoch']))
        if epochs is not None:
            config = config.replace(epochs=epochs)
        meta = dict(state['run'], **config.to_meta())
        iters = data.load_data(config.global_batch_size, config.resize, data_dir, config.dataset,
                               limit=config.limit, seed=config.seed, drop_last=config.num_workers > 1)
        net = get_model(config.model, **config.kwargs)
        _append_command(run.path, command)
        history = _fit(net, config, iters, run.path, meta, ctxs, default_hooks(verbose, progress), 'device')
    return history, run.path


def evaluate_saved(name: str, params: Optional[Path] = None, pretrained: bool = False,
                   data_dir: Optional[str] = None, batch_size: int = 256, ctx=None,
                   limit: Optional[int] = None, mistakes: int = 16) -> Dict[str, Any]:
    """Test accuracy, per-class accuracy and confusion matrix of a parameter
    file (a run's ``model.params``, an export's, with or without ``meta.json``:
    what ``predict`` and ``export`` take) or of ``name``'s published weights,
    and what it gets wrong, all from one pass over the test set.

    Returns a dict with ``accuracy``, ``per_class`` (list), ``matrix``
    (numpy, rows true, columns predicted), ``classes``, ``meta``,
    ``mistakes`` (the ``mistakes`` test examples predicted wrong with the
    highest probability, most first: :class:`d2lnets.explain.mistakes.Mistake`,
    ``index`` into the test set) and ``confused`` (the 10 most confused class
    pairs with their counts: :class:`d2lnets.explain.mistakes.Confusion`).
    """
    from ..explain.mistakes import TopMistakes, most_confused
    from .metrics import accuracy_from_confusion, confusion_matrix, per_class_accuracy
    top = TopMistakes(mistakes)     # the number checked before anything is loaded
    if (params is None) == (not pretrained):
        raise ValueError('give either a parameter file (`params`) or `pretrained=True`')
    limits.check('batch_size', batch_size)
    data.check_limit(limit)
    ctxs = as_context_list(ctx)
    net, meta = load_network(name, str(params) if params else None, pretrained, ctx=ctxs[0])
    # load_network validated the data set; it names none for 3-channel weights without meta.json.
    row = datasets.DATASETS.get(meta.get('dataset'))
    if row is None or not row.trainable:
        raise ValueError('%s was trained on %s; d2lnets evaluates on the test sets of %s only'
                         % (params or name, meta.get('dataset'), ', '.join(datasets.TRAINABLE)))
    dataset = row.name
    side = meta['input_shape'][-1]
    folder = data.find_dataset(dataset, data_dir)
    _, test_iter = data.load_data(batch_size, None if side == row.image_size else side, str(folder), dataset,
                                  limit=limit)
    net.collect_params().reset_ctx(ctxs)
    net.hybridize()
    classes = meta.get('classes') or row.classes
    matrix = confusion_matrix(net, test_iter, len(classes), ctxs, mistakes=top)
    return {'accuracy': accuracy_from_confusion(matrix), 'per_class': per_class_accuracy(matrix).tolist(),
            'matrix': matrix, 'classes': classes, 'meta': meta, 'mistakes': top.result(),
            'confused': most_confused(matrix, MOST_CONFUSED)}
