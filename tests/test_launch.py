"""The parameter-server launcher, for real, over the loopback and across network namespaces."""
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from proctools import hosts_fixture, listening_addresses, pids_with_env

WORKER = str(Path(__file__).resolve().parent / 'dist_worker.py')


def start_launch(tmp_path, *launch_args, steps=3, sleep=0.0):
    marker = 'd2lnets-test-%s' % uuid.uuid4().hex
    (tmp_path / 'pids').mkdir()
    env = dict(os.environ, D2LNETS_TEST_MARK=marker, D2LNETS_TEST_PIDS=str(tmp_path / 'pids'),
               D2LNETS_TEST_STEPS=str(steps), D2LNETS_TEST_SLEEP=str(sleep), OMP_NUM_THREADS='1')
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
        # The launcher's last word (a child's late output may still follow it).
        assert [l for l in out.splitlines() if l.startswith('[launch]')][-1] == \
            '[launch] got SIGHUP: stopping all processes', out


def test_train_without_a_dist_kvstore_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'd2lnets', 'launch', '-n', '2', '--', 'd2lnets', 'train', 'lenet',
                           '--out', str(tmp_path / 'run')], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.strip().splitlines() == [
        'd2lnets launch: error: the worker command `d2lnets train` has no --kvstore dist_sync (or dist_async): '
        'every worker would train alone, all into the same run folder; add --kvstore dist_sync']
    assert proc.stdout == '' and not (tmp_path / 'run').exists()


def test_check_worker_command_reads_the_cli_as_the_workers_will():
    from d2lnets.cli import build_parser
    from d2lnets.training import launch
    py = sys.executable

    def check_worker_command(command):
        return launch.check_worker_command(command, build_parser().parse_args)
    assert check_worker_command(['d2lnets', 'train', 'lenet', '--kvstore', 'dist_sync']) is None
    assert check_worker_command([py, '-m', 'd2lnets', 'train', 'lenet', '--kv=dist_async']) is None
    assert check_worker_command(['/opt/venv/bin/d2lnets', 'evaluate', 'runs/x']) is None
    for bad in (['d2lnets', 'train', 'lenet'], [py, '-m', 'd2lnets', 'train', 'lenet', '--kvstore', 'local']):
        with pytest.raises(ValueError, match='has no --kvstore dist_sync'):
            check_worker_command(bad)
    with pytest.raises(ValueError, match="not a valid `d2lnets train`: .*invalid choice: 'dist'"):
        check_worker_command(['d2lnets', 'train', 'lenet', '--kvstore', 'dist'])
    assert 'cannot check that it joins' in check_worker_command([py, 'my_script.py'])
    # Without the CLI's parser a d2lnets command is not second-guessed.
    assert launch.check_worker_command(['d2lnets', 'train', 'lenet']) is None


def test_workers_that_never_join_are_reported(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'd2lnets', 'launch', '-n', '2', '--timeout', '60', '--',
                           sys.executable, '-c', 'pass'], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.splitlines()[-1] == ('[launch] warning: the workers finished, but the scheduler still '
                                            'waited for them: they never joined the parameter server '
                                            '(no dist kvstore)')


# --- across hosts: network namespaces, each a host with its own address ---

@pytest.fixture
def hosts():
    """Three hosts with their own addresses: network namespaces (root only, else skipped)."""
    yield from hosts_fixture()


def hosts_file(tmp_path, *lines):
    path = tmp_path / 'hosts'
    path.write_text(''.join(line + '\n' for line in lines))
    return str(path)


