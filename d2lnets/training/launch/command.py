"""What a job is made of, checked before anything starts: counts, ports, seconds, host names, and
the worker command (does a ``d2lnets train`` join the parameter server? can the program run?)."""
import contextlib
import io
import itertools
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, TextIO, Tuple

from ... import limits

# The bounds of a job, checked before anything starts (``check_job``).
MAX_PROCESSES = 1024        # servers + workers
MAX_SECONDS = 30 * 24 * 3600
# A host name or a numeric IPv4 address: no option (a leading '-'), no shell or ssh syntax.
_HOST = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}\Z')
# A hosts file's host: [USER@]HOST[:PORT], USER as POSIX user names go (no leading '-'), HOST as above.
_REMOTE = re.compile(r'(?:(?P<user>[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})@)?(?P<host>[^@:]+)(?::(?P<port>[0-9]{1,5}))?\Z')


def _d2lnets_args(command: Sequence[str]) -> Optional[List[str]]:
    # `d2lnets ARGS`, `/path/to/d2lnets ARGS` or `python [OPTIONS] -m d2lnets ARGS` -> ARGS; else None.
    # `env NAME=VALUE ... COMMAND` is COMMAND (env's options are not read: such a command is not checked).
    while command and os.path.basename(command[0]) == 'env':
        command = [w for w in itertools.dropwhile(lambda w: '=' in w and not w.startswith('-'), command[1:])]
    if not command:
        return None
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
    if not (parsed.kvstore or '').startswith('dist_'):     # None: the recipe's, never a dist kvstore
        raise ValueError('the worker command `d2lnets train` has no --kvstore dist_sync (or dist_async): every '
                         'worker would train alone, all into the same run folder; add --kvstore dist_sync')
    return None


class Remote(NamedTuple):
    """A host of a hosts file, ``[USER@]HOST[:PORT]``: where ssh logs in, and what the processes dial."""
    user: Optional[str]
    host: str               # a name or a numeric IPv4 address (check_host)
    port: Optional[int]     # ssh's port, if not its default

    @property
    def destination(self) -> str:
        """As ssh reads a destination: ``[user@]host``, or with a port ``ssh://[user@]host:port``."""
        login = '%s@%s' % (self.user, self.host) if self.user else self.host
        return 'ssh://%s:%d' % (login, self.port) if self.port is not None else login


def parse_remote(text: Any, what: str = 'the host') -> Remote:
    """``[USER@]HOST[:PORT]`` (a hosts file's host, ``--host`` across hosts) as a :class:`Remote`;
    ``ValueError`` in one line for anything else: an option (``-oProxyCommand=...``), shell or ssh
    syntax, a port outside 1..65535, an IPv6 address (MXNet's parameter server dials IPv4 only)."""
    if isinstance(text, str) and (text.count(':') > 1 or text.startswith('[') or '[' in text.split('@')[-1]):
        raise ValueError("%s %r is an IPv6 address: MXNet 1.9.1's parameter server (ps-lite) connects over IPv4 "
                         "only; give the host's IPv4 address or a name" % (what, text[:100]))
    found = _REMOTE.match(text) if isinstance(text, str) else None
    port = int(found.group('port')) if found and found.group('port') else None
    if found is None or not _HOST.match(found.group('host')) or (port is not None and not 1 <= port <= 65535):
        raise ValueError('%s %r is not a host: give [USER@]HOST[:PORT], HOST a name or IPv4 address of letters, '
                         'digits, ".", "-" and "_" (at most 253, not starting with "-"), USER likewise, PORT '
                         'from 1 to 65535' % (what, text if not isinstance(text, str) else text[:100]))
    return Remote(found.group('user'), found.group('host'), port)


def check_host(host: Any, what: str = 'the host', remote: bool = True) -> str:
    """``host`` if it is a host of a hosts file (``remote``: ``[USER@]HOST[:PORT]``, see
    :func:`parse_remote`) or, with ``remote=False``, a host name or numeric IPv4 address to listen
    on (``--host`` on this host); ``ValueError`` otherwise."""
    if remote:
        parse_remote(host, what)
        return host
    if not isinstance(host, str) or not _HOST.match(host):
        raise ValueError('%s %r is not a host name or address: use letters, digits, ".", "-" and "_", '
                         'at most 253, not starting with "-"' % (what, host))
    return host


