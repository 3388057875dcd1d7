"""On each host: ``python -m d2lnets.training.launch --child [--threads-divisor K] -- COMMAND``.

Runs COMMAND for a launcher elsewhere, stops it when the launcher is gone (its
stdin closes, or its parent dies), and reports its pid and status in lines
marked with a nonce the launcher sent on its stdin (out of the workers' reach).
"""
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from typing import Sequence

from ...io import usable_cores
from ...runtime import set_by_user
from .job import MARK, PR_SET_PDEATHSIG, die_with, exit_status, prctl

def child_main(argv: Sequence[str]) -> int:
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
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=die_with(os.getpid()))
    except OSError as err:
        print('cannot run %s on %s: %s' % (command[0], socket.gethostname(), err.strerror or err), flush=True)
        return 127
    print('%s %s started pid %d' % (MARK, nonce, proc.pid), flush=True)

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
        print('%s %s ended %d' % (MARK, nonce, code), flush=True)
    return exit_status(code)
