"""Start MXNet's parameter server on one host: scheduler, servers, workers.

Each role is a process with MXNet's documented environment (``DMLC_ROLE``,
``DMLC_PS_ROOT_URI``, ``DMLC_PS_ROOT_PORT``, ``DMLC_NUM_WORKER``,
``DMLC_NUM_SERVER``) and ``DMLC_NODE_HOST``/``DMLC_INTERFACE`` pinned to the
loopback, since otherwise servers and workers listen on the machine's outward
address. Scheduler and servers are ``python -c "import mxnet"``: importing
MXNet with a server role runs the server loop until the workers are done.

Every process runs in its own session (process group), so stopping one stops
whatever it started too, and dies with the launcher (Linux's
``PR_SET_PDEATHSIG``), even when the launcher is killed with SIGKILL. When a
worker fails, all others are stopped and the launcher returns that worker's
failure; SIGTERM, SIGHUP and SIGINT stop everything too.
"""
import contextlib
import ctypes
import io
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, TextIO

SERVER_COMMAND = [sys.executable, '-c', 'import mxnet']
PR_SET_PDEATHSIG = 1        # from <linux/prctl.h>
# Looked up once here: the child calls it between fork and exec, where it should do as little as it can.
_prctl = getattr(ctypes.CDLL(None, use_errno=True), 'prctl', None) if sys.platform.startswith('linux') else None


def free_port(host: str = '127.0.0.1') -> int:
    """A TCP port on ``host`` that nothing listens on now."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = '127.0.0.1') -> List[int]:
    """``count`` different TCP ports on ``host`` that nothing listens on now, ascending."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:      # all bound at once, so the kernel gives different ones
            s.bind((host, 0))
        return sorted(s.getsockname()[1] for s in socks)


