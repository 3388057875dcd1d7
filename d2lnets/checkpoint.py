"""Per-epoch checkpoints, written through :func:`d2lnets.io.atomic_write`.

A checkpoint folder holds ``epoch-NNNN.params`` (network), ``epoch-NNNN.states``
(trainer) and ``latest.json``, which names them and holds the history and the
run's settings. ``latest.json`` is replaced last, atomically, and older epoch
files are removed only after it, so at every instant (a crash, Ctrl-C, a full
disk) the folder describes one complete epoch.
"""
import json
from pathlib import Path
from typing import Any, Dict, Optional

from .io import atomic_write, write_json

__all__ = ['save_checkpoint', 'load_checkpoint', 'is_checkpoint', 'LATEST']

LATEST = 'latest.json'


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
