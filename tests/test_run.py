"""Run folders and checkpoints under faults: nothing lost, nothing run, no traceback.

Real runs of the CLI on a small subset of the real Fashion-MNIST, real files,
real processes and signals.
"""
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from d2lnets.cli import main

ROOT = Path(__file__).resolve().parent.parent
ONE = {'OMP_NUM_THREADS': '1'}
SMALL = ['--limit', '600', '--batch-size', '128', '--quiet']


def train_cli(*args):
    return subprocess.run([sys.executable, '-m', 'd2lnets', 'train', *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, env=dict(os.environ, **ONE), timeout=300)


@pytest.fixture(scope='module')
def one_epoch(tmp_path_factory):
    """A finished one-epoch run (seed 3); tests copy it before damaging it."""
    out = tmp_path_factory.mktemp('runs') / 'lenet'
    proc = train_cli('lenet', '--epochs', '1', '--seed', '3', '--out', out, *SMALL)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture
def run_copy(one_epoch, tmp_path):
    import shutil
    copy = tmp_path / 'run'
    shutil.copytree(one_epoch, copy)
    return copy


def one_error_line(capsys, *argv) -> str:
    assert main(list(map(str, argv))) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


class Evil:
    """Unpickling this writes a file: the proof that a pickle ran code."""
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), 'pwned'))


def test_a_pickled_trainer_state_is_never_loaded(run_copy, tmp_path, capsys):
    marker = tmp_path / 'ran'
    ckpt = run_copy / 'checkpoint'
    (ckpt / 'epoch-0001.states').write_bytes(pickle.dumps(Evil(str(marker))))
    latest = json.loads((ckpt / 'latest.json').read_text())
    (ckpt / 'latest.json').write_text(json.dumps(dict(latest, states='epoch-0001.states')))
    line = one_error_line(capsys, 'train', '--resume', run_copy, '--epochs', '2', '--quiet')
    assert 'is damaged (its trainer state epoch-0001.states is a pickle' in line
    assert 'which d2lnets does not load: unpickling can run code); start a new run' in line
    assert not marker.exists()
    # Nor is a pickle in the place of the trainer's arrays: MXNet's own format is read there.
    info = json.loads((ckpt / 'epoch-0001.trainer.json').read_text())
    (ckpt / 'epoch-0001.trainer.json').write_text(json.dumps(dict(info, arrays='epoch-0001.states')))
    (ckpt / 'latest.json').write_text(json.dumps(latest))
    line = one_error_line(capsys, 'train', '--resume', run_copy, '--epochs', '2', '--quiet')
    assert 'trainer arrays epoch-0001.states are truncated or not MXNet arrays' in line and not marker.exists()


@pytest.mark.parametrize('damage, message', [
    (lambda c: (c / 'epoch-0001.params').write_bytes((c / 'epoch-0001.params').read_bytes()[:100]),
     "epoch-0001.params does not hold this network's parameters"),
    (lambda c: (c / 'epoch-0001.params').write_bytes(b''), "epoch-0001.params does not hold this network's"),
    (lambda c: (c / 'epoch-0001.params').write_bytes(os.urandom(5000)), "does not hold this network's"),
    (lambda c: (c / 'epoch-0001.trainer.json').write_text('{"states": 3'), 'epoch-0001.trainer.json'),
    (lambda c: _edit(c, lambda s: s.pop('run')), "its run settings must hold a JSON object"),
    (lambda c: _edit(c, lambda s: s['run'].pop('model')), "its run settings: the field 'model' is missing"),
    (lambda c: _edit(c, lambda s: s['run'].pop('recipe')), "its run settings: the field 'recipe' is missing"),
    (lambda c: _edit(c, lambda s: s['history']['loss'].append(1.0)), 'its history lists differ in length'),
    (lambda c: _edit(c, lambda s: s.update(epoch='1')), 'its epoch must be a positive integer'),
    (lambda c: (c / 'latest.json').write_text('[]'), 'latest.json is not a JSON object'),
])
def test_a_damaged_checkpoint_is_one_line(run_copy, capsys, damage, message):
    damage(run_copy / 'checkpoint')
    line = one_error_line(capsys, 'train', '--resume', run_copy, '--epochs', '2', '--quiet')
    assert line.startswith('d2lnets train: error: ') and message in line, line
    assert 'start a new run' in line


