"""Start MXNet's parameter server: scheduler, servers, workers, on this host
(:func:`launch`) or across hosts (:func:`launch_hosts`).

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

Across hosts, each process is started through a remote-command template
(ssh by default) with its whole environment on the command line, under
``python -m d2lnets.training.launch --child``, which stops it when the launcher is
gone (its stdin closes, or its parent dies) and reports its pid and status in lines
marked with a nonce the launcher sent on its stdin (out of the workers' reach).
Everything a job is made of (counts, ports, seconds, hosts, variable names, the
worker's program) is checked before anything starts.
"""
import contextlib
import ctypes
import io
import os
import re
import secrets
import shlex
import shutil
import signal
import stat
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple

from ..io import usable_cores
from ..runtime import set_by_user

SERVER_COMMAND = [sys.executable, '-c', 'import mxnet']
PR_SET_PDEATHSIG = 1        # from <linux/prctl.h>
DEFAULT_REMOTE = 'ssh -o BatchMode=yes -o ConnectTimeout=10 {host}'
DEFAULT_PORT = 9091         # MXNet's tools/launch.py starts its scheduler there too
# The bounds of a job, checked before anything starts (``check_job``).
MAX_PROCESSES = 1024        # servers + workers
MAX_SECONDS = 30 * 24 * 3600
MAX_LINE = 64 * 1024        # characters of one output line; longer ones are passed on in pieces
MAX_HOSTS_FILE = 1 << 20    # bytes
MAX_HOSTS = 1024            # lines of a hosts file
# A host name or a numeric IPv4 address: no option (a leading '-'), no shell or ssh syntax.
_HOST = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}\Z')
_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*\Z')
# What `python -m d2lnets.training.launch --child` says on its stdout besides the process's output:
# '<_MARK> <nonce> started pid N' and '<_MARK> <nonce> ended N'. The nonce is the first line of its
# stdin, which the processes it starts do not see, so their output cannot pass for these lines.
_MARK = 'd2lnets-launch'
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
    # Share the cores among the workers unless the user chose (d2lnets' own default
    # in this process is every core, for one process).
    if ('OMP_NUM_THREADS' not in base) if base is not None else not set_by_user('OMP_NUM_THREADS'):
        env['OMP_NUM_THREADS'] = str(max(1, usable_cores() // num_workers) if role == 'worker' else 1)
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
                                      preexec_fn=_die_with(os.getpid()))
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
        """Whether ``line`` is the child's word (``_MARK`` and this process's nonce), taken note of."""
        said = re.fullmatch(r'%s %s (started pid|ended) (-?[0-9]{1,10})\n?' % (_MARK, self.nonce), line)
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


# --- the worker command: does it join the parameter server? ---

def _d2lnets_args(command: Sequence[str]) -> Optional[List[str]]:
    # `d2lnets ARGS`, `/path/to/d2lnets ARGS` or `python [OPTIONS] -m d2lnets ARGS` -> ARGS; else None.
    if os.path.basename(command[0]) == 'd2lnets':
        return list(command[1:])
    if 'python' not in os.path.basename(command[0]):
        return None
    args = list(command[1:])
    # Python's options as its own parser reads them: flags may be grouped (-uE), and in a group the
    # letters c, m, W, X take the rest of it, or the next word, as their argument (-Wignore, -m d2lnets).
    while args and args[0].startswith('-') and args[0] != '-':
        option = args.pop(0)
        if option == '--check-hash-based-pycs':
            args = args[1:]
            continue
        if option.startswith('--'):
            return None         # --help, --version: Python itself answers
        for i, letter in enumerate(option[1:], 2):
            if letter in 'cmWX':
                value = option[i:] or (args.pop(0) if args else '')
                if letter == 'm':
                    return args if value in ('d2lnets', 'd2lnets.__main__') else None
                if letter == 'c':
                    return None
                break
    return None


def check_worker_command(command: Sequence[str], parse_args: Optional[Callable[[List[str]], Any]] = None
                         ) -> Optional[str]:
    """Refuse a ``d2lnets train`` that does not join the parameter server.

    ``parse_args`` reads a d2lnets command line as the workers will (the CLI
    passes its own parser's ``parse_args``; the CLI owns its grammar, so this
    module does not import it). Without it, a ``d2lnets`` command is not checked.

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
    if parse_args is None:
        return None
    # The whole command line, global options (--debug) wherever they stand, as the workers will read
    # it. The parser's complaints (usage and error) are kept from the terminal.
    with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.redirect_stdout(io.StringIO()):
        try:
            parsed = parse_args(args)
        except SystemExit:
            if 'train' not in args:
                return None     # not a training: the workers' own error says what is wrong
            lines = err.getvalue().strip().splitlines()
            raise ValueError('the worker command is not a valid `d2lnets train`: %s'
                             % (lines[-1] if lines else 'see d2lnets train --help')) from None
    if getattr(parsed, 'command', None) != 'train' or getattr(parsed, 'resume', None):
        return None         # --resume: the run's own kvstore
    if not parsed.kvstore.startswith('dist_'):
        raise ValueError('the worker command `d2lnets train` has no --kvstore dist_sync (or dist_async): every '
                         'worker would train alone, all into the same run folder; add --kvstore dist_sync')
    return None


# --- the steps of a job ---

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


def _stop_all(procs: List[_Proc], grace: float, hurry: threading.Event, out: TextIO) -> None:
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


def launch(command: Sequence[str], num_workers: int, num_servers: int = 1, host: str = '127.0.0.1',
           port: Optional[int] = None, timeout: Optional[float] = None, grace: float = 5.0,
           out: TextIO = sys.stdout, parse_args: Optional[Callable[[List[str]], Any]] = None) -> int:
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
    check_host(host, 'the scheduler\'s host (--host)')
    timeout = check_seconds(timeout, '--timeout')
    _validate(command, num_workers, num_servers, 'd2lnets launch -n 2', out, parse_args, port)
    port = port or free_port(host)
    return _run(lambda procs: _start(procs, command, num_workers, num_servers, host, port),
                timeout, None, grace, out)


def check_host(host: Any, what: str = 'the host') -> str:
    """``host`` if it is a host name or a numeric IPv4 address; ``ValueError`` otherwise."""
    if not isinstance(host, str) or not _HOST.match(host):
        raise ValueError('%s %r is not a host name or address: use letters, digits, ".", "-" and "_", '
                         'at most 253, not starting with "-"' % (what, host))
    return host


def check_seconds(value: Any, option: str) -> Optional[float]:
    """``value`` (seconds; ``None`` for none) if it is a number in (0, MAX_SECONDS]; ``ValueError`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_SECONDS:
        raise ValueError('%s must be a number of seconds above 0 and at most %d (30 days), got %r'
                         % (option, MAX_SECONDS, value))
    return float(value)


def check_job(num_workers: Any, num_servers: Any, port: Any = None, ports_after: bool = False) -> None:
    """``ValueError`` unless the counts and the scheduler's ``port`` make a job that can start: at least
    one worker and one server, at most ``MAX_PROCESSES`` together, each port in 1..65535 (the
    scheduler's and, with ``ports_after`` (across hosts), the ``num_servers + num_workers`` after it)."""
    for value, option in ((num_workers, '-n'), (num_servers, '-s')):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError('%s must be a whole number, got %r' % (option, value))
    if num_workers < 1 or num_servers < 1:
        raise ValueError('need at least one worker and one server, got -n %d -s %d' % (num_workers, num_servers))
    if num_workers + num_servers > MAX_PROCESSES:
        raise ValueError('-n %d -s %d asks for %d processes; a job has at most %d workers and servers'
                         % (num_workers, num_servers, num_workers + num_servers, MAX_PROCESSES))
    if port is None:
        return
    after = num_servers + num_workers if ports_after else 0
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535 - after:
        raise ValueError('--port must be a port from 1 to %d%s, got %r'
                         % (65535 - after, ' (its %d servers and workers listen on the ports after it)' % after
                            if after else '', port))


def check_program(command: Sequence[str], env: Optional[Dict[str, str]] = None) -> None:
    """``OSError`` unless ``command[0]`` is a program this host can run (a path, or a name on ``PATH``)."""
    path = (env if env is not None else os.environ).get('PATH', os.defpath)
    if shutil.which(command[0], path=path) is None:
        where = 'not an executable file' if os.sep in command[0] else 'not a program on PATH'
        raise OSError('cannot run the worker command: %s is %s; give a program that exists (e.g. d2lnets, '
                      'or %s -m d2lnets)' % (command[0], where, sys.executable))


def _validate(command: Sequence[str], num_workers: int, num_servers: int, example: str, out: TextIO,
              parse_args: Optional[Callable[[List[str]], Any]], port: Optional[int] = None,
              ports_after: bool = False) -> None:
    # Across hosts (ports_after) the program is looked for on its host, by the child there.
    if not command:
        raise ValueError('no worker command given: put it after "--", e.g. '
                         '%s -- d2lnets train lenet --kvstore dist_sync' % example)
    check_job(num_workers, num_servers, port, ports_after)
    warning = check_worker_command(command, parse_args)
    if not ports_after:
        check_program(command)
    if warning:
        out.write('[launch] warning: %s\n' % warning)


def _run(start: Callable[[List[_Proc]], None], timeout: Optional[float], start_timeout: Optional[float],
         grace: float, out: TextIO) -> int:
    """Start the job, pump its output, wait for it, stop it: its exit status."""
    procs: List[_Proc] = []
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


# --- across hosts: `launch --hosts FILE --remote TEMPLATE` ---

def _read_small(path: str, limit: int, what: str) -> str:
    # A regular file of at most ``limit`` bytes, as text: opened without waiting (a FIFO would block
    # the open), checked, then read no further than the limit.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise OSError('cannot read %s %s: %s' % (what, path, err.strerror or err)) from None
    with open(fd, 'rb') as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError('%s %s is not a regular file: give a text file' % (what, path))
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError('%s %s is larger than %d KiB: give one host a line' % (what, path, limit // 1024))
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError:
        raise ValueError('%s %s is not text (UTF-8)' % (what, path)) from None


def read_hosts(path: str) -> List[Tuple[str, int]]:
    """``[(host, slots), ...]`` from a hosts file: one ``host [slots]`` a line.

    ``slots`` (default 1; also written ``slots=N``) is how many workers the host
    takes; 0 makes a host that runs only the scheduler and servers. ``#`` starts
    a comment. At most ``MAX_HOSTS_FILE`` bytes and ``MAX_HOSTS`` hosts; each
    host a name or a numeric address (``check_host``).
    """
    text = _read_small(path, MAX_HOSTS_FILE, 'the hosts file')
    hosts = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split('#')[0].split()
        if not words:
            continue
        slots = words[1][len('slots='):] if len(words) == 2 and words[1].startswith('slots=') else \
            (words[1] if len(words) == 2 else '1')
        if len(words) > 2 or not (slots.isascii() and slots.isdigit()) or int(slots) > MAX_PROCESSES:
            raise ValueError('%s:%d: expected "HOST [SLOTS]" (SLOTS a number of workers, 0 to %d), got %r'
                             % (path, number, MAX_PROCESSES, line.strip()[:100]))
        check_host(words[0], '%s:%d: the host' % (path, number))
        hosts.append((words[0], int(slots)))
        if len(hosts) > MAX_HOSTS:
            raise ValueError('the hosts file %s lists more than %d hosts' % (path, MAX_HOSTS))
    if not hosts:
        raise ValueError('the hosts file %s lists no host: write one address or name a line' % path)
    return hosts


def place(hosts: Sequence[Tuple[str, int]], num_workers: int) -> List[str]:
    """The host of each worker: each host's slots filled in the file's order."""
    free = sum(slots for _, slots in hosts)
    if num_workers > free:
        raise ValueError('-n %d workers need %d slots, the hosts file gives %d: give hosts more slots '
                         '("HOST SLOTS") or start fewer workers' % (num_workers, num_workers, free))
    placed: List[str] = []
    for host, slots in hosts:
        placed += [host] * min(slots, num_workers - len(placed))
    return placed


def _address(host: str) -> str:
    # Each process listens on its host's address (DMLC_NODE_HOST), which ps-lite wants numeric.
    try:
        return socket.gethostbyname(host)
    except OSError as err:
        raise OSError('cannot resolve the host %s from the hosts file: %s' % (host, err)) from None


def _ranks(addresses: Sequence[str], ports: Sequence[int]) -> List[int]:
    # The scheduler of MXNet 1.9.1 (ps-lite) numbers the workers in the order of
    # (address descending as a string, port ascending).
    order = sorted(range(len(addresses)), key=lambda i: ports[i])
    order.sort(key=lambda i: addresses[i], reverse=True)
    ranks = [0] * len(addresses)
    for rank, i in enumerate(order):
        ranks[i] = rank
    return ranks


def remote_words(template: str) -> List[str]:
    """The words of the remote-command ``template``; ``ValueError`` unless it splits and has ``{host}``."""
    try:
        words = shlex.split(template)
    except ValueError as err:
        raise ValueError('the remote template %r is not a command line (%s): e.g. %r'
                         % (template, err, DEFAULT_REMOTE)) from None
    if not any('{host}' in w for w in words):
        raise ValueError('the remote template %r has no {host}: e.g. %r' % (template, DEFAULT_REMOTE))
    return words


def remote_command(template: str, host: str, env: Dict[str, str], command: Sequence[str],
                   threads_divisor: int = 1) -> List[str]:
    """The local command that runs ``command`` on ``host`` with exactly ``env``.

    ``template`` (``{host}`` replaced) must run its last argument, one POSIX
    shell command line, on the host, as ``ssh HOST`` does (for commands that
    take an argument vector instead, end the template with ``sh -c``).
    """
    words = [w.replace('{host}', check_host(host)) for w in remote_words(template)]
    for name in env:
        if not _NAME.match(name):
            raise ValueError('the environment variable %r cannot be passed to the hosts: its name is not an '
                             'identifier (letters, digits and "_"); unset it' % name[:100])
    child = [sys.executable, '-m', 'd2lnets.training.launch', '--child', '--threads-divisor', str(threads_divisor),
             '--']
    line = 'cd %s && exec env %s %s' % (shlex.quote(os.getcwd()),
                                         ' '.join('%s=%s' % (k, shlex.quote(v)) for k, v in sorted(env.items())),
                                         shlex.join(child + list(command)))
    return words + [line]


def _passed_on(base: Dict[str, str]) -> Dict[str, str]:
    # What the launcher's environment gives every process: d2lnets' and MXNet's settings, threads.
    return {k: v for k, v in base.items() if k.startswith(('D2LNETS_', 'MXNET_'))
            or (k == 'OMP_NUM_THREADS' and set_by_user(k))}


def _start_on_hosts(procs: List[_Proc], command: Sequence[str], hosts: Sequence[Tuple[str, int]],
                    num_workers: int, num_servers: int, port: int, template: str,
                    scheduler_host: Optional[str] = None) -> None:
    first = scheduler_host or hosts[0][0]
    worker_hosts = place(hosts, num_workers)
    address = {h: _address(h) for h in [first] + [h for h, _ in hosts]}
    # Ports: the scheduler's, then one each for servers and workers, so none
    # collide wherever they run: port .. port + servers + workers on every host.
    ports = [port + 1 + i for i in range(num_servers + num_workers)]
    ranks = _ranks([address[h] for h in worker_hosts], ports[num_servers:])
    common = dict(_passed_on(dict(os.environ)), DMLC_PS_ROOT_URI=address[first], DMLC_PS_ROOT_PORT=str(port),
                  DMLC_NUM_WORKER=str(num_workers), DMLC_NUM_SERVER=str(num_servers))

    def start(label: str, role: str, host: str, cmd: Sequence[str], port_: Optional[int], share: int) -> None:
        env = dict(common, DMLC_ROLE=role, DMLC_NODE_HOST=address[host])
        if port_ is not None:
            env['PORT'] = str(port_)
        procs.append(_Proc('%s %s' % (host, label), role, remote_command(template, host, env, cmd, share),
                           dict(os.environ), host=host))
    start('scheduler', 'scheduler', first, SERVER_COMMAND, None, 0)
    for i in range(num_servers):
        start('server %d' % i, 'server', first, SERVER_COMMAND, ports[i], 0)
    for i, host in enumerate(worker_hosts):
        start('worker %d' % ranks[i], 'worker', host, command, ports[num_servers + i], worker_hosts.count(host))


def _await_started(procs: List[_Proc], timeout: float) -> None:
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


def launch_hosts(command: Sequence[str], hosts: Sequence[Tuple[str, int]], num_workers: int,
                 num_servers: int = 1, port: int = DEFAULT_PORT, remote: str = DEFAULT_REMOTE,
                 timeout: Optional[float] = None, start_timeout: float = 30.0, grace: float = 5.0,
                 out: TextIO = sys.stdout, parse_args: Optional[Callable[[List[str]], Any]] = None,
                 scheduler_host: Optional[str] = None) -> int:
    """Run ``command`` as ``num_workers`` workers spread over ``hosts`` (see ``read_hosts``).

    The scheduler and the servers run on ``scheduler_host`` (default: the first
    host, which may have 0 slots to run nothing else); each process is
    started through ``remote`` (``{host}`` replaced) with its whole
    environment on the command line. Returns as :func:`launch` does.
    """
    _validate(command, num_workers, num_servers, 'd2lnets launch --hosts FILE -n 2', out, parse_args, port,
              ports_after=True)
    timeout, start_timeout = check_seconds(timeout, '--timeout'), check_seconds(start_timeout, '--start-timeout')
    for host, _ in hosts:
        check_host(host)
    if scheduler_host is not None:
        check_host(scheduler_host, 'the scheduler\'s host (--host)')
    place(hosts, num_workers)
    remote_command(remote, hosts[0][0], _passed_on(dict(os.environ)), command)    # its words, the names
    started: List[_Proc] = []

    def start(procs: List[_Proc]) -> None:
        _start_on_hosts(procs, command, hosts, num_workers, num_servers, port, remote, scheduler_host)
        started.extend(procs)
    status = _run(start, timeout, start_timeout, grace, out)
    if status == 0:
        rank0 = next(p for p in started if p.label.endswith(' worker 0'))
        out.write('[launch] done; worker 0 ran on %s: a run folder it wrote is there\n' % rank0.host)
    return status


# --- on each host: `python -m d2lnets.training.launch --child [--threads-divisor K] -- COMMAND` ---

def _child_main(argv: Sequence[str]) -> int:
    """Run COMMAND for a launcher elsewhere; stop it when the launcher is gone.

    The launcher is gone when stdin closes (ssh ended: the launcher died or
    stopped it) or when this process's parent dies (a local remote template).
    """
    divisor = int(argv[argv.index('--threads-divisor') + 1]) if '--threads-divisor' in argv else 0
    # The launcher's first line: the nonce its messages carry (a hex token; anything else is no launcher's).
    nonce = sys.stdin.buffer.readline(64).decode('ascii', 'replace').strip()
    if not re.fullmatch(r'[0-9a-f]{32}', nonce):
        print('d2lnets launch --child: expected the launcher\'s token on stdin', flush=True)
        return 2
    command = list(argv[argv.index('--') + 1:])
    env = dict(os.environ)
    if divisor and not set_by_user('OMP_NUM_THREADS'):
        env['OMP_NUM_THREADS'] = str(max(1, usable_cores() // divisor))
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_die_with(os.getpid()))
    except OSError as err:
        print('cannot run %s on %s: %s' % (command[0], socket.gethostname(), err.strerror or err), flush=True)
        return 127
    print('%s %s started pid %d' % (_MARK, nonce, proc.pid), flush=True)

    def stop(*_) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5.0)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def lifeline() -> None:
        sys.stdin.buffer.read()          # returns at EOF: the launcher is gone or stopped us
        stop()
    threading.Thread(target=lifeline, daemon=True).start()
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, lambda *_: threading.Thread(target=stop, daemon=True).start())
    code = proc.wait()
    with contextlib.suppress(OSError):      # no one may be listening any more
        print('%s %s ended %d' % (_MARK, nonce, code), flush=True)
    return exit_status(code)


if __name__ == '__main__' and sys.argv[1:2] == ['--child']:
    status = _child_main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(status)     # not a normal exit: the lifeline thread still blocks in a read of stdin
