"""The fused kernels' cache and build, when things go wrong (issue 19,
principles 6 and 7): an unwritable D2LNETS_CACHE is one line with the fix,
and an interrupted build leaves no compiler running and no temporary; and the
cache's key asks the compiler for its version once per process."""
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from proctools import pids_with_env

ROOT = Path(__file__).resolve().parent.parent
TRAIN = [sys.executable, '-m', 'd2lnets', 'train', 'lenet', '--epochs', '1', '--limit', '256', '--quiet']


def one_warning(cache: str) -> str:
    return ('d2lnets train: warning: d2lnets runs LeNet-style blocks without its fused CPU kernels, 2-3x slower: '
            'cannot write the fused kernels to %s; set D2LNETS_CACHE to a writable folder' % cache)


def test_a_cache_below_a_file_is_one_line_and_training_goes_on(tmp_path):
    (tmp_path / 'file').write_text('')
    cache = tmp_path / 'file' / 'cache'
    done = subprocess.run(TRAIN + ['--out', tmp_path / 'run'], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, D2LNETS_CACHE=str(cache)))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == [one_warning('%s (Not a directory)' % cache)]
    assert (tmp_path / 'run' / 'model.params').is_file()


def test_a_read_only_cache_is_one_line_before_any_compiler_runs(tmp_path):
    if os.geteuid() != 0:
        pytest.fail('this test needs root, to mount a read-only tmpfs in a namespace of its own')
    cache = tmp_path / 'ro'
    cache.mkdir()
    script = 'mount -t tmpfs -o ro none "$1" && shift && exec "$@"'
    done = subprocess.run(['unshare', '--mount', '--', 'sh', '-c', script, 'sh', str(cache), *map(str, TRAIN),
                           '--out', str(tmp_path / 'run')], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, D2LNETS_CACHE=str(cache)))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == [one_warning('%s (not writable)' % cache)]


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT], ids=['SIGTERM', 'SIGINT'])
def test_an_interrupted_build_ends_the_compiler_and_leaves_nothing(tmp_path, signum):
    marker = 'd2lnets-test-%s' % uuid.uuid4().hex
    cache = tmp_path / 'cache'
    proc = subprocess.Popen([sys.executable, '-c', 'import d2lnets.perf.kernels_build as f; f.build("avx2")'],
                            env=dict(os.environ, D2LNETS_CACHE=str(cache), D2LNETS_TEST_MARK=marker),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def compiler_pids():
            return {pid for pid in pids_with_env(marker) if pid != proc.pid}
        deadline = time.monotonic() + 60
        while not any(_name(pid) == 'cc1plus' for pid in compiler_pids()):
            assert time.monotonic() < deadline and proc.poll() is None, 'the compiler never started'
            time.sleep(0.05)
        started = compiler_pids()
        proc.send_signal(signum)
        proc.communicate(timeout=30)
        # Ended by the signal, as it would have been (Python re-raises an uncaught Ctrl-C as SIGINT).
        assert proc.returncode == -signum, proc.stderr
        time.sleep(0.5)
        assert not [pid for pid in started if _alive(pid)], 'the compiler outlived the build'
        assert sorted(p.name for p in cache.iterdir()) == [], 'temporaries left in the cache'
    finally:
        for pid in pids_with_env(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _name(pid: int) -> str:
    try:
        return Path('/proc/%d/comm' % pid).read_text().strip()
    except OSError:
        return ''


def _alive(pid: int) -> bool:
    try:
        return Path('/proc/%d/stat' % pid).read_text().split(') ', 1)[1][0] != 'Z'
    except (OSError, IndexError):
        return False


# A compiler that logs each launch, then runs the real one: the cache's key asks it for its --version.
LOGGING_CXX = """#!/bin/sh
echo "$@" >> "%(log)s"
exec "%(real)s" "$@"
"""


def _logging_compiler(folder: Path, log: Path) -> Path:
    import shutil
    real = shutil.which('g++')
    if real is None:
        pytest.skip('no g++ here to stand behind the logging compiler')
    folder.mkdir()
    cxx = folder / 'g++'
    cxx.write_text(LOGGING_CXX % {'log': log, 'real': real})
    cxx.chmod(0o755)
    return cxx


def test_the_compilers_version_is_asked_once_per_process_and_compiler(tmp_path, monkeypatch):
    """library_path() is called by every build, load and `d2lnets info`: the compiler's
    --version runs once per compiler in a process, not once a call."""
    from d2lnets.perf import kernels_build
    log = tmp_path / 'launches.log'
    first = _logging_compiler(tmp_path / 'first', log)
    monkeypatch.setenv('D2LNETS_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setenv('CXX', str(first))
    path = kernels_build.library_path('avx2')
    assert kernels_build.library_path('avx2') == path
    assert kernels_build.library_path('avx512') != path      # another variant, the same compiler: not asked again
    assert log.read_text().splitlines() == ['--version']
    # Another compiler, chosen by PATH (g++ is CXX's default), is asked once too, and keys another library.
    second = _logging_compiler(tmp_path / 'second', log)
    monkeypatch.delenv('CXX')
    monkeypatch.setenv('PATH', '%s%s%s' % (second.parent, os.pathsep, os.environ['PATH']))
    other = kernels_build.library_path('avx2')
    assert kernels_build.library_path('avx2') == other != path
    assert log.read_text().splitlines() == ['--version', '--version']
    # The first again: nothing launched, the same key as before.
    monkeypatch.setenv('CXX', str(first))
    assert kernels_build.library_path('avx2') == path
    assert log.read_text().splitlines() == ['--version', '--version']
    # The first replaced in place (an upgrade): asked again.
    first.write_text(first.read_text() + '# upgraded\n')
    kernels_build.library_path('avx2')
    assert log.read_text().splitlines() == ['--version'] * 3
    assert not (tmp_path / 'cache').exists()     # library_path only names the file


def test_the_cache_key_is_the_sources_bytes_not_where_the_checkout_is(tmp_path, monkeypatch):
    """A second clone, or this folder moved, finds the library the first built (on 6a8ca50 the
    source's absolute path was part of the key, so each checkout built its own)."""
    from d2lnets.perf import kernels_build
    here = kernels_build.library_path('avx2')
    copy = tmp_path / 'elsewhere' / 'csrc' / kernels_build.SOURCE.name
    copy.parent.mkdir(parents=True)
    copy.write_bytes(kernels_build.SOURCE.read_bytes())
    monkeypatch.setattr(kernels_build, 'SOURCE', copy)
    assert kernels_build.library_path('avx2') == here
    copy.write_bytes(copy.read_bytes() + b'\n// changed\n')
    assert kernels_build.library_path('avx2') != here
