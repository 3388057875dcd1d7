"""Start MXNet's parameter server: scheduler, servers, workers, on this host
(:func:`launch`) or across hosts (:func:`launch_hosts`).

A small front over one module per job, as MXNet's ``tools/launch.py`` is over
``dmlc_tracker/``:

- :mod:`.command`: what a job is made of (:class:`Job`: the worker command,
  counts, ports, seconds, hosts, one frozen value), checked before anything starts;
- :mod:`.job`: the processes of a job, their output, their end;
- :mod:`.local`: a job on this host;
- :mod:`.hosts`: a job across hosts, through a remote-command template;
- :mod:`.child`: what runs on each host (``python -m d2lnets.training.launch --child``).
"""
from .command import MAX_PROCESSES, MAX_SECONDS, Job, check_host, check_job, check_seconds, check_worker_command
from .hosts import DEFAULT_PORT, DEFAULT_REMOTE, launch_hosts, place, read_hosts, remote_command
from .job import exit_status, free_port, free_ports, signal_name
from .local import launch, role_env

__all__ = ['DEFAULT_PORT', 'DEFAULT_REMOTE', 'Job', 'MAX_PROCESSES', 'MAX_SECONDS', 'check_host', 'check_job',
           'check_seconds', 'check_worker_command', 'exit_status', 'free_port', 'free_ports', 'launch',
           'launch_hosts', 'place', 'read_hosts', 'remote_command', 'role_env', 'signal_name']