def test_across_hosts_a_killed_worker_stops_every_host(tmp_path, hosts):
    services, a, b = hosts.addresses
    proc, marker = start_launch(tmp_path, '-n', '2', '--hosts', hosts_file(tmp_path, services + ' 0', a, b),
                                '--remote', hosts.template, '--port', '9291', steps=100000, sleep=0.05)
    try:
        ranks = wait_for_workers(tmp_path)
        # Every process listens on its own host's address, nothing on the loopback or a wildcard.
        listening = listening_addresses(hosts.pids())
        assert {ip for socks in listening.values() for ip, _ in socks} == {services, a, b}, listening
        victim = max(ranks, key=ranks.get)       # rank 1: on a, the lower address
        os.kill(victim, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        left = wait_for(lambda: not hosts.pids(), timeout=10) or hosts.pids()
    finally:
        cleanup(proc, marker)
    assert proc.returncode == 128 + signal.SIGKILL, out
    assert ('[launch] %s worker 1 (kvstore rank 1, pid %d on %s) was killed by SIGKILL: stopping all processes\n'
            % (a, victim, a)) in out
    assert left is True, 'left running: %s' % left


@pytest.mark.parametrize('sig, lifeline_only', [(signal.SIGKILL, False), (signal.SIGKILL, True),
                                                (signal.SIGHUP, False)])
def test_across_hosts_nothing_outlives_the_launcher(tmp_path, hosts, sig, lifeline_only):
    # lifeline_only: as over ssh, the process on the host is out of reach of the launcher's
    # parent-death signal and its own parent lives on (the second `setsid -w`, in a session
    # of its own, survives the first): it must notice its stdin closing.
    services, a, b = hosts.addresses
    template = hosts.template.replace(' sh -c', ' setsid -w setsid -w sh -c') if lifeline_only else hosts.template
    proc, marker = start_launch(tmp_path, '-n', '2', '--hosts', hosts_file(tmp_path, services + ' 0', a, b),
                                '--remote', template, '--port', '9391', steps=100000, sleep=0.05)
    try:
        wait_for_workers(tmp_path)
        assert len(hosts.pids()) >= 4
        os.kill(proc.pid, sig)
        out, _ = proc.communicate(timeout=30)
        left = wait_for(lambda: not hosts.pids(), timeout=15) or hosts.pids()
    finally:
        cleanup(proc, marker)
    assert left is True, 'left running: %s' % left
    if sig == signal.SIGHUP:
        assert proc.returncode == 128 + signal.SIGHUP
        # The launcher's last word (a child's late output may still follow it).
        assert [l for l in out.splitlines() if l.startswith('[launch]')][-1] == \
            '[launch] got SIGHUP: stopping all processes', out


def test_across_hosts_a_host_that_cannot_start_fails_fast_with_its_name(tmp_path, hosts):
    services, a, _ = hosts.addresses
    missing = services.rsplit('.', 1)[0] + '.99'       # an address no namespace has
    for host_line, error in [(missing + ' 2', 'exited with status 255: Cannot open network namespace'),
                             (a + ' 2', 'exited with status 127: cannot run no-such-program on ')]:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, '-m', 'd2lnets', 'launch', '-n', '2', '--hosts',
                               hosts_file(tmp_path, services + ' 0', host_line), '--remote', hosts.template,
                               '--', 'no-such-program'], capture_output=True, text=True, timeout=60)
        assert time.monotonic() - started < 20
        assert proc.returncode == 1, proc.stdout
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and re.match(r'd2lnets launch: error: cannot start the worker \d on %s: the remote '
                                            r'command %s' % (re.escape(host_line.split()[0]), error), lines[0]), lines
        assert wait_for(lambda: not hosts.pids(), timeout=10)