def role_env(role: str, num_workers: int, num_servers: int, host: str, port: int,
             base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment of one process of the given ``role``."""
    env = dict(os.environ if base is None else base)
    env.update({
        'DMLC_ROLE': role,
        'DMLC_PS_ROOT_URI': host,
        'DMLC_PS_ROOT_PORT': str(port),
        'DMLC_NUM_WORKER': str(num_workers),
        'DMLC_NUM_SERVER': str(num_servers),
        # Bind servers and workers to the same host as the scheduler.
        'DMLC_NODE_HOST': host,
    })
    if host.startswith('127.'):
        env['DMLC_INTERFACE'] = 'lo'
    # Share the cores among the workers unless the user chose.
    if 'OMP_NUM_THREADS' not in (base or os.environ):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)
        env['OMP_NUM_THREADS'] = str(max(1, cores // num_workers) if role == 'worker' else 1)
    return env


def signal_name(signum: int) -> str:
    """``'SIGKILL'`` for 9; ``'signal 99'`` for a number Python has no name for."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return 'signal %d' % signum


def _die_with(launcher_pid: int) -> Callable[[], None]:
    # Runs in the child between fork and exec: ask the kernel for SIGKILL when the
    # launcher dies. The launcher may have died before prctl ran: then the child
    # is already someone else's (getppid changed), and it goes at once.
    def preexec() -> None:
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != launcher_pid:
            os.kill(os.getpid(), signal.SIGKILL)
    return preexec


class _Proc:
    """One process of the job, its output prefixed with ``[label]``."""

    def __init__(self, label: str, role: str, command: Sequence[str], env: Dict[str, str]):
        self.label, self.role = label, role
        # The child's death signal fires when the thread that started it ends: the
        # launcher starts every child from the thread that waits for them.
        self.popen = subprocess.Popen(list(command), env=env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      start_new_session=True, bufsize=1, text=True, errors='replace',
                                      preexec_fn=_die_with(os.getpid()))
        self.thread: Optional[threading.Thread] = None

    def pump(self, out: TextIO) -> None:
        """Copy the output to ``out`` line by line, in a thread."""
        self.thread = threading.Thread(target=self._pump, args=(out,), daemon=True)
        self.thread.start()

    def _pump(self, out: TextIO) -> None:
        for line in self.popen.stdout:
            out.write('[%s] %s' % (self.label, line if line.endswith('\n') else line + '\n'))
            out.flush()

    def poll(self) -> Optional[int]:
        return self.popen.poll()

    def stop(self, sig: int) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def describe(self) -> str:
        """How it ended: ``'worker 1 (kvstore rank 1, pid 42) was killed by SIGKILL'``."""
        code = self.popen.returncode
        how = ('was killed by %s' % signal_name(-code)) if code < 0 else 'exited with status %d' % code
        rank = 'kvstore rank %s, ' % self.label.split()[-1] if self.role == 'worker' else ''
        return '%s (%spid %d) %s' % (self.label, rank, self.popen.pid, how)


def exit_status(code: int) -> int:
    """A child's return code as a shell reports it: 128 + N for a child killed by signal N."""
    return 128 - code if code < 0 else code


# --- the worker command: does it join the parameter server? ---

def _d2lnets_args(command: Sequence[str]) -> Optional[List[str]]:
    # `d2lnets ARGS`, `/path/to/d2lnets ARGS` or `python -m d2lnets ARGS` -> ARGS; else None.
    if os.path.basename(command[0]) == 'd2lnets':
        return list(command[1:])
    if 'python' in os.path.basename(command[0]) and '-m' in command[1:]:
        i = list(command).index('-m')
        if command[i + 1:i + 2] == ['d2lnets']:
            return list(command[i + 2:])
    return None


def check_worker_command(command: Sequence[str]) -> Optional[str]:
    """Refuse a ``d2lnets train`` that does not join the parameter server.

    Returns a warning for a command that is not d2lnets' own (launch cannot tell
    whether it creates a dist kvstore), ``None`` for one that is fine.

    Raises
    ------
    ValueError
        ``d2lnets train`` without ``--kvstore dist_sync``/``dist_async``: every
        worker would train alone, all into the same run folder.
    """
    args = _d2lnets_args(command)
    if args is None:
        return ('%s is not `d2lnets train`, so launch cannot check that it joins the parameter server: '
                'unless it creates a dist kvstore (mx.kv.create(\'dist_sync\')), every worker runs alone '
                'and the scheduler waits for them in vain' % shlex.join(command))
    if args[:1] != ['train']:
        return None
    from .cli import build_parser
    # The CLI's own parser reads the worker's arguments as the workers will; its
    # complaints (usage and error) are kept from the terminal.
    with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.redirect_stdout(io.StringIO()):
        try:
            parsed = build_parser().parse_args(args)
        except SystemExit:
            lines = err.getvalue().strip().splitlines()
            raise ValueError('the worker command is not a valid `d2lnets train`: %s'
                             % (lines[-1] if lines else 'see d2lnets train --help')) from None
    if not parsed.kvstore.startswith('dist_'):
        raise ValueError('the worker command `d2lnets train` has no --kvstore dist_sync (or dist_async): every '
                         'worker would train alone, all into the same run folder; add --kvstore dist_sync')
    return None


# --- the steps of a job ---

class _Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal_name(signum))
        self.signum = signum


@contextlib.contextmanager
def _signals_stop_the_job() -> Iterator[None]:
    # SIGTERM and SIGHUP (a closed terminal, a lost ssh session) stop the job as
    # Ctrl-C does. Signal handlers can be set only in the main thread.
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum, frame):
        raise _Interrupted(signum)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _start(procs: List[_Proc], command: Sequence[str], num_workers: int, num_servers: int,
           host: str, port: int) -> None:
    # Appends as it starts, so that whatever started is stopped if a later start fails.
    # Each server and worker listens on a port chosen here (ps-lite's PORT): the
    # scheduler ranks the workers of one host by ascending port, so worker i gets
    # kvstore rank i, and a PORT in the user's environment cannot make them collide.
    ports = free_ports(num_servers + num_workers, host)

    def env(role: str, index: int) -> Dict[str, str]:
        e = role_env(role, num_workers, num_servers, host, port)
        if index >= 0:
            e['PORT'] = str(ports[index])
        return e
    procs.append(_Proc('scheduler', 'scheduler', SERVER_COMMAND, env('scheduler', -1)))
    for i in range(num_servers):
        procs.append(_Proc('server %d' % i, 'server', SERVER_COMMAND, env('server', i)))
    for i in range(num_workers):
        procs.append(_Proc('worker %d' % i, 'worker', command, env('worker', num_servers + i)))


