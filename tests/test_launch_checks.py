"""What `d2lnets launch` checks before anything starts, how its child speaks out of band, how it stops
when interrupted twice, and a parameter-server job of one worker (training, checkpoints, resume)."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from proctools import pids_with_env

PY = sys.executable
ERROR = 'd2lnets launch: error: '
LOCAL = 'env D2LNETS_TEST_HOST={host} sh -c'       # a "remote" template that runs on this host


def launch(*args, env=None, timeout=60):
    return subprocess.run([PY, '-m', 'd2lnets', 'launch', *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, **(env or {})))


def hosts_file(tmp_path, text):
    path = tmp_path / 'hosts'
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize('args, error', [
    (['-n', '2000'], '-n 2000 -s 1 asks for 2001 processes; a job has at most 1024 workers and servers'),
    (['-n', '1', '--port', '70000'], '--port must be a port from 1 to 65535, got 70000'),
    (['-n', '1', '--timeout', 'inf'], '--timeout must be a number of seconds above 0 and at most 2592000 '
                                      '(30 days), got inf'),
    (['-n', '1', '--timeout', 'nan'], '--timeout must be a number of seconds above 0 and at most 2592000 '
                                      '(30 days), got nan'),
    (['-n', '1', '--timeout', '-1'], '--timeout must be a number of seconds above 0 and at most 2592000 '
                                     '(30 days), got -1.0'),
    (['-n', '1', '--host', '127.0.0.1;true'], "the scheduler's host (--host) '127.0.0.1;true' is not a host "
                                              'name or address: use letters, digits, ".", "-" and "_", at most '
                                              '253, not starting with "-"'),
])
def test_counts_ports_seconds_and_hosts_are_checked_before_anything_starts(args, error):
    proc = launch(*args, '--', PY, '-c', 'pass', timeout=30)
    assert (proc.returncode, proc.stderr.splitlines()) == (1, [ERROR + error]), proc.stdout
    assert all(line.startswith('[launch] warning: ') for line in proc.stdout.splitlines())    # nothing started
    assert proc.stdout == ''


def test_a_job_is_one_frozen_value_each_launcher_checks(tmp_path):
    """The CLI builds one launch.Job, None for what the user did not give; each launcher fills in its own
    defaults and checks the whole value before anything starts, so --port 0 is refused across hosts as on
    this host (the CLI turned it into 9091 before, and --host '' into 127.0.0.1)."""
    import dataclasses
    import io
    from d2lnets.training.launch import Job, launch as launch_here, launch_hosts
    job = Job([PY, '-c', 'pass'], 2)
    assert job.command == (PY, '-c', 'pass')
    assert (job.num_servers, job.host, job.port, job.timeout, job.remote) == (1, None, None, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.port = 9091
    with pytest.raises(ValueError, match=r"^the worker command is a sequence of words, such as \['d2lnets', "):
        Job('d2lnets train lenet', 2)
    out = io.StringIO()
    with pytest.raises(ValueError, match=r'^--port must be a port from 1 to 65535, got 0$'):
        launch_here(dataclasses.replace(job, port=0), out)
    with pytest.raises(ValueError, match=r'^--port must be a port from 1 to 65532 \(its 3 servers and workers '):
        launch_hosts(dataclasses.replace(job, port=0), [('127.0.0.1', 2)], out)
    with pytest.raises(ValueError, match=r"^the scheduler's host \(--host\) '' is not a host name or address"):
        launch_here(dataclasses.replace(job, host=''), out)
    assert out.getvalue() == ''
    proc = launch('-n', '1', '--hosts', hosts_file(tmp_path, '127.0.0.1\n'), '--remote', LOCAL, '--port', '0',
                  '--', PY, '-c', 'pass', timeout=30)
    assert (proc.returncode, proc.stdout) == (1, '')
    assert proc.stderr.splitlines() == [ERROR + '--port must be a port from 1 to 65533 (its 2 servers and workers '
                                                'listen on the ports after it), got 0']


def test_a_worker_program_that_cannot_run_is_refused_before_anything_starts():
    proc = launch('-n', '1', '--', 'no-such-program', '--flag')
    assert (proc.returncode, proc.stdout) == (1, '')
    assert proc.stderr.splitlines() == [
        ERROR + 'cannot run the worker command: no-such-program is not a program on PATH; give a program that '
        'exists (e.g. d2lnets, or %s -m d2lnets)' % PY]


@pytest.mark.parametrize('worker', [
    ['d2lnets', '--debug', 'train', 'lenet'],
    [PY, '-X', 'dev', '-m', 'd2lnets', '--debug', 'train', 'lenet'],
    [PY, '-uEm', 'd2lnets', 'train', 'lenet', '--kvstore', 'local'],
    ['env', 'D2LNETS_X=1', 'd2lnets', '--debug', 'train', 'lenet', '--limit', '64', '--epochs', '1'],
    ['/usr/bin/env', 'A=1', 'B=2', PY, '-m', 'd2lnets', 'train', 'lenet', '--limit', '64', '--epochs', '1'],
])
def test_the_dist_kvstore_check_reads_global_and_python_options(tmp_path, worker):
    proc = launch('-n', '2', '--', *worker, '--out', str(tmp_path / 'run'), timeout=30)
    assert (proc.returncode, proc.stdout) == (1, '')
    assert proc.stderr.splitlines() == [
        ERROR + 'the worker command `d2lnets train` has no --kvstore dist_sync (or dist_async): every worker '
        'would train alone, all into the same run folder; add --kvstore dist_sync']
    assert not (tmp_path / 'run').exists()


def test_a_global_option_after_the_command_is_the_workers_usage_error(tmp_path):
    # `d2lnets train ... --debug`: --debug is d2lnets' own option, before the command; the workers would
    # refuse it, and so does launch, before anything starts.
    proc = launch('-n', '2', '--', 'd2lnets', 'train', 'lenet', '--kvstore', 'dist_sync', '--debug', timeout=30)
    assert (proc.returncode, proc.stdout) == (1, '')
    assert proc.stderr.splitlines() == [
        ERROR + 'the worker command is not a valid `d2lnets train`: d2lnets: error: unrecognized arguments: --debug '
        '(see d2lnets --help)']


def test_a_variable_name_never_reaches_the_hosts_shell(tmp_path):
    pwned = tmp_path / 'pwned'
    name = 'MXNET_X$(touch %s)' % pwned
    proc = launch('-n', '1', '--hosts', hosts_file(tmp_path, '127.0.0.1\n'), '--remote', LOCAL, '--timeout', '20',
                  '--', PY, '-c', 'pass', env={name: '1'})
    assert not pwned.exists()
    assert proc.returncode == 1, proc.stdout
    assert all(line.startswith('[launch] warning: ') for line in proc.stdout.splitlines())    # nothing started
    assert proc.stderr.splitlines() == [
        ERROR + 'the environment variable %r cannot be passed to the hosts: its name is not an identifier '
        '(letters, digits and "_"); unset it' % name]


@pytest.mark.parametrize('kind', ['fifo', 'big', 'lines', 'host'])
def test_the_hosts_file_is_read_within_limits(tmp_path, kind):
    path = tmp_path / 'hosts'
    fix = 'give a text file, one host a line'
    if kind == 'fifo':
        os.mkfifo(path)         # opening it to read would wait for a writer forever
        error = 'the hosts file %s is damaged (not a regular file); %s' % (path, fix)
    elif kind == 'big':
        path.write_text('# padding\n' * 200000)
        error = ('the hosts file %s is damaged (2000000 bytes, more than the 1048576 a file of its kind can have); %s'
                 % (path, fix))
    elif kind == 'lines':
        path.write_text('127.0.0.1\n' + '\n' * 20000)      # 20001 lines in 20011 bytes
        error = 'the hosts file %s is damaged (20001 lines, more than the 16384 a file of its kind can have); %s' % (
            path, fix)
    else:
        path.write_text('127.0.0.1\n-oProxyCommand=touch 2\n')
        error = '%s:2: the host \'-oProxyCommand=touch\' is not a host: %s' % (path, NOT_A_HOST)
    proc = launch('-n', '1', '--hosts', str(path), '--remote', LOCAL, '--', PY, '-c', 'pass', timeout=20)
    assert (proc.returncode, proc.stderr.splitlines()) == (1, [ERROR + error]), proc.stdout
    assert all(line.startswith('[launch] warning: ') for line in proc.stdout.splitlines())    # nothing started


NOT_A_HOST = ('give [USER@]HOST[:PORT], HOST a name or IPv4 address of letters, digits, ".", "-" and "_" (at most '
              '253, not starting with "-"), USER likewise, PORT from 1 to 65535')
IPV6 = ("is an IPv6 address: MXNet 1.9.1's parameter server (ps-lite) connects over IPv4 only; give the host's IPv4 "
        "address or a name")


@pytest.mark.parametrize('host, error', [
    ('[::1]:22', IPV6), ('::1', IPV6), ('root@[::1]', IPV6),
    ('root@-oProxyCommand=touch', NOT_A_HOST), ('a@b@127.0.0.1', NOT_A_HOST), ('_@127.0.0.1:22:', IPV6),
    ('127.0.0.1:0', NOT_A_HOST), ('127.0.0.1:70000', NOT_A_HOST), ('127.0.0.1:', NOT_A_HOST),
    ('127.0.0.1:22;true', NOT_A_HOST), ('$(id)@127.0.0.1', NOT_A_HOST),
])
def test_a_host_string_is_checked_before_anything_starts(tmp_path, host, error):
    for hosts, extra, what in ((host, [], '%s:1: the host' % (tmp_path / 'hosts')),
                               ('127.0.0.1', ['--host', host], "the scheduler's host (--host)")):
        args = ['--hosts', hosts_file(tmp_path, hosts + '\n'), *extra]
        proc = launch('-n', '1', *args, '--remote', LOCAL, '--', PY, '-c', 'pass', timeout=20)
        assert (proc.returncode, proc.stderr.splitlines()) == (1, [ERROR + '%s %r %s' % (
            what, host, error if error is IPV6 else 'is not a host: ' + error)]), proc.stdout
        assert all(line.startswith('[launch] warning: ') for line in proc.stdout.splitlines())  # nothing started
    assert os.listdir(tmp_path) == ['hosts']


def test_user_at_host_and_a_port_reach_the_remote_command_as_ssh_reads_them(tmp_path):
    # {host} is what ssh takes: USER@HOST as it is, a port as ssh://USER@HOST:PORT; the processes dial HOST.
    code = ('import os, d2lnets, mxnet as mx; kv = mx.kv.create("dist_sync"); '
            'print("rank", kv.rank, "via", os.environ["D2LNETS_TEST_HOST"], flush=True)')
    proc = launch('-n', '2', '--hosts', hosts_file(tmp_path, 'root@127.0.0.1\nuser_1@localhost:2222\n'),
                  '--remote', LOCAL, '--timeout', '60', '--', PY, '-c', code, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    said = sorted(line.split('] ', 1)[1] for line in proc.stdout.splitlines() if ' via ' in line)
    assert said == ['rank 0 via root@127.0.0.1', 'rank 1 via ssh://user_1@localhost:2222'], proc.stdout
    assert '[launch] done; worker 0 ran on root@127.0.0.1: a run folder it wrote is there' in proc.stdout


def test_a_worker_printing_the_launchers_words_neither_hangs_nor_lies(tmp_path):
    # A malformed "started" line, then more than a pipe holds, then a false "ended 0", then status 3.
    code = ('import sys; print("d2lnets-launch: started pid x"); print("y" * 200000); '
            'print("d2lnets-launch: ended 0", flush=True); sys.exit(3)')
    proc = launch('-n', '1', '--hosts', hosts_file(tmp_path, '127.0.0.1\n'), '--remote', LOCAL, '--timeout', '60',
                  '--', PY, '-c', code, timeout=90)
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr
    assert '[127.0.0.1 worker 0] d2lnets-launch: started pid x\n' in proc.stdout
    assert '[127.0.0.1 worker 0] d2lnets-launch: ended 0\n' in proc.stdout
    assert '[launch] 127.0.0.1 worker 0 (kvstore rank 0, pid ' in proc.stdout


def test_an_output_line_is_passed_on_in_pieces_of_64_kib():
    proc = launch('-n', '1', '--', PY, '-c', 'import sys; sys.stdout.write("z" * 200000)')
    assert proc.returncode == 0, proc.stderr
    pieces = [line for line in proc.stdout.splitlines() if line.startswith('[worker 0] z')]
    assert [len(p) - len('[worker 0] ') for p in pieces] == [65536, 65536, 65536, 200000 - 3 * 65536]


def test_a_second_sigterm_kills_at_once_and_leaves_nothing(tmp_path):
    marker = 'd2lnets-test-%s' % uuid.uuid4().hex
    code = ('import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print("ready", flush=True); '
            'time.sleep(120)')
    log = open(tmp_path / 'out', 'w')
    proc = subprocess.Popen([PY, '-m', 'd2lnets', 'launch', '-n', '1', '--', PY, '-c', code], stdout=log,
                            stderr=subprocess.STDOUT, env=dict(os.environ, D2LNETS_TEST_MARK=marker),
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while '[worker 0] ready' not in (tmp_path / 'out').read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)         # the launcher sends SIGTERM, which the worker ignores, and waits 5 s
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        proc.wait(30)
        hurried = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in pids_with_env(marker):
            os.kill(pid, signal.SIGKILL)
    out = (tmp_path / 'out').read_text()
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert [l for l in out.splitlines() if l.startswith(('[launch]', 'd2lnets'))] == [
        '[launch] warning: %s -c %r is not `d2lnets train`, so launch cannot check that it joins the parameter '
        'server: unless it creates a dist kvstore (mx.kv.create(\'dist_sync\')), every worker runs alone and the '
        'scheduler waits for them in vain' % (PY, code),
        '[launch] got SIGTERM: stopping all processes', '[launch] interrupted again: killing all processes']
    assert hurried < 4          # not the 5 s grace
    assert not pids_with_env(marker), 'processes left behind'


def test_one_worker_job_trains_checkpoints_and_resumes(tmp_path):
    run = tmp_path / 'run'
    train = [PY, '-m', 'd2lnets', 'train', '--quiet']
    first = launch('-n', '1', '--', *train, 'lenet', '--kvstore', 'dist_sync', '--epochs', '1', '--batch-size', '64',
                   '--limit', '256', '--seed', '3', '--out', str(run), timeout=180)
    assert first.returncode == 0, first.stdout + first.stderr
    state = json.loads((run / 'checkpoint' / 'latest.json').read_text())
    assert state['epoch'] == 1 and state['trainer'] is None      # the servers hold the trainer state
    second = launch('-n', '1', '--', *train, '--resume', str(run), '--epochs', '2', timeout=180)
    assert second.returncode == 0, second.stdout + second.stderr
    meta = json.loads((run / 'meta.json').read_text())
    assert meta['epochs_done'] == 2 and meta['recipe']['num_workers'] == 1
    assert json.loads((run / 'checkpoint' / 'latest.json').read_text())['history']['epoch'] == [1, 2]
    assert (run / 'model.params').is_file() and (run / 'curves.png').is_file()