def test_a_host_that_does_not_answer_fails_within_the_start_timeout(tmp_path):
    # A remote command that hangs (an unreachable host, a stuck ssh): the template sleeps.
    started = time.monotonic()
    proc = subprocess.run([sys.executable, '-m', 'd2lnets', 'launch', '-n', '1', '--hosts',
                           hosts_file(tmp_path, '192.0.2.1'), '--remote', 'sh -c "sleep 60" {host}',
                           '--start-timeout', '2', '--', 'd2lnets', 'train', 'lenet', '--kvstore', 'dist_sync'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.strip().splitlines() == [
        'd2lnets launch: error: the host 192.0.2.1 did not start the scheduler within 2 s: is it reachable, and '
        'does the remote command work (try it by hand)?']
    assert time.monotonic() - started < 20


def test_hosts_file_and_placement(tmp_path):
    from d2lnets.training.launch import place, read_hosts, remote_command
    path = hosts_file(tmp_path, '# scheduler here', 'alpha 0', 'beta 2  # two workers', 'gamma slots=1')
    hosts = read_hosts(path)
    assert hosts == [('alpha', 0), ('beta', 2), ('gamma', 1)]
    assert place(hosts, 3) == ['beta', 'beta', 'gamma']
    with pytest.raises(ValueError, match='-n 4 workers need 4 slots, the hosts file gives 3'):
        place(hosts, 4)
    with pytest.raises(ValueError, match=r'hosts:2: expected "HOST \[SLOTS\]"'):
        read_hosts(hosts_file(tmp_path, 'alpha', 'beta two'))
    with pytest.raises(ValueError, match='lists no host'):
        read_hosts(hosts_file(tmp_path, '# nothing'))
    with pytest.raises(OSError, match='cannot read the hosts file'):
        read_hosts(str(tmp_path / 'absent'))
    # The whole environment goes on the command line, quoted for the remote shell.
    cmd = remote_command('ssh -o BatchMode=yes {host}', 'beta', {'DMLC_ROLE': 'worker', 'D2LNETS_X': 'a b'},
                         ['d2lnets', 'train', 'lenet'])
    assert cmd[:4] == ['ssh', '-o', 'BatchMode=yes', 'beta'] and len(cmd) == 5
    assert " && exec env D2LNETS_X='a b' DMLC_ROLE=worker " in cmd[4]
    assert cmd[4].endswith(' -m d2lnets.training.launch --child --threads-divisor 1 -- d2lnets train lenet')
    with pytest.raises(ValueError, match='has no {host}'):
        remote_command('ssh', 'beta', {}, ['true'])


@pytest.fixture
def sshd_hosts(hosts, tmp_path):
    """``hosts`` with a real sshd (Debian's openssh-server) on each, a key made here, and an ssh
    template run from the first host (the launcher's own namespace cannot reach theirs)."""
    if shutil.which('sshd') is None and not os.path.exists('/usr/sbin/sshd'):
        pytest.skip('no sshd: apt-get install openssh-server')
    keys = tmp_path / 'ssh'
    keys.mkdir()
    for name in ('host_key', 'client_key'):
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(keys / name)], check=True)
    (keys / 'authorized_keys').write_text((keys / 'client_key.pub').read_text())
    (keys / 'sshd_config').write_text(
        'HostKey %s\nAuthorizedKeysFile %s\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n'
        'KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n' % (keys / 'host_key', keys / 'authorized_keys'))
    os.makedirs('/run/sshd', exist_ok=True)          # sshd's privilege-separation directory
    daemons = [subprocess.Popen(['ip', 'netns', 'exec', name, '/usr/sbin/sshd', '-D', '-e', '-f',
                                 str(keys / 'sshd_config'), '-o', 'ListenAddress=%s' % address],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for name, address in zip(hosts.names, hosts.addresses)]
    try:
        ssh = ('ssh -i %s -o BatchMode=yes -o ConnectTimeout=10 -o StrictHostKeyChecking=no '
               '-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR {host}' % (keys / 'client_key'))
        template = 'ip netns exec %s %s' % (hosts.names[0], ssh)
        assert wait_for(lambda: subprocess.run(shlex.split(template.replace('{host}', hosts.addresses[1])) + ['true'],
                                               capture_output=True, timeout=20).returncode == 0, timeout=20), \
            'sshd did not come up'
        yield hosts, template, {d.pid for d in daemons}
    finally:
        for d in daemons:
            d.kill()
            d.wait()


@pytest.mark.parametrize('kill_launcher', [False, True])
def test_over_real_ssh(tmp_path, sshd_hosts, kill_launcher):
    hosts, template, daemons = sshd_hosts
    services, a, b = hosts.addresses
    proc, marker = start_launch(tmp_path, '-n', '2', '--hosts', hosts_file(tmp_path, services + ' 0', a, b),
                                '--remote', template, '--port', '9491', steps=100000 if kill_launcher else 5,
                                sleep=0.05)
    try:
        if kill_launcher:
            wait_for_workers(tmp_path)
            os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        # Besides the sshd daemons, nothing on any host: sessions, the launch children, the workers.
        left = wait_for(lambda: not (hosts.pids() - daemons), timeout=15) or hosts.pids() - daemons
    finally:
        cleanup(proc, marker)
    assert left is True, 'left running: %s' % left
    if not kill_launcher:
        assert proc.returncode == 0, out
        assert sorted(line.split(' holds')[0] for line in out.splitlines() if 'holds' in line) == sorted([
            '[%s worker 0] rank 0 of 2' % b, '[%s worker 1] rank 1 of 2' % a])


def test_over_real_ssh_user_at_host_and_a_port(tmp_path, sshd_hosts):
    # USER@HOST goes to ssh as it is, USER@HOST:PORT as ssh://USER@HOST:PORT; the processes dial HOST.
    hosts, template, daemons = sshd_hosts
    services, a, b = hosts.addresses
    proc, marker = start_launch(tmp_path, '-n', '2', '--hosts', hosts_file(tmp_path, services + ' 0', 'root@' + a,
                                                                           'root@%s:22' % b),
                                '--remote', template, '--port', '9591', steps=5)
    try:
        out, _ = proc.communicate(timeout=60)
        left = wait_for(lambda: not (hosts.pids() - daemons), timeout=15) or hosts.pids() - daemons
    finally:
        cleanup(proc, marker)
    assert proc.returncode == 0, out
    assert sorted(line.split(' holds')[0] for line in out.splitlines() if 'holds' in line) == sorted([
        '[root@%s:22 worker 0] rank 0 of 2' % b, '[root@%s worker 1] rank 1 of 2' % a])
    assert left is True, 'left running: %s' % left


def test_over_real_ssh_a_worker_ignoring_sigterm_is_gone_at_the_second_signal(tmp_path, sshd_hosts):
    # The worker ignores SIGTERM. Over ssh it does not wait for a grace: the first signal ends ssh, sshd ends
    # the session, and the child on the host, whose parent-death signal is SIGKILL, takes the worker with it.
    hosts, template, daemons = sshd_hosts
    services, a, _ = hosts.addresses
    marker = 'd2lnets-test-%s' % uuid.uuid4().hex
    code = ('import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print("ready", flush=True); '
            'time.sleep(120)')
    log = tmp_path / 'out'
    with open(log, 'w') as out:
        proc = subprocess.Popen([sys.executable, '-m', 'd2lnets', 'launch', '-n', '1', '--hosts',
                                 hosts_file(tmp_path, services + ' 0', a), '--remote', template, '--port', '9691',
                                 '--', sys.executable, '-c', code], stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ, D2LNETS_TEST_MARK=marker), start_new_session=True)
    try:
        assert wait_for(lambda: '[%s worker 0] ready' % a in log.read_text(), timeout=60), log.read_text()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        second = time.monotonic()
        gone = wait_for(lambda: not pids_with_env(marker), timeout=15)
        hurried = time.monotonic() - second
        proc.wait(30)
        left = wait_for(lambda: not (hosts.pids() - daemons), timeout=15) or hosts.pids() - daemons
    finally:
        cleanup(proc, marker)
    assert proc.returncode == 128 + signal.SIGTERM, log.read_text()
    assert gone is True and hurried < 2.5, (hurried, log.read_text())     # not the 5 s grace on the host
    assert left is True, 'left running: %s' % left


