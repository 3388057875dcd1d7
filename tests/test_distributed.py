"""Data-parallel training on MXNet's parameter server, for real, over the loopback and across
network namespaces."""
import json
import os
import subprocess
import sys
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

import d2lnets
from d2lnets.data import load_fashion_mnist
from d2lnets.training.loop import train
from dist_train_worker import RecordingXavier
from proctools import hosts_fixture

HERE = Path(__file__).resolve().parent
BATCH, LIMIT, SEED = 64, 512, 11     # 2 workers x 64 = global batch 128: 4 steps
ATOL = 1e-6


def launch(*command, timeout=240, options=()):
    # One OpenMP thread per process: five MXNet processes share two cores.
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, '-m', 'd2lnets', 'launch', '-n', '2', '-s', '1', *options,
                           '--timeout', str(timeout - 30), '--', *command],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def hosts():
    """Three hosts with their own addresses: network namespaces (root only, else skipped)."""
    yield from hosts_fixture()


def params(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}


def test_two_workers_equal_one_process_on_the_global_batch(tmp_path):
    proc = launch(sys.executable, str(HERE / 'dist_train_worker.py'), str(tmp_path), str(BATCH), str(LIMIT),
                  str(SEED))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(line.split(': ')[0] for line in proc.stdout.splitlines() if 'steps' in line) == [
        '[worker 0] rank 0', '[worker 1] rank 1']
    assert_equal_to_one_process(tmp_path, proc.stdout)


def test_two_workers_on_two_hosts_equal_one_process(tmp_path, hosts):
    services, a, b = hosts.addresses
    (tmp_path / 'hosts').write_text('%s 0   # scheduler and server only\n%s\n%s slots=1\n' % (services, a, b))
    proc = launch(sys.executable, str(HERE / 'dist_train_worker.py'), str(tmp_path), str(BATCH), str(LIMIT),
                  str(SEED), options=['--hosts', str(tmp_path / 'hosts'), '--remote', hosts.template,
                                      '--port', '9191'])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Labels: host, role, rank (the scheduler ranks the higher address first).
    assert sorted(line.split(': ')[0] for line in proc.stdout.splitlines() if 'steps' in line) == sorted([
        '[%s worker 0] rank 0' % b, '[%s worker 1] rank 1' % a])
    assert proc.stdout.splitlines()[-1] == '[launch] done; worker 0 ran on %s: a run folder it wrote is there' % b
    assert_equal_to_one_process(tmp_path, proc.stdout)
    assert not hosts.pids()


def assert_equal_to_one_process(tmp_path, stdout):
    assert all(' 4 steps' in line for line in stdout.splitlines() if 'steps' in line)
    w0, w1 = params(tmp_path / 'rank0.params'), params(tmp_path / 'rank1.params')
    init0, init1 = params(tmp_path / 'rank0-init.params'), params(tmp_path / 'rank1-init.params')
    assert sorted(w0) == sorted(w1) == sorted(init0) == sorted(init1) and len(w0) == 10   # LeNet: 5 layers
    for k in w0:
        # Both workers started alike (the agreed seed) and pulled the same parameters from the servers.
        np.testing.assert_array_equal(init0[k], init1[k])
        np.testing.assert_array_equal(w0[k], w1[k])
        # 4 steps at lr 0.9 moved every parameter (the sigmoid LeNet's first layer least, ~9e-4),
        # far more than the tolerance of the comparison below.
        assert np.abs(w0[k] - init0[k]).max() > 100 * ATOL, k

    # One process, one context, the global batch of 128, the same data order and seed.
    net = d2lnets.get_model('lenet')
    train_iter, test_iter = load_fashion_mnist(2 * BATCH, limit=LIMIT, seed=SEED)
    init = RecordingXavier()
    train(net, train_iter, test_iter, 1, 0.9, ctx=mx.cpu(), seed=SEED, verbose=False, init=init)
    net.collect_params().save(str(tmp_path / 'single.params'))
    single = params(tmp_path / 'single.params')
    assert sorted(single) == sorted(w0)
    for k in single:
        np.testing.assert_array_equal(init.values[k].asnumpy(), init0[k])
        np.testing.assert_allclose(w0[k], single[k], rtol=1e-5, atol=ATOL)     # measured: <= 5e-8


def test_cli_training_on_the_parameter_server_writes_one_run(tmp_path):
    out = tmp_path / 'run'
    proc = launch(sys.executable, '-m', 'd2lnets', 'train', 'lenet', '--kvstore', 'dist_sync', '--epochs', '1',
                  '--batch-size', str(BATCH), '--limit', str(LIMIT), '--seed', str(SEED), '--out', str(out),
                  '--quiet')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['run']       # worker 1 wrote nothing
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['recipe']['kvstore'] == 'dist_sync' and meta['recipe']['num_workers'] == 2
    assert meta['recipe']['batch_size'] == BATCH and meta['epochs_done'] == 1
    assert (out / 'model.params').is_file() and (out / 'curves.png').is_file()
    state = json.loads((out / 'checkpoint' / 'latest.json').read_text())
    assert state['epoch'] == 1 and state['trainer'] is None     # the servers hold the trainer state


def test_dist_kvstore_without_a_job_is_one_line(run_cli, tmp_path):
    assert 'DMLC_ROLE' not in os.environ
    proc = run_cli('train', 'lenet', '--kvstore', 'dist_sync', '--limit', '256', '--out', str(tmp_path / 'r'))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        'd2lnets train: error: --kvstore dist_sync needs a parameter-server job: start it with `d2lnets launch '
        '-n WORKERS -- d2lnets train ... --kvstore dist_sync` (or set MXNet\'s DMLC_* variables)']
    assert not (tmp_path / 'r').exists()


def test_shards_cover_the_global_batches():
    from d2lnets.data import ArrayIter
    images = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    labels = np.arange(10)
    whole = [y.asnumpy().tolist() for _, y in ArrayIter(images, labels, 4, shuffle=True, seed=3)]
    parts = [[y.asnumpy().tolist() for _, y in ArrayIter(images, labels, 2, shuffle=True, seed=3).shard(r, 2)]
             for r in range(2)]
    # Global batches of 4 (the last, incomplete one dropped): worker r holds part r of each.
    assert [a + b for a, b in zip(*parts)] == whole[:2]
    with pytest.raises(ValueError, match='need 0 <= index < count'):
        ArrayIter(images, labels, 2).shard(2, 2)
    with pytest.raises(ValueError, match='fewer than one global batch'):
        ArrayIter(images, labels, 8).shard(0, 2)
