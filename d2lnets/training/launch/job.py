"""A job's processes: start each in its own session, pass on its output, watch it, stop them all.

Every process runs in its own session (process group), so stopping one stops
whatever it started too, and dies with the launcher (Linux's
``PR_SET_PDEATHSIG``), even when the launcher is killed with SIGKILL. When a
worker fails, all others are stopped and the job returns that worker's
failure; SIGTERM, SIGHUP and SIGINT stop everything too, a second one at once.
"""
import contextlib
import ctypes
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, TextIO

# d2lnets first: it gives MXNet what it needs on numpy>=1.24 and Python 3.12 (runtime.mxnet_compat).
SERVER_COMMAND = [sys.executable, '-c', 'import d2lnets, mxnet']
PR_SET_PDEATHSIG = 1        # from <linux/prctl.h>
MAX_LINE = 64 * 1024        # characters of one output line; longer ones are passed on in pieces
# What `python -m d2lnets.training.launch --child` says on its stdout besides the process's output:
# '<MARK> <nonce> started pid N' and '<MARK> <nonce> ended N'. The nonce is the first line of its
# stdin, which the processes it starts do not see, so their output cannot pass for these lines.
MARK = 'd2lnets-launch'
# Looked up once here: the child calls it between fork and exec, where it should do as little as it can.
prctl = getattr(ctypes.CDLL(None, use_errno=True), 'prctl', None) if sys.platform.startswith('linux') else None


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


def signal_name(signum: int) -> str:
    """``'SIGKILL'`` for 9; ``'signal 99'`` for a number Python has no name for."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return 'signal %d' % signum


def die_with(launcher_pid: int) -> Callable[[], None]:
    # Runs in the child between fork and exec: ask the kernel for SIGKILL when the
    # launcher dies. The launcher may have died before prctl ran: then the child
    # is already someone else's (getppid changed), and it goes at once.
    def preexec() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != launcher_pid:
            os.kill(os.getpid(), signal.SIGKILL)
    return preexec


class Proc:
    """One process of the job, its output prefixed with ``[label]``.

    A process started on a host through the remote template (``host`` set) runs
    under ``python -m d2lnets.training.launch --child``, which reports the real
    process's pid and how it ended; its stdin stays open as a lifeline.
    """

    def __init__(self, label: str, role: str, command: Sequence[str], env: Dict[str, str],
                 host: Optional[str] = None):
        self.label, self.role, self.host = label, role, host
        self.started = threading.Event()
        self.remote_pid: Optional[int] = None
        self.remote_code: Optional[int] = None
        self.last_lines: List[str] = []
        # The child's death signal fires when the thread that started it ends: the
        # launcher starts every child from the thread that waits for them.
        self.popen = subprocess.Popen(list(command), env=env,
                                      stdin=subprocess.PIPE if host else subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      start_new_session=True, bufsize=1, text=True, errors='replace',
                                      preexec_fn=die_with(os.getpid()))
        self.thread: Optional[threading.Thread] = None
        self.nonce = secrets.token_hex(16) if host else ''
        if host:
            # A remote command gone already is reported by _await_started, with its last words.
            with contextlib.suppress(BrokenPipeError):
                self.popen.stdin.write(self.nonce + '\n')
                self.popen.stdin.flush()

    def pump(self, out: TextIO) -> None:
        """Copy the output to ``out`` line by line, in a thread."""
        self.thread = threading.Thread(target=self._pump, args=(out,), daemon=True)
        self.thread.start()

    def _pump(self, out: TextIO) -> None:
        # Line by line, each at most MAX_LINE characters: a longer one is passed on in pieces.
        for line in iter(lambda: self.popen.stdout.readline(MAX_LINE), ''):
            if self.host and self._heard(line):
                continue
            self.last_lines = (self.last_lines + [line.rstrip('\n')])[-3:]
            out.write('[%s] %s' % (self.label, line if line.endswith('\n') else line + '\n'))
            out.flush()

    def _heard(self, line: str) -> bool:
        """Whether ``line`` is the child's word (``MARK`` and this process's nonce), taken note of."""
        said = re.fullmatch(r'%s %s (started pid|ended) (-?[0-9]{1,10})\n?' % (MARK, self.nonce), line)
        if said is None:
            return False
        if said.group(1) == 'ended':
            self.remote_code = int(said.group(2))
        else:
            self.remote_pid = int(said.group(2))
            self.started.set()
        return True

    def poll(self) -> Optional[int]:
        return self.popen.poll()

    def stop(self, sig: int) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def code(self) -> int:
        """The return code of the process itself (on its host, when it reported one)."""
        if self.host and self.remote_code is not None:
            return self.remote_code
        return self.popen.returncode

    def describe(self) -> str:
        """How it ended: ``'worker 1 (kvstore rank 1, pid 42) was killed by SIGKILL'``."""
        if self.host and self.remote_code is None:
            # The remote command itself ended without word from the process: ssh lost, or killed.
            code = self.popen.returncode
            how = ('was killed by %s' % signal_name(-code)) if code < 0 else 'exited with status %d' % code
            return 'the remote command of %s (local pid %d) %s' % (self.label, self.popen.pid, how)
        code = self.code()
        how = ('was killed by %s' % signal_name(-code)) if code < 0 else 'exited with status %d' % code
        rank = 'kvstore rank %s, ' % self.label.split()[-1] if self.role == 'worker' else ''
        pid = ('pid %d on %s' % (self.remote_pid, self.host)) if self.host else 'pid %d' % self.popen.pid
        return '%s (%s%s) %s' % (self.label, rank, pid, how)


def exit_status(code: int) -> int:
    """A child's return code as a shell reports it: 128 + N for a child killed by signal N."""
    return 128 - code if code < 0 else code