def _check(procs: List[_Proc], state: Dict[str, float], grace: float, out: TextIO) -> Optional[int]:
    """One look at the job: its exit status once it is over, else ``None``."""
    workers = [p for p in procs if p.role == 'worker']
    codes = [w.poll() for w in workers]
    failed = [w for w, c in zip(workers, codes) if c not in (None, 0)]
    if failed:
        out.write('[launch] %s: stopping all processes\n' % failed[0].describe())
        return exit_status(failed[0].popen.returncode)
    if all(c == 0 for c in codes):
        return 0
    # A scheduler or server that leaves early leaves the workers waiting forever.
    # (They leave with status 0 as the last worker finalizes: give the workers a moment.)
    lost = [p for p in procs if p.role != 'worker' and p.poll() is not None]
    if lost and all(p.popen.returncode == 0 for p in lost):
        state.setdefault('lost_since', time.monotonic())
        if time.monotonic() - state['lost_since'] < grace:
            return None
    if lost:
        out.write('[launch] the %s stopped before the workers finished: stopping all processes\n'
                  % lost[0].describe())
        return 1
    return None


def _wait(procs: List[_Proc], timeout: Optional[float], grace: float, out: TextIO) -> int:
    """Poll the job until it is over; its exit status."""
    deadline = None if timeout is None else time.monotonic() + timeout
    state: Dict[str, float] = {}
    while True:
        status = _check(procs, state, grace, out)
        if status is not None:
            return status
        if deadline is not None and time.monotonic() > deadline:
            out.write('[launch] timed out after %g s: stopping all processes\n' % timeout)
            return 124
        time.sleep(0.1)


def _finish(procs: List[_Proc], grace: float, out: TextIO) -> None:
    # Scheduler and servers leave by themselves once the workers finalize; one
    # still waiting means the workers never joined it.
    services = [p for p in procs if p.role != 'worker']
    deadline = time.monotonic() + grace
    for p in services:
        try:
            p.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            out.write('[launch] warning: the workers finished, but the %s still waited for them: they never '
                      'joined the parameter server (no dist kvstore)\n' % p.label)
            return


def _stop_all(procs: List[_Proc], grace: float) -> None:
    """SIGTERM to every process group, SIGKILL to those still there after ``grace`` seconds."""
    for p in procs:
        p.stop(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.stop(signal.SIGKILL)
            p.popen.wait()
    for p in procs:
        if p.thread is not None:
            p.thread.join(1.0)


def launch(command: Sequence[str], num_workers: int, num_servers: int = 1, host: str = '127.0.0.1',
           port: Optional[int] = None, timeout: Optional[float] = None, grace: float = 5.0,
           out: TextIO = sys.stdout) -> int:
    """Run ``command`` as ``num_workers`` workers of a parameter-server job.

    Parameters
    ----------
    command : sequence of str
        The worker's command, e.g. ``['d2lnets', 'train', 'lenet', '--kvstore', 'dist_sync']``.
    num_workers, num_servers : int
        Number of worker and server processes (one scheduler besides).
    host, port : str, int
        Where the scheduler listens; the port is a free one by default.
    timeout : float, optional
        Stop everything and fail after this many seconds.
    grace : float
        Seconds between SIGTERM and SIGKILL when stopping.

    Returns
    -------
    int
        0 when every worker succeeded; else the first failure's exit status
        (128 + signal number for a killed worker, 124 for a timeout, 128 +
        the signal's number when the launcher got SIGINT, SIGTERM or SIGHUP).
    """
    if not command:
        raise ValueError('no worker command given: put it after "--", e.g. '
                         'd2lnets launch -n 2 -- d2lnets train lenet --kvstore dist_sync')
    if num_workers < 1 or num_servers < 1:
        raise ValueError('need at least one worker and one server, got -n %d -s %d' % (num_workers, num_servers))
    warning = check_worker_command(command)
    if warning:
        out.write('[launch] warning: %s\n' % warning)
    port = port or free_port(host)
    procs: List[_Proc] = []
    with _signals_stop_the_job():
        try:
            _start(procs, command, num_workers, num_servers, host, port)
            for p in procs:      # after every fork: no pump thread runs while a child is forked
                p.pump(out)
            status = _wait(procs, timeout, grace, out)
            if status == 0:
                _finish(procs, grace, out)
        except (KeyboardInterrupt, _Interrupted) as err:
            signum = getattr(err, 'signum', signal.SIGINT)
            out.write('[launch] got %s: stopping all processes\n' % signal_name(signum))
            status = 128 + signum
        finally:
            _stop_all(procs, grace)
    return status
