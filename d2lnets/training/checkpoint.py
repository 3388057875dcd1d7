"""Per-epoch checkpoints: written atomically, read only after they are validated.

A checkpoint folder holds, for the last complete epoch ``N``::

    epoch-NNNN.params         the network (Gluon's save_parameters)
    epoch-NNNN.trainer.json   the optimizer's settings and update counts
    epoch-NNNN.trainer.nd     its state arrays (momentum ...), MXNet's NDArray format;
                              absent for the lecture's plain SGD, which has none
    latest.json               names them, with the history and the run's settings

``latest.json`` is replaced last, atomically, and older epoch files are
removed only after it, so at every instant (a crash, Ctrl-C, a full disk) the
folder describes one complete epoch.

Nothing here unpickles: MXNet's own ``Trainer.save_states`` writes a pickle,
which runs code when loaded, so a checkpoint someone sent you could. The
trainer's state is stored as plain arrays and JSON instead, and a checkpoint
with a pickled ``.states`` file (d2lnets 0.1) is refused.
"""
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from .. import limits
from ..io import DamagedFile, atomic_write, read_json, remove_own, write_json

__all__ = ['save_checkpoint', 'load_checkpoint', 'is_checkpoint', 'restore_trainer', 'LATEST',
           'CheckpointError']

LATEST = 'latest.json'
# A history of 10,000 epochs (limits.py's most) takes about 1 MiB.
MAX_BYTES = 4 << 20
FIX = 'start a new run with another `out`'
HISTORY_FIELDS = ('epoch', 'loss', 'train_acc', 'test_acc', 'seconds', 'examples_per_sec')


class CheckpointError(ValueError):
    """A checkpoint folder is damaged, or not one."""


def is_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds a checkpoint (its ``latest.json``; one that is not a
    regular file makes a damaged checkpoint, not none)."""
    return os.path.lexists(Path(folder) / LATEST)


def _updaters(trainer) -> List[Any]:
    """The updaters holding the optimizer's state: the trainer's own, or its
    kvstore's when the kvstore updates the weights."""
    trainer._init_kvstore()
    if trainer._update_on_kvstore:
        return [trainer._kvstore._updater]
    return list(trainer._updaters)


