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
    assert sorted(line.split(']')[0] for line in lines) == ['[worker 0', '[worker 1']
    assert sorted(line.split()[3] for line in lines) == ['0', '1']       # the two kvstore ranks
    assert wait_for(lambda: not pids_with_env(marker), timeout=10)


def test_killing_a_worker_stops_everything(tmp_path):
    proc, marker = start_launch(tmp_path, '-n', '2', '-s', '1', steps=1000, sleep=0.05)
    try:
        worker_pids = wait_for(lambda: [int(p.name) for p in (tmp_path / 'pids').iterdir()]
                               if len(list((tmp_path / 'pids').iterdir())) == 2 else None, timeout=30)
        assert worker_pids
        time.sleep(1.0)             # mid-run: both workers are pushing and pulling
        assert proc.poll() is None
        os.kill(worker_pids[0], signal.SIGKILL)
        started = time.monotonic()
        out, _ = proc.communicate(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        cleanup(proc, marker)
    assert proc.returncode == 128 + signal.SIGKILL, out
    assert 'a worker failed (exit status 137): stopping all processes' in out
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
