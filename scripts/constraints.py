"""Write constraints.txt: the exact version of every package ``make`` installs.

``requirements*.txt`` and ``setup.py`` keep ranges; ``make`` installs with
``-c constraints.txt``, so a new release of any package cannot change a
fresh clone overnight. This resolves the requirements anew in a fresh venv
for each supported Python found (``scripts/find-python.sh --all``) and
writes one file for all: a version both Pythons resolve alike is one line,
one that differs gets a ``python_version`` marker per Python.

Usage (``make constraints`` runs the first)::

    python scripts/constraints.py                  # fresh venvs, newest allowed versions
    python scripts/constraints.py --venv V1 V2     # freeze these venvs as they are

Then ``make test`` on each Python (``make test PYTHON=...``), and commit the
file only if both pass: its versions are meant to be the ones the suite
passed with.
"""
import argparse
import os
import subprocess
import sys
import tempfile
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Not constrained: the installer itself, and d2lnets (installed from the tree).
SKIP = {'pip', 'd2lnets'}
HEADER = '''\
# The exact versions `make` installs (pip install -c constraints.txt), on each
# supported Python; the ranges are in requirements*.txt and setup.py, and
# tests/test_constraints.py holds the two together. Regenerate with
# `make constraints` (scripts/constraints.py), then run `make test` on each
# Python before committing it.
'''


def freeze(python: str) -> Tuple[str, Dict[str, str]]:
    """``(X.Y, {name: version})`` installed for the venv's ``python``."""
    version = subprocess.run([python, '-c', 'import sys; print("%d.%d" % sys.version_info[:2])'],
                             check=True, capture_output=True, text=True).stdout.strip()
    lines = subprocess.run([python, '-m', 'pip', 'list', '--format=freeze', '--disable-pip-version-check'],
                           check=True, capture_output=True, text=True).stdout.split()
    pins = {}
    for line in lines:
        name, _, pinned = line.partition('==')
        key = name.lower().replace('_', '-')
        if pinned and key not in SKIP:
            pins[key] = pinned
    return version, pins


def fresh_venv(python: str, folder: str) -> str:
    """A venv of ``python`` in ``folder`` with requirements-dev.txt resolved anew; its python."""
    subprocess.run([python, '-m', 'venv', folder], check=True)
    venv_python = os.path.join(folder, 'bin', 'python')
    subprocess.run([venv_python, '-m', 'pip', 'install', '-q', '--disable-pip-version-check',
                    '-r', os.path.join(ROOT, 'requirements-dev.txt')], check=True)
    return venv_python


def merge(frozen: List[Tuple[str, Dict[str, str]]]) -> List[str]:
    """The lines of constraints.txt for the venvs' ``(version, pins)``."""
    lines = []
    for name in sorted(set().union(*(pins for _, pins in frozen))):
        versions = {python: pins.get(name) for python, pins in frozen}
        if len(set(versions.values())) == 1:
            lines.append('%s==%s' % (name, versions[frozen[0][0]]))
            continue
        for python, pinned in sorted(versions.items()):
            if pinned:
                lines.append('%s==%s; python_version == "%s"' % (name, pinned, python))
    return lines


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--venv', nargs='+', metavar='DIR', help='freeze these venvs instead of fresh ones')
    parser.add_argument('--out', default=os.path.join(ROOT, 'constraints.txt'))
    args = parser.parse_args(argv)
    if args.venv:
        frozen = [freeze(os.path.join(folder, 'bin', 'python')) for folder in args.venv]
    else:
        found = subprocess.run(['bash', os.path.join(ROOT, 'scripts', 'find-python.sh'), '--all'],
                               check=True, capture_output=True, text=True).stdout.splitlines()
        with tempfile.TemporaryDirectory(prefix='d2lnets-constraints-') as tmp:
            frozen = [freeze(fresh_venv(line.split()[0], os.path.join(tmp, line.split()[1])))
                      for line in found]
    body = HEADER + '# Resolved for Python %s.\n' % ', '.join(v for v, _ in frozen) + '\n'.join(merge(frozen)) + '\n'
    tmp_out = args.out + '.tmp'
    with open(tmp_out, 'w') as f:
        f.write(body)
    os.replace(tmp_out, args.out)
    print('wrote %s: %d packages, for Python %s' % (args.out, len(merge(frozen)), ', '.join(v for v, _ in frozen)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