def _flatten(prefix: str, state, arrays: Dict[str, Any]) -> Any:
    """A state (None, an NDArray, or nested tuples of them) -> a JSON layout
    whose leaves name arrays stored in ``arrays``."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return [_flatten('%s.%d' % (prefix, i), s, arrays) for i, s in enumerate(state)]
    arrays[prefix] = state
    return prefix


def _unflatten(layout, arrays: Dict[str, Any]):
    if layout is None:
        return None
    if isinstance(layout, list):
        return tuple(_unflatten(x, arrays) for x in layout)
    return arrays[layout]


def _save_trainer(folder: Path, stem: str, trainer) -> Dict[str, Any]:
    import mxnet as mx
    optimizer = trainer._optimizer
    arrays: Dict[str, Any] = {}
    layouts = [{str(i): _flatten('%d/%d' % (u, i), s, arrays) for i, s in updater.states.items()}
               for u, updater in enumerate(_updaters(trainer))]
    info = {'optimizer': type(optimizer).__name__.lower(), 'learning_rate': optimizer.learning_rate,
            'num_update': optimizer.num_update,
            # per device: {parameter index: updates}
            'index_update_counts': {str(d): {str(k): v for k, v in counts.items()}
                                    for d, counts in optimizer._all_index_update_counts.items()},
            'states': layouts, 'arrays': '%s.trainer.nd' % stem if arrays else None}
    if arrays:
        atomic_write(folder / info['arrays'], lambda tmp: mx.nd.save(tmp, arrays))
    write_json(folder / ('%s.trainer.json' % stem), info)
    return info


def save_checkpoint(folder: Path, epoch: int, net, trainer, history: Dict[str, list],
                    run: Optional[Dict[str, Any]] = None) -> Path:
    """Write epoch ``epoch``'s network and trainer state, then point
    ``latest.json`` at them; return the folder. ``trainer`` None: no trainer
    state (on MXNet's parameter server the servers hold it)."""
    folder = Path(folder)
    stem = 'epoch-%04d' % epoch
    params = stem + '.params'
    atomic_write(folder / params, net.save_parameters)
    keep = {params}
    trainer_file = None
    if trainer is not None:
        info = _save_trainer(folder, stem, trainer)
        trainer_file = stem + '.trainer.json'
        keep |= {trainer_file, info['arrays']}
    write_json(folder / LATEST, {'epoch': epoch, 'params': params, 'trainer': trainer_file,
                                 'history': history, 'run': run or {}})
    for old in folder.glob('epoch-*'):
        if old.name not in keep:
            try:
                remove_own(old)
            except ValueError:      # not a file d2lnets made (a link, a hard link): left alone, the epoch is saved
                pass
    return folder


def _check_history(history: Any) -> None:
    if not isinstance(history, dict) or set(history) != set(HISTORY_FIELDS):
        raise ValueError('its history must have the fields %s' % ', '.join(HISTORY_FIELDS))
    lengths = {len(v) if isinstance(v, list) else -1 for v in history.values()}
    if len(lengths) != 1 or -1 in lengths:
        raise ValueError('its history lists differ in length')
    for name, values in history.items():
        if not all(limits.is_real(v) for v in values):
            raise ValueError('its history %r holds a value that is not a finite number' % name)
    if history['epoch'] != list(range(1, len(history['epoch']) + 1)):
        raise ValueError('its history does not count epochs 1, 2, ...')


def _read(path: Path) -> Any:
    return read_json(path, 'the checkpoint file', FIX, max_bytes=MAX_BYTES)


def _check_files(folder: Path, state: Dict[str, Any]) -> None:
    if not isinstance(state.get('params'), str) or not (folder / state['params']).is_file():
        raise ValueError('its parameter file %s is missing' % state.get('params'))
    if state.get('states') is not None:
        raise ValueError('its trainer state %s is a pickle (written by d2lnets 0.1), which d2lnets does not '
                         'load: unpickling can run code' % state['states'])
    trainer = state.get('trainer')
    if trainer is not None:
        if not isinstance(trainer, str) or not (folder / trainer).is_file():
            raise ValueError('its trainer state %s is missing' % trainer)
        info = _read(folder / trainer)
        if not isinstance(info, dict) or not isinstance(info.get('states'), list):
            raise ValueError('its trainer state %s is not one d2lnets wrote' % trainer)
        if info.get('arrays') is not None and not (folder / str(info['arrays'])).is_file():
            raise ValueError('its trainer arrays %s are missing' % info['arrays'])


def load_checkpoint(folder: Path, required: tuple = ()) -> Dict[str, Any]:
    """The validated content of ``latest.json``, with ``params`` and ``trainer``
    as full paths (``trainer`` None when no trainer state was saved).
    ``required``: fields the run settings must hold (``d2lnets train --resume``
    needs the model, the recipe, the data set and the seed).

    Raises
    ------
    CheckpointError
        ``folder`` is not a checkpoint, or it is damaged (a file missing,
        truncated, of the wrong kind; a field missing or of the wrong type);
        the message says which and what to do.
    """
    from ..weights.meta import validate
    folder = Path(folder)
    if not is_checkpoint(folder):
        raise CheckpointError('%s is not a checkpoint folder (it has no %s); give the output folder of '
                              '`d2lnets train`, which holds checkpoint/%s' % (folder, LATEST, LATEST))
    try:
        state = _read(folder / LATEST)
        if not isinstance(state, dict):
            raise ValueError('%s is not a JSON object' % LATEST)
        epoch = state.get('epoch')
        if not limits.is_int(epoch) or epoch < 1:
            raise ValueError('its epoch must be a positive integer')
        _check_history(state.get('history'))
        if len(state['history']['epoch']) != epoch:
            raise ValueError('its history has %d epochs, not %d' % (len(state['history']['epoch']), epoch))
        validate(state.get('run'), 'its run settings', required=required)
        recipe = state['run'].get('recipe')
        for key in ('epochs', 'batch_size', 'lr') if recipe else ():
            if not limits.is_real(recipe.get(key)) or not recipe[key] > 0:
                raise ValueError('its recipe needs a positive %r' % key)
        _check_files(folder, state)
    except DamagedFile as err:
        raise CheckpointError(str(err)) from None
    except ValueError as err:
        raise CheckpointError('the checkpoint in %s is damaged (%s); start a new run with another `out`'
                              % (folder, err)) from None
    state['params'] = folder / state['params']
    state['trainer'] = folder / state['trainer'] if state.get('trainer') else None
    return state


def restore_trainer(trainer, path: Path) -> None:
    """Give ``trainer`` the state saved at ``path`` (a ``.trainer.json``).
    ``CheckpointError`` if it does not fit this trainer."""
    import mxnet as mx
    path = Path(path)
    try:
        info = _read(path)
    except DamagedFile as err:
        raise CheckpointError(str(err)) from None
    try:
        arrays = mx.nd.load(str(path.parent / info['arrays'])) if info.get('arrays') else {}
    except mx.base.MXNetError:
        raise CheckpointError('the checkpoint in %s is damaged (its trainer arrays %s are truncated or not '
                              'MXNet arrays); start a new run with another `out`'
                              % (path.parent, info['arrays'])) from None
    updaters = _updaters(trainer)
    optimizer = trainer._optimizer
    if info.get('optimizer') != type(optimizer).__name__.lower() or len(info['states']) != len(updaters):
        raise CheckpointError('the trainer state in %s is for optimizer %r on %d device(s), not %r on %d; '
                              'resume with the devices of the run (`ctx`)'
                              % (path, info.get('optimizer'), len(info['states']), type(optimizer).__name__.lower(),
                                 len(updaters)))
    try:
        for updater, layout in zip(updaters, info['states']):
            updater.states = {int(i): _unflatten(l, arrays) for i, l in layout.items()}
            updater.states_synced = dict.fromkeys(updater.states, False)
        optimizer.num_update = int(info['num_update'])
        optimizer._all_index_update_counts = {int(d): {int(k): int(v) for k, v in counts.items()}
                                              for d, counts in info['index_update_counts'].items()}
        optimizer._index_update_count = optimizer._all_index_update_counts.setdefault(0, {})
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError('the checkpoint in %s is damaged (its trainer state: %s); start a new run with '
                              'another `out`' % (path.parent, err)) from None