class _Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal_name(signum))
        self.signum = signum


class _Signals:
    """SIGINT, SIGTERM and SIGHUP (a closed terminal, a lost ssh session): the first stops the job
    (``_Interrupted``), any later one, or any during the stop, hurries the stop (``hurry``: SIGKILL now)."""

    def __init__(self):
        self.stopping = False
        self.hurry = threading.Event()

    def on_signal(self, signum, frame) -> None:
        if self.stopping:
            self.hurry.set()
            return
        self.stopping = True
        raise _Interrupted(signum)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        # Signal handlers can be set only in the main thread.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self.on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _check(procs: List[Proc], state: Dict[str, float], grace: float, out: TextIO) -> Optional[int]:
    """One look at the job: its exit status once it is over, else ``None``."""
    workers = [p for p in procs if p.role == 'worker']
    codes = [w.poll() for w in workers]
    failed = [w for w, c in zip(workers, codes) if c not in (None, 0)]
    if failed:
        if failed[0].thread is not None:
            failed[0].thread.join(1.0)      # its last words: how the process on its host ended
        out.write('[launch] %s: stopping all processes\n' % failed[0].describe())
        return exit_status(failed[0].code())
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
        out.write('[launch] %s before the workers finished: stopping all processes\n' % lost[0].describe())
        return 1
    return None


def _wait(procs: List[Proc], timeout: Optional[float], grace: float, out: TextIO) -> int:
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


def _finish(procs: List[Proc], grace: float, out: TextIO) -> None:
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


def _stop_all(procs: List[Proc], grace: float, hurry: threading.Event, out: TextIO) -> None:
    """SIGTERM to every process group, SIGKILL to those still there after ``grace`` seconds, or as soon as
    ``hurry`` is set (a second Ctrl-C or SIGTERM)."""
    for p in procs:
        p.stop(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline and not hurry.is_set():
        time.sleep(0.05)
    if hurry.is_set() and any(p.poll() is None for p in procs):
        out.write('[launch] interrupted again: killing all processes\n')
    for p in procs:
        p.stop(signal.SIGKILL)
    for p in procs:
        p.popen.wait()
        if p.thread is not None:
            p.thread.join(1.0)


def _await_started(procs: List[Proc], timeout: float) -> None:
    """Wait until every remote process runs; one clear error naming the host otherwise."""
    deadline = time.monotonic() + timeout
    for p in procs:
        while not p.started.wait(0.05):
            if p.poll() is not None:
                p.thread.join(1.0)
                raise OSError('cannot start the %s on %s: the remote command exited with status %d%s'
                              % (p.label.split(' ', 1)[1], p.host, exit_status(p.popen.returncode),
                                 ': ' + ' / '.join(l[:200] for l in p.last_lines) if p.last_lines else ''))
            if time.monotonic() > deadline:
                raise OSError('the host %s did not start the %s within %g s: is it reachable, and does the '
                              'remote command work (try it by hand)?' % (p.host, p.label.split(' ', 1)[1], timeout))


def run(start: Callable[[List[Proc]], None], timeout: Optional[float], start_timeout: Optional[float],
         grace: float, out: TextIO) -> int:
    """Start the job, pump its output, wait for it, stop it: its exit status."""
    procs: List[Proc] = []
    signals = _Signals()
    with signals.installed():
        try:
            start(procs)
            for p in procs:      # after every fork: no pump thread runs while a child is forked
                p.pump(out)
            if start_timeout is not None:
                _await_started(procs, start_timeout)
            status = _wait(procs, timeout, grace, out)
            if status == 0:
                _finish(procs, grace, out)
        except (KeyboardInterrupt, _Interrupted) as err:
            signals.stopping = True
            signum = getattr(err, 'signum', signal.SIGINT)
            out.write('[launch] got %s: stopping all processes\n' % signal_name(signum))
            status = 128 + signum
        finally:
            signals.stopping = True
            _stop_all(procs, grace, signals.hurry, out)
    return status
