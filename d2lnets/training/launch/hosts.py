"""A job across hosts (:func:`launch_hosts`): the hosts file, the workers' places and ranks, and
the remote command that starts each process on its host.

Each process is started through a remote-command template (ssh by default)
with its whole environment on the command line, under
``python -m d2lnets.training.launch --child`` (:mod:`.child`).
"""
import os
import re
import shlex
import socket
import sys
from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple

from ...io import read_bounded
from ...runtime import set_by_user
from .command import MAX_PROCESSES, Job, check_host, check_seconds, parse_remote, validate
from .job import SERVER_COMMAND, Proc, run

DEFAULT_REMOTE = 'ssh -o BatchMode=yes -o ConnectTimeout=10 {host}'
DEFAULT_PORT = 9091         # MXNet's tools/launch.py starts its scheduler there too
MAX_HOSTS_FILE = 1 << 20    # bytes
MAX_HOSTS = 1024            # hosts of a hosts file
MAX_HOSTS_LINES = 16384     # its lines, comments and blank ones included
_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*\Z')


def _read_text(path: str, what: str) -> str:
    # io.read_bounded: a regular file (a FIFO would block the open), its size and lines checked first.
    try:
        data = read_bounded(path, MAX_HOSTS_FILE, what, 'give a text file, one host a line', MAX_HOSTS_LINES)
    except OSError as err:
        raise OSError('cannot read %s %s: %s' % (what, path, os.strerror(err.errno) if err.errno else err)) from None
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError:
        raise ValueError('%s %s is not text (UTF-8)' % (what, path)) from None


def read_hosts(path: str) -> List[Tuple[str, int]]:
    """``[(host, slots), ...]`` from a hosts file: one ``host [slots]`` a line.

    ``slots`` (default 1; also written ``slots=N``) is how many workers the host
    takes; 0 makes a host that runs only the scheduler and servers. ``#`` starts
    a comment. At most ``MAX_HOSTS_FILE`` bytes, ``MAX_HOSTS_LINES`` lines and ``MAX_HOSTS`` hosts; each
    host a name or a numeric address (``check_host``).
    """
    text = _read_text(path, 'the hosts file')
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
    # Each process listens on its host's address (DMLC_NODE_HOST), which ps-lite wants numeric:
    # the HOST of [USER@]HOST[:PORT] (the port is ssh's).
    try:
        return socket.gethostbyname(parse_remote(host).host)
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

    ``template`` (``{host}`` replaced by the host as ssh reads a destination:
    ``[USER@]HOST``, with a port ``ssh://[USER@]HOST:PORT``) must run its last
    argument, one POSIX shell command line, on the host, as ``ssh HOST`` does
    (for commands that take an argument vector instead, end the template with ``sh -c``).
    """
    words = [w.replace('{host}', parse_remote(host).destination) for w in remote_words(template)]
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


def _start_on_hosts(procs: List[Proc], job: Job, hosts: Sequence[Tuple[str, int]]) -> None:
    first = job.host or hosts[0][0]
    worker_hosts = place(hosts, job.num_workers)
    address = {h: _address(h) for h in [first] + [h for h, _ in hosts]}
    # Ports: the scheduler's, then one each for servers and workers, so none
    # collide wherever they run: port .. port + servers + workers on every host.
    ports = [job.port + 1 + i for i in range(job.num_servers + job.num_workers)]
    ranks = _ranks([address[h] for h in worker_hosts], ports[job.num_servers:])
    common = dict(_passed_on(dict(os.environ)), DMLC_PS_ROOT_URI=address[first], DMLC_PS_ROOT_PORT=str(job.port),
                  DMLC_NUM_WORKER=str(job.num_workers), DMLC_NUM_SERVER=str(job.num_servers))

    def start(label: str, role: str, host: str, cmd: Sequence[str], port_: Optional[int], share: int) -> None:
        env = dict(common, DMLC_ROLE=role, DMLC_NODE_HOST=address[host])
        if port_ is not None:
            env['PORT'] = str(port_)
        procs.append(Proc('%s %s' % (host, label), role, remote_command(job.remote, host, env, cmd, share),
                           dict(os.environ), host=host))
    start('scheduler', 'scheduler', first, SERVER_COMMAND, None, 0)
    for i in range(job.num_servers):
        start('server %d' % i, 'server', first, SERVER_COMMAND, ports[i], 0)
    for i, host in enumerate(worker_hosts):
        start('worker %d' % ranks[i], 'worker', host, job.command, ports[job.num_servers + i],
              worker_hosts.count(host))


def launch_hosts(job: Job, hosts: Sequence[Tuple[str, int]], out: TextIO = sys.stdout,
                 parse_args: Optional[Callable[[List[str]], Any]] = None) -> int:
    """Run the worker command of ``job`` (a :class:`Job`) as its ``num_workers`` workers spread over
    ``hosts`` (see ``read_hosts``).

    The scheduler and the servers run on the job's ``host`` (default: the first
    host, which may have 0 slots to run nothing else), the scheduler at its
    ``port`` (default ``DEFAULT_PORT``); each process is started through its
    ``remote`` template (default ``DEFAULT_REMOTE``, ``{host}`` replaced) with
    its whole environment on the command line. ``out``, ``parse_args`` and the
    exit status are as :func:`.local.launch`'s.
    """
    job = replace(job, port=DEFAULT_PORT if job.port is None else job.port,
                  remote=DEFAULT_REMOTE if job.remote is None else job.remote)
    validate(job, 'd2lnets launch --hosts FILE -n 2', out, parse_args, ports_after=True)
    timeout = check_seconds(job.timeout, '--timeout')
    start_timeout = check_seconds(job.start_timeout, '--start-timeout')
    for host, _ in hosts:
        check_host(host)
    if job.host is not None:
        check_host(job.host, 'the scheduler\'s host (--host)')
    place(hosts, job.num_workers)
    remote_command(job.remote, hosts[0][0], _passed_on(dict(os.environ)), job.command)    # its words, the names
    started: List[Proc] = []

    def start(procs: List[Proc]) -> None:
        _start_on_hosts(procs, job, hosts)
        started.extend(procs)
    status = run(start, timeout, start_timeout, job.grace, out)
    if status == 0:
        rank0 = next(p for p in started if p.label.endswith(' worker 0'))
        out.write('[launch] done; worker 0 ran on %s: a run folder it wrote is there\n' % rank0.host)
    return status