def check_seconds(value: Any, option: str) -> Optional[float]:
    """``value`` (seconds; ``None`` for none) if it is a number in (0, MAX_SECONDS]; ``ValueError`` otherwise."""
    if value is None:
        return None
    if not limits.is_real(value) or not 0 < value <= MAX_SECONDS:
        raise ValueError('%s must be a number of seconds above 0 and at most %d (30 days), got %r'
                         % (option, MAX_SECONDS, value))
    return float(value)


def check_job(num_workers: Any, num_servers: Any, port: Any = None, ports_after: bool = False) -> None:
    """``ValueError`` unless the counts and the scheduler's ``port`` make a job that can start: at least
    one worker and one server, at most ``MAX_PROCESSES`` together, each port in 1..65535 (the
    scheduler's and, with ``ports_after`` (across hosts), the ``num_servers + num_workers`` after it)."""
    for value, option in ((num_workers, '-n'), (num_servers, '-s')):
        if not limits.is_int(value):
            raise ValueError('%s must be a whole number, got %r' % (option, value))
    if num_workers < 1 or num_servers < 1:
        raise ValueError('need at least one worker and one server, got -n %d -s %d' % (num_workers, num_servers))
    if num_workers + num_servers > MAX_PROCESSES:
        raise ValueError('-n %d -s %d asks for %d processes; a job has at most %d workers and servers'
                         % (num_workers, num_servers, num_workers + num_servers, MAX_PROCESSES))
    if port is None:
        return
    after = num_servers + num_workers if ports_after else 0
    if not limits.is_int(port) or not 1 <= port <= 65535 - after:
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


@dataclass(frozen=True)
class Job:
    """What a parameter-server job is: one value from the CLI's arguments to the processes, as a run's
    settings are one ``RunConfig``.

    ``command`` is the worker's, e.g. ``('d2lnets', 'train', 'lenet', '--kvstore', 'dist_sync')``;
    ``timeout`` stops everything and fails after that many seconds; ``grace`` is the seconds between
    SIGTERM and SIGKILL when stopping. ``None`` leaves a setting to the launcher that runs the job:
    on this host (``launch``) the scheduler listens on ``host`` 127.0.0.1 at a free ``port``; across
    hosts (``launch_hosts``) scheduler and servers run on ``host``, the first of the hosts file, at
    ``port`` ``DEFAULT_PORT`` (9091), each process started through the ``remote`` template
    ``DEFAULT_REMOTE`` (ssh), and a host that has not started its process within ``start_timeout``
    seconds fails the job. The launcher checks the whole value before anything starts (the checks
    differ across hosts: a host's form, the ports after the scheduler's).
    """
    command: Tuple[str, ...]
    num_workers: int
    num_servers: int = 1
    host: Optional[str] = None
    port: Optional[int] = None
    timeout: Optional[float] = None
    grace: float = 5.0
    remote: Optional[str] = None            # across hosts only
    start_timeout: float = 30.0             # across hosts only

    def __post_init__(self) -> None:
        if isinstance(self.command, (str, bytes)):
            raise ValueError('the worker command is a sequence of words, such as [\'d2lnets\', \'train\', '
                             '\'lenet\'], got the string %r' % (self.command[:100],))
        object.__setattr__(self, 'command', tuple(self.command))


def validate(job: Job, example: str, out: TextIO, parse_args: Optional[Callable[[List[str]], Any]],
              ports_after: bool = False) -> None:
    # Across hosts (ports_after) the program is looked for on its host, by the child there.
    if not job.command:
        raise ValueError('no worker command given: put it after "--", e.g. '
                         '%s -- d2lnets train lenet --kvstore dist_sync' % example)
    check_job(job.num_workers, job.num_servers, job.port, ports_after)
    warning = check_worker_command(job.command, parse_args)
    if not ports_after:
        check_program(job.command)
    if warning:
        out.write('[launch] warning: %s\n' % warning)
