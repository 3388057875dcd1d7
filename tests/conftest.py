import os
import subprocess
import sys
from pathlib import Path

import pytest

import d2lnets  # noqa: F401  (first: sets MXNet's process-wide defaults before mxnet is imported)

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / 'golden'


def fold(text: str) -> list:
    """Lines with runs of whitespace folded to one space, blank lines dropped."""
    return [' '.join(line.split()) for line in text.splitlines() if line.strip()]


@pytest.fixture
def golden():
    def read(name):
        return fold((GOLDEN / (name + '.txt')).read_text())
    return read


@pytest.fixture
def run_cli():
    """Run ``python -m d2lnets ARGS`` in a fresh process; return the CompletedProcess."""
    def run(*args, **kwargs):
        env = dict(os.environ, **kwargs.pop('env', {}))
        return subprocess.run([sys.executable, '-m', 'd2lnets', *map(str, args)], cwd=kwargs.pop('cwd', ROOT),
                              env=env, capture_output=True, text=True, timeout=kwargs.pop('timeout', 300))
    return run
