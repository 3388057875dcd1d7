"""The parameter-server launcher, for real, over the loopback."""
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from proctools import listening_addresses, pids_with_env

WORKER = str(Path(__file__).resolve().parent / 'dist_worker.py')


def start_launch(tmp_path, *launch_args, steps=3, sleep=0.0):
    marker = 'd2lnets-test-%s' % uuid.uuid4().hex
    (tmp_path / 'pids').mkdir()
    env = dict(os.environ, D2LNETS_TEST_MARK=marker, D2LNETS_TEST_PIDS=str(tmp_path / 'pids'),
               D2LNETS_TEST_STEPS=str(steps), D2LNETS_TEST_SLEEP=str(sleep))
    proc = subprocess.Popen([sys.executable, '-m', 'd2lnets', 'launch', *launch_args, '--',
                             sys.executable, WORKER], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return proc, marker


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def cleanup(proc, marker):
    # Whatever a failed test left, stop it.
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in pids_with_env(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_two_workers_one_server_on_loopback_only(tmp_path):
    proc, marker = start_launch(tmp_path, '-n', '2', '-s', '1', steps=8, sleep=0.4)
    try:
        # 1 scheduler + 1 server + 2 workers (and the launcher itself), while they run.
        listening = wait_for(lambda: (lambda l: l if sum(map(len, l.values())) >= 4 else None)(
            listening_addresses(pids_with_env(marker))), timeout=30)
        addresses = [a for socks in listening.values() for a in socks]
        assert len(addresses) >= 4, listening
        assert {ip for ip, _ in addresses} == {'127.0.0.1'}, listening
        out, _ = proc.communicate(timeout=60)
    finally:
        cleanup(proc, marker)
    assert proc.returncode == 0, out
    lines = [line for line in out.splitlines() if 'holds' in line]
    # The launcher's label is the worker's kvstore rank.
    assert sorted(line.split(' holds')[0] for line in lines) == ['[worker 0] rank 0 of 2', '[worker 1] rank 1 of 2']
    assert wait_for(lambda: not pids_with_env(marker), timeout=10)
    # A foreign script: launch cannot check that it joins, and says so before anything starts.
    assert out.splitlines()[0].startswith('[launch] warning: %s %s is not `d2lnets train`' % (sys.executable, WORKER))


def wait_for_workers(tmp_path, count=2):
    """``{pid: kvstore rank}`` once ``count`` workers joined the job."""
    def joined():
        ranks = {int(p.name): p.read_text() for p in (tmp_path / 'pids').iterdir()}
        return ranks if len(ranks) == count and all(r.isdigit() for r in ranks.values()) else None
    ranks = wait_for(joined, timeout=60)
    assert ranks, 'the workers did not join the job'
    return {pid: int(r) for pid, r in ranks.items()}


def test_killing_a_worker_stops_everything(tmp_path):
    proc, marker = start_launch(tmp_path, '-n', '2', '-s', '1', steps=1000, sleep=0.05)
    try:
        ranks = wait_for_workers(tmp_path)
        time.sleep(1.0)             # mid-run: both workers are pushing and pulling
        assert proc.poll() is None
        victim = max(ranks, key=ranks.get)
        os.kill(victim, signal.SIGKILL)
        started = time.monotonic()
        out, _ = proc.communicate(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        cleanup(proc, marker)
    assert proc.returncode == 128 + signal.SIGKILL, out
    assert '[launch] worker %d (kvstore rank %d, pid %d) was killed by SIGKILL: stopping all processes\n' % (
        ranks[victim], ranks[victim], victim) in out
    assert elapsed < 15
    assert not pids_with_env(marker), 'processes left behind'


def test_launch_without_command_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'd2lnets', 'launch', '-n', '2'], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        'd2lnets launch: error: no worker command given: put it after "--", e.g. '
        'd2lnets launch -n 2 -- d2lnets train lenet --kvstore dist_sync']


def test_failing_worker_command_fails_the_launch(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'd2lnets', 'launch', '-n', '2', '--timeout', '60', '--',
                           sys.executable, '-c', 'import sys; sys.exit(3)'],
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 3, proc.stdout


@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGHUP])
def test_the_job_dies_with_the_launcher(tmp_path, sig):
    # SIGKILL: no handler runs, the kernel's parent-death signal stops the children.
    # SIGHUP (a closed terminal, a lost ssh session): stopped as SIGTERM stops them.
    proc, marker = start_launch(tmp_path, '-n', '2', '-s', '1', steps=100000, sleep=0.05)
    try:
        wait_for_workers(tmp_path)
        job = pids_with_env(marker) - {proc.pid}
        assert len(job) == 4, job        # scheduler, server, 2 workers
        os.kill(proc.pid, sig)
        out, _ = proc.communicate(timeout=30)
        left = wait_for(lambda: not pids_with_env(marker), timeout=10) or pids_with_env(marker)
    finally:
        cleanup(proc, marker)
    assert left is True, 'left running: %s' % left
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 128 + signal.SIGHUP, out
        assert out.endswith('[launch] got SIGHUP: stopping all processes\n'), out


def test_train_without_a_dist_kvstore_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'd2lnets', 'launch', '-n', '2', '--', 'd2lnets', 'train', 'lenet',
                           '--out', str(tmp_path / 'run')], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.strip().splitlines() == [
        'd2lnets launch: error: the worker command `d2lnets train` has no --kvstore dist_sync (or dist_async): '
        'every worker would train alone, all into the same run folder; add --kvstore dist_sync']
    assert proc.stdout == '' and not (tmp_path / 'run').exists()


def test_check_worker_command_reads_the_cli_as_the_workers_will():
    from d2lnets.launch import check_worker_command
    py = sys.executable
    assert check_worker_command(['d2lnets', 'train', 'lenet', '--kvstore', 'dist_sync']) is None
    assert check_worker_command([py, '-m', 'd2lnets', 'train', 'lenet', '--kv=dist_async']) is None
    assert check_worker_command(['/opt/venv/bin/d2lnets', 'evaluate', 'runs/x']) is None
    for bad in (['d2lnets', 'train', 'lenet'], [py, '-m', 'd2lnets', 'train', 'lenet', '--kvstore', 'local']):
        with pytest.raises(ValueError, match='has no --kvstore dist_sync'):
            check_worker_command(bad)
    with pytest.raises(ValueError, match="not a valid `d2lnets train`: .*invalid choice: 'dist'"):
        check_worker_command(['d2lnets', 'train', 'lenet', '--kvstore', 'dist'])
    assert 'cannot check that it joins' in check_worker_command([py, 'my_script.py'])


def test_workers_that_never_join_are_reported(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'd2lnets', 'launch', '-n', '2', '--timeout', '60', '--',
                           sys.executable, '-c', 'pass'], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.splitlines()[-1] == ('[launch] warning: the workers finished, but the scheduler still '
                                            'waited for them: they never joined the parameter server '
                                            '(no dist kvstore)')
