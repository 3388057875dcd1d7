"""Start MXNet's parameter server on one host: scheduler, servers, workers.

Each role is a process with MXNet's documented environment (``DMLC_ROLE``,
``DMLC_PS_ROOT_URI``, ``DMLC_PS_ROOT_PORT``, ``DMLC_NUM_WORKER``,
``DMLC_NUM_SERVER``) and ``DMLC_NODE_HOST``/``DMLC_INTERFACE`` pinned to the
loopback, since otherwise servers and workers listen on the machine's outward
address. Scheduler and servers are ``python -c "import mxnet"``: importing
MXNet with a server role runs the server loop until the workers are done.

Every process runs in its own session (process group), so stopping one stops
whatever it started too. When a worker fails, all others are stopped and the
launcher returns that worker's failure.
"""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence, TextIO

SERVER_COMMAND = [sys.executable, '-c', 'import mxnet']


def free_port(host: str = '127.0.0.1') -> int:
    """A TCP port on ``host`` that nothing listens on now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


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


class _Proc:
    def __init__(self, label: str, command: Sequence[str], env: Dict[str, str], out: TextIO):
        self.label = label
        self.popen = subprocess.Popen(list(command), env=env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      start_new_session=True, bufsize=1, text=True, errors='replace')
        self.thread = threading.Thread(target=self._pump, args=(out,), daemon=True)
        self.thread.start()

    def _pump(self, out: TextIO) -> None:
        # Prefix every line with the process's label, as one stream.
        for line in self.popen.stdout:
            out.write('[%s] %s' % (self.label, line if line.endswith('\n') else line + '\n'))
            out.flush()

    def stop(self, sig: int) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass


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
        (128 + signal number for a killed worker, 124 for a timeout).
    """
    if not command:
        raise ValueError('no worker command given: put it after "--", e.g. '
                         'd2lnets launch -n 2 -- d2lnets train lenet --kvstore dist_sync')
    if num_workers < 1 or num_servers < 1:
        raise ValueError('need at least one worker and one server, got -n %d -s %d' % (num_workers, num_servers))
    port = port or free_port(host)
    procs: List[_Proc] = []
    status = 0

    def stop_all() -> None:
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
            p.thread.join(1.0)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_signal) if threading.current_thread() is threading.main_thread() else None
    try:
        env = lambda role: role_env(role, num_workers, num_servers, host, port)  # noqa: E731
        procs.append(_Proc('scheduler', SERVER_COMMAND, env('scheduler'), out))
        procs += [_Proc('server %d' % i, SERVER_COMMAND, env('server'), out) for i in range(num_servers)]
        workers = [_Proc('worker %d' % i, command, env('worker'), out) for i in range(num_workers)]
        procs += workers
        deadline = None if timeout is None else time.monotonic() + timeout
        lost_since = None
        while True:
            codes = [w.popen.poll() for w in workers]
            failed = [c for c in codes if c not in (None, 0)]
            # A scheduler or server that leaves early leaves the workers waiting forever.
            # (They leave with status 0 as the last worker finalizes: give the workers a moment.)
            lost = [p for p in procs[:1 + num_servers] if p.popen.poll() is not None]
            if lost and all(p.popen.returncode == 0 for p in lost):
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since < grace:
                    lost = []
            if failed:
                status = failed[0] if failed[0] > 0 else 128 - failed[0]
                out.write('[launch] a worker failed (exit status %d): stopping all processes\n' % status)
                break
            if lost and not all(c == 0 for c in codes):
                status = 1
                out.write('[launch] the %s stopped before the workers finished (exit status %s): '
                          'stopping all processes\n' % (lost[0].label, lost[0].popen.returncode))
                break
            if all(c == 0 for c in codes):
                # Scheduler and servers leave by themselves once the workers are done.
                for p in procs[:1 + num_servers]:
                    try:
                        p.popen.wait(grace)
                    except subprocess.TimeoutExpired:
                        pass
                break
            if deadline is not None and time.monotonic() > deadline:
                out.write('[launch] timed out after %g s: stopping all processes\n' % timeout)
                status = 124
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        out.write('[launch] interrupted: stopping all processes\n')
        status = 130
    finally:
        stop_all()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return status
