"""Atomic files and per-epoch checkpoints.

A checkpoint folder holds ``epoch-NNNN.params`` (network), ``epoch-NNNN.states``
(trainer) and ``latest.json``, which names them and holds the history and the
run's settings. ``latest.json`` is replaced last, atomically, and older epoch
files are removed only after it, so at every instant (a crash, Ctrl-C, a full
disk) the folder describes one complete epoch.
"""
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Optional

__all__ = ['atomic_write', 'write_text', 'write_json', 'save_checkpoint', 'load_checkpoint',
           'is_checkpoint', 'LATEST']

LATEST = 'latest.json'


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp_name)`` to write a temporary file beside ``path``, then
    rename it to ``path``. On any error (or Ctrl-C) the temporary file is
    removed and ``path`` keeps its old content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix='.' + path.name + '.', suffix='.tmp')
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes the file private (0600); give it the mode open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_json(path: Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=2) + '\n')


def is_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds a checkpoint (its ``latest.json``)."""
    return (Path(folder) / LATEST).is_file()


def save_checkpoint(folder: Path, epoch: int, net, trainer, history: Dict[str, list],
                    run: Optional[Dict[str, Any]] = None) -> Path:
    """Write epoch ``epoch``'s network and trainer state, then point
    ``latest.json`` at them; return the folder. ``trainer`` None: no trainer
    state (on MXNet's parameter server the servers hold it)."""
    folder = Path(folder)
    params = 'epoch-%04d.params' % epoch
    states = 'epoch-%04d.states' % epoch if trainer is not None else None
    atomic_write(folder / params, net.save_parameters)
    if trainer is not None:
        atomic_write(folder / states, trainer.save_states)
    write_json(folder / LATEST, {'epoch': epoch, 'params': params, 'states': states,
                                 'history': history, 'run': run or {}})
    for old in folder.glob('epoch-*'):
        if old.name not in (params, states):
            old.unlink()
    return folder


def load_checkpoint(folder: Path) -> Dict[str, Any]:
    """The content of ``latest.json``, with ``params`` and ``states`` as full
    paths (``states`` None when no trainer state was saved). ``ValueError``
    when ``folder`` is not a checkpoint or is damaged."""
    folder = Path(folder)
    if not is_checkpoint(folder):
        raise ValueError('%s is not a checkpoint folder (it has no %s); give the output folder of '
                         '`d2lnets train`, which holds checkpoint/%s' % (folder, LATEST, LATEST))
    try:
        state = json.loads((folder / LATEST).read_text())
        for key in ('params', 'states'):
            if key == 'states' and state[key] is None:
                continue
            state[key] = folder / state[key]
            if not state[key].is_file():
                raise ValueError('%s is missing' % state[key])
        int(state['epoch']), dict(state['history'])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError('the checkpoint in %s is damaged (%s); start a new run' % (folder, err)) from None
    return state
