"""A job on this host: scheduler, servers and workers as local processes (:func:`launch`).

Each role is a process with MXNet's documented environment (``DMLC_ROLE``,
``DMLC_PS_ROOT_URI``, ``DMLC_PS_ROOT_PORT``, ``DMLC_NUM_WORKER``,
``DMLC_NUM_SERVER``) and ``DMLC_NODE_HOST``/``DMLC_INTERFACE`` pinned to the
loopback, since otherwise servers and workers listen on the machine's outward
address. Scheduler and servers are ``python -c "import d2lnets, mxnet"``:
importing MXNet with a server role runs the server loop until the workers are done.
"""
import os
import sys
from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional, TextIO

from ...io import usable_cores
from ...runtime import set_by_user
from .command import Job, check_host, check_seconds, validate
from .job import SERVER_COMMAND, Proc, free_port, free_ports, run

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


def _start(procs: List[Proc], job: Job) -> None:
    # Appends as it starts, so that whatever started is stopped if a later start fails.
    # Each server and worker listens on a port chosen here (ps-lite's PORT): the
    # scheduler ranks the workers of one host by ascending port, so worker i gets
    # kvstore rank i, and a PORT in the user's environment cannot make them collide.
    ports = free_ports(job.num_servers + job.num_workers, job.host)

    def env(role: str, index: int) -> Dict[str, str]:
        e = role_env(role, job.num_workers, job.num_servers, job.host, job.port)
        if index >= 0:
            e['PORT'] = str(ports[index])
        return e
    procs.append(Proc('scheduler', 'scheduler', SERVER_COMMAND, env('scheduler', -1)))
    for i in range(job.num_servers):
        procs.append(Proc('server %d' % i, 'server', SERVER_COMMAND, env('server', i)))
    for i in range(job.num_workers):
        procs.append(Proc('worker %d' % i, 'worker', job.command, env('worker', job.num_servers + i)))


def launch(job: Job, out: TextIO = sys.stdout, parse_args: Optional[Callable[[List[str]], Any]] = None) -> int:
    """Run the worker command of ``job`` as its ``num_workers`` workers of a parameter server, on this host.

    Parameters
    ----------
    job : Job
        The command, the numbers of workers and servers (one scheduler besides), where the
        scheduler listens (``host`` 127.0.0.1 and a free ``port`` by default), the ``timeout`` and
        the ``grace`` between SIGTERM and SIGKILL when stopping.
    out : text stream
        Where the processes' output goes, each line prefixed with its role.
    parse_args : callable, optional
        Reads a d2lnets command line as the workers will (the CLI's parser), to refuse a
        ``d2lnets train`` that does not join the parameter server (``check_worker_command``).

    Returns
    -------
    int
        0 when every worker succeeded; else the first failure's exit status
        (128 + signal number for a killed worker, 124 for a timeout, 128 +
        the signal's number when the launcher got SIGINT, SIGTERM or SIGHUP).
    """
    host = '127.0.0.1' if job.host is None else job.host
    check_host(host, 'the scheduler\'s host (--host)', remote=False)
    timeout = check_seconds(job.timeout, '--timeout')
    validate(job, 'd2lnets launch -n 2', out, parse_args)
    job = replace(job, host=host, port=job.port or free_port(host))
    return run(lambda procs: _start(procs, job), timeout, None, job.grace, out)