def test_workers_share_the_cores_unless_the_user_chose_the_threads():
    from d2lnets.io import usable_cores
    code = 'import os; print("threads", os.environ["OMP_NUM_THREADS"])'
    for env, expected in (({}, str(max(1, usable_cores() // 2))), ({'OMP_NUM_THREADS': '3'}, '3')):
        base = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'}
        proc = subprocess.run([sys.executable, '-m', 'd2lnets', 'launch', '-n', '2', '--', sys.executable, '-c', code],
                              capture_output=True, text=True, timeout=120, env=dict(base, **env))
        threads = sorted(line.split('threads ')[1] for line in proc.stdout.splitlines() if 'threads ' in line)
        assert threads == [expected, expected], proc.stdout + proc.stderr


def test_the_scheduler_goes_where_host_says(tmp_path):
    # A remote command that hangs names the host that was to start the scheduler (numeric
    # addresses, and a template that only sleeps: nothing is contacted).
    proc = subprocess.run([sys.executable, '-m', 'd2lnets', 'launch', '-n', '1', '--hosts',
                           hosts_file(tmp_path, '192.0.2.1', '192.0.2.2 0'), '--host', '192.0.2.2',
                           '--remote', 'sh -c "sleep 60" {host}', '--start-timeout', '2', '--',
                           'd2lnets', 'train', 'lenet', '--kvstore', 'dist_sync'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.strip().splitlines()[0].startswith(
        'd2lnets launch: error: the host 192.0.2.2 did not start the scheduler within 2 s')