def _edit(ckpt, change):
    state = json.loads((ckpt / 'latest.json').read_text())
    change(state)
    (ckpt / 'latest.json').write_text(json.dumps(state))


@pytest.mark.parametrize('args, message', [
    (['--ctx', 'cpu:1000000000'], 'a device index (--ctx) must be an integer from 0 to 255, got 1000000000'),
    (['--data-dir', 'd' * 256], 'the data folder (--data-dir) is a path of 256 bytes whose longest name has 256'),
    (['--resize', '8'], 'lenet cannot take 8x8 input'),
    (['--data-dir', '/nonexistent'], 'the data folder /nonexistent does not exist'),
])
def test_bad_arguments_create_nothing(tmp_path, capsys, args, message):
    line = one_error_line(capsys, 'train', 'lenet', '--out', tmp_path / 'run', *args, *SMALL)
    assert message in line
    assert not (tmp_path / 'run').exists()


def test_a_run_that_completes_no_epoch_leaves_no_dead_end(tmp_path, capsys):
    out = tmp_path / 'run'
    line = one_error_line(capsys, 'train', 'lenet', '--out', out, '--lr', '1e38', '--epochs', '2', *SMALL)
    assert 'became NaN or infinite in epoch 1' in line
    assert not out.exists()
    out.mkdir()      # a folder given empty stays, empty
    one_error_line(capsys, 'train', 'lenet', '--out', out, '--lr', '1e38', '--epochs', '2', *SMALL)
    assert sorted(os.listdir(out)) == []
    # What a process killed in epoch 1 leaves (meta.json, command.txt): --resume and --out agree on it.
    (out / 'meta.json').write_text('{}')
    (out / 'command.txt').write_text('d2lnets train lenet\n')
    line = one_error_line(capsys, 'train', '--resume', out)
    assert 'holds a run that completed no epoch, so there is nothing to resume; start it again with ' \
           '`d2lnets train NAME --out %s`' % out in line
    assert main(['train', 'lenet', '--out', str(out), '--epochs', '1', *SMALL]) == 0
    assert (out / 'model.params').is_file() and json.loads((out / 'meta.json').read_text())['epochs_done'] == 1


def start_training(out, until, *args, timeout=120):
    """``d2lnets train lenet --out OUT ARGS`` in a process of its own, once ``out/until`` exists."""
    proc = subprocess.Popen([sys.executable, '-m', 'd2lnets', 'train', 'lenet', '--out', str(out), '--quiet',
                             *args], cwd=ROOT, env=dict(os.environ, **ONE), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while not (out / until).exists() and time.time() < deadline:
        time.sleep(0.02)
    assert (out / until).exists(), 'no %s within %d s' % (until, timeout)
    return proc


def test_interrupted_in_epoch_one_leaves_nothing(tmp_path):
    out = tmp_path / 'run'
    proc = start_training(out, 'meta.json', '--epochs', '1')   # the whole set: seconds in epoch 1
    proc.send_signal(signal.SIGTERM)      # as a batch system's time limit does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines() == ['d2lnets train: interrupted; no epoch was complete, nothing was kept']
    assert not out.exists()


def test_sigterm_keeps_the_last_epoch_and_says_how_to_resume(tmp_path):
    out = tmp_path / 'run'
    proc = start_training(out, 'checkpoint/latest.json', '--limit', '1000', '--epochs', '50')
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    done = json.loads((out / 'checkpoint' / 'latest.json').read_text())['epoch']
    assert err.strip().splitlines() == [
        'd2lnets train: interrupted; the checkpoint of epoch %d is kept; continue with: d2lnets train --resume %s'
        % (done, out)]


def test_a_folder_that_is_not_a_run_is_never_written_into(tmp_path, capsys):
    out = tmp_path / 'mine'
    out.mkdir()
    (out / 'model.params').write_bytes(b'my own weights')
    line = one_error_line(capsys, 'train', 'lenet', '--out', out, *SMALL)
    assert 'is not empty (it holds model.params) and is not a run d2lnets can continue; choose a new or empty ' \
           'folder for --out' in line
    assert os.listdir(out) == ['model.params'] and (out / 'model.params').read_bytes() == b'my own weights'
    (tmp_path / 'file').write_text('x')
    assert 'is a file; give a folder' in one_error_line(capsys, 'train', 'lenet', '--out', tmp_path / 'file', *SMALL)


def test_two_trainings_into_one_folder_the_second_is_refused(tmp_path):
    out = tmp_path / 'run'
    # Long enough (50 epochs) to be running however fast the machine: stopped below.
    first = start_training(out, 'meta.json', '--epochs', '50', '--limit', '3000')
    second = train_cli('lenet', '--out', out, '--epochs', '1', '--limit', '600', '--quiet')
    assert first.poll() is None, 'the first training ended before the second started'
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        'd2lnets train: error: %s is in use by another d2lnets process (pid %d); wait for it to end, or choose '
        'another folder' % (out, first.pid)]
    deadline = time.time() + 120
    while not (out / 'checkpoint' / 'latest.json').exists() and time.time() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['epochs_done'] >= 1 and meta['recipe']['limit'] == 3000     # all of it the first run's
    assert not (out / '.lock').exists()


