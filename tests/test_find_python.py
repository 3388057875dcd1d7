"""Which Python `make` uses (issue 18): scripts/find-python.sh takes 3.12,
then 3.11, on PATH, then in pyenv's folder; PYTHON= chooses; anything else
is one message naming the supported versions and how to get one. Real
interpreters, linked into folders the test makes."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / 'scripts' / 'find-python.sh'
THIS = '%d.%d' % sys.version_info[:2]
BASE = Path(os.path.realpath(getattr(sys, '_base_executable', sys.executable)))


def find(tmp_path, *args, path_pythons=(), pyenv_pythons=()):
    """Run the script with only ``path_pythons`` on PATH (name -> interpreter)
    and ``pyenv_pythons`` as pyenv versions; (status, stdout, stderr)."""
    bin_dir, pyenv = tmp_path / 'bin', tmp_path / 'pyenv'
    bin_dir.mkdir(exist_ok=True)
    for name, target in path_pythons:
        (bin_dir / name).symlink_to(target)
    for version, target in pyenv_pythons:
        folder = pyenv / 'versions' / version / 'bin'
        folder.mkdir(parents=True)
        (folder / ('python' + version.rsplit('.', 1)[0])).symlink_to(target)
    for tool in ('bash', 'ls', 'sort'):
        if not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(subprocess.run(['which', tool], capture_output=True,
                                                       text=True).stdout.strip())
    env = {'PATH': str(bin_dir), 'PYENV_ROOT': str(pyenv), 'HOME': str(tmp_path)}
    done = subprocess.run([str(bin_dir / 'bash'), str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=60)
    return done.returncode, done.stdout, done.stderr


def test_the_running_python_is_found_on_path_as_itself(tmp_path):
    code, out, err = find(tmp_path, path_pythons=[('python' + THIS, BASE)])
    assert (code, err) == (0, '')
    # The path the interpreter reports (here the link on PATH), and its version.
    assert out.split() == [str(tmp_path / 'bin' / ('python' + THIS)), THIS]


def test_pyenv_is_looked_in_when_path_has_none(tmp_path):
    code, out, err = find(tmp_path, pyenv_pythons=[(THIS + '.0', BASE)])
    assert code == 0 and out.split()[1] == THIS, err


def test_a_python_of_the_wrong_version_under_a_supported_name_is_passed_over(tmp_path):
    # python3.12 on PATH that is really this Python only counts if this is 3.12.
    other = '3.11' if THIS == '3.12' else '3.12'
    code, out, err = find(tmp_path, path_pythons=[('python' + other, BASE)])
    assert code == 1 and out == ''
    assert 'no Python 3.12 or 3.11 found' in err and 'pyenv install 3.12' in err


def test_python_chooses_and_an_unsupported_one_is_refused_in_one_message(tmp_path):
    code, out, err = find(tmp_path, str(BASE))
    assert code == 0 and out.split()[1] == THIS
    code, out, err = find(tmp_path, str(tmp_path / 'nothere'))
    assert code == 1 and len(err.strip().splitlines()) == 1 and 'does not run' in err
    python313 = Path(os.path.expanduser('~/.pyenv/versions/3.13.0/bin/python3.13'))
    if not python313.exists():
        pytest.skip('no Python 3.13 here to refuse')
    code, out, err = find(tmp_path, str(python313))
    assert code == 1 and err.strip().splitlines() == [
        'make: PYTHON=%s is Python 3.13; d2lnets supports Python 3.12 and 3.11 (MXNet 1.9.1, the last release, '
        'needs numpy 1.x, whose wheels stop at Python 3.12). Give one of those, or leave PYTHON unset to look for '
        'one.' % python313]


def test_all_lists_each_supported_version_once_newest_first(tmp_path):
    code, out, err = find(tmp_path, '--all', path_pythons=[('python' + THIS, BASE)],
                          pyenv_pythons=[(THIS + '.0', BASE), (THIS + '.1', BASE)])
    assert code == 0 and [line.split()[1] for line in out.splitlines()] == [THIS]