def test_the_run_records_the_data_it_used(one_epoch):
    meta = json.loads((one_epoch / 'meta.json').read_text())
    from d2lnets import data
    assert meta['data_folder'] == str(data.locate('fashion-mnist'))


def test_a_parameter_server_run_resumes_in_one_process_where_it_would_have_ended(tmp_path):
    from test_distributed import launch
    # 600 examples: 4 global batches of 2 x 64, the incomplete fifth dropped, as the workers did.
    common = ['--kvstore', 'dist_sync', '--batch-size', '64', '--limit', '600', '--seed', '5', '--quiet']
    whole = launch(sys.executable, '-m', 'd2lnets', 'train', 'lenet', '--epochs', '2', '--out', str(tmp_path / 'a'),
                   *common)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    part = launch(sys.executable, '-m', 'd2lnets', 'train', 'lenet', '--epochs', '1', '--out', str(tmp_path / 'b'),
                  *common)
    assert part.returncode == 0, part.stdout + part.stderr
    resumed = train_cli('--resume', tmp_path / 'b', '--epochs', '2', '--quiet')
    assert resumed.returncode == 0, resumed.stderr
    a = mx.nd.load(str(tmp_path / 'a' / 'model.params'))
    b = mx.nd.load(str(tmp_path / 'b' / 'model.params'))
    first = mx.nd.load(str(tmp_path / 'b' / 'checkpoint' / 'epoch-0002.params'))
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_allclose(b[k].asnumpy(), a[k].asnumpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(first[k].asnumpy(), b[k].asnumpy())


def test_a_run_of_the_older_layout_resumes_and_its_settings_are_read_back(run_copy):
    """d2lnets 0.1 wrote no kvstore and num_workers in the recipe (the shipped weights' meta.json):
    such a run resumes with 'device' and 1, its other settings (batch 128, limit 600, seed 3) its own."""
    older = {'epochs': 1, 'batch_size': 128, 'lr': 0.9, 'optimizer': 'sgd', 'loss': 'softmax_cross_entropy',
             'init': 'xavier', 'limit': 600}
    for path, run in ((run_copy / 'checkpoint' / 'latest.json', lambda d: d['run']), (run_copy / 'meta.json', None)):
        state = json.loads(path.read_text())
        (run(state) if run else state)['recipe'] = dict(older)
        path.write_text(json.dumps(state))
    proc = train_cli('--resume', run_copy, '--epochs', '2', '--quiet')
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((run_copy / 'meta.json').read_text())
    assert meta['recipe'] == dict(older, epochs=2, kvstore='device', num_workers=1)
    assert meta['seed'] == 3 and meta['epochs_done'] == 2
    history = json.loads((run_copy / 'history.json').read_text())
    assert history['epoch'] == [1, 2]


def test_resume_refuses_a_setting_given_even_if_it_is_the_default(run_copy, capsys):
    """The CLI's defaults are None, so what the user gave is known without repeating the defaults."""
    line = one_error_line(capsys, 'train', '--resume', run_copy, '--dataset', 'fashion-mnist', '--kvstore', 'device')
    assert line == ('d2lnets train: error: --resume continues a run with its own settings; drop --dataset, '
                    '--kvstore (only --epochs, --ctx, --data-dir and --quiet can be given)')
