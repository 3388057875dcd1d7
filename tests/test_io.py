"""d2lnets.io: atomic writes, temporaries of dead processes, full disks, downloads."""
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from d2lnets import io


def test_atomic_write_keeps_the_old_file_on_error(tmp_path):
    target = tmp_path / 'f.txt'
    io.write_text(target, 'old')

    def fail(tmp):
        open(tmp, 'w').write('half')
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        io.atomic_write(target, fail)
    assert target.read_text() == 'old' and [p.name for p in tmp_path.iterdir()] == ['f.txt']


def test_atomic_write_gives_the_mode_open_would(tmp_path):
    mask = os.umask(0o022)
    try:
        path = io.write_text(tmp_path / 'meta.json', '{}')
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644    # not mkstemp's private 0600


def test_temporaries_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    # A real process starts writing, then is killed with SIGKILL mid-write.
    code = ('import sys, time; from d2lnets import io\n'
            'def slow(tmp):\n'
            '    open(tmp, "w").write("half"); print("writing", flush=True); time.sleep(60)\n'
            'io.atomic_write(sys.argv[1], slow)\n')
    proc = subprocess.Popen([sys.executable, '-c', code, str(tmp_path / 'model.params')], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == 'writing'
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith('.model.params.%d.' % proc.pid) and left[0].endswith('.tmp')
    mine = tmp_path / ('.x.%d.0123abcd.tmp' % os.getpid())   # a live process's temporary is left alone
    mine.write_text('in progress')
    io.write_text(tmp_path / 'history.csv', 'epoch\n')
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, 'history.csv'])


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs (root only: CI runs as root)."""
    mount = tmp_path / 'tiny'
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip('mounting a tmpfs needs root')
    yield mount
    subprocess.run(['umount', str(mount)], check=True)


def test_a_full_disk_is_one_clear_error_and_keeps_the_old_file(tiny_disk):
    target = tiny_disk / 'model.params'
    io.write_text(target, 'old weights')
    with pytest.raises(io.DiskFull, match='no space left on the device to write .*model.params; free some space'):
        io.write_text(target, 'x' * (2 << 20))
    assert target.read_text() == 'old weights' and os.listdir(tiny_disk) == ['model.params']


def test_a_full_disk_is_reported_whatever_library_failed(tiny_disk):
    # MXNet reports a full disk as an MXNetError, not an OSError.
    import mxnet as mx
    big = {'w': mx.nd.zeros((1 << 19,))}   # 2 MiB
    with pytest.raises(io.DiskFull):
        io.atomic_write(tiny_disk / 'w.params', lambda tmp: mx.nd.save(tmp, big))
    assert os.listdir(tiny_disk) == []


def test_download_checks_length_and_sha1_and_leaves_nothing_on_failure(tmp_path, http_server):
    served = tmp_path / 'served'
    served.mkdir()
    (served / 'f.bin').write_bytes(b'0123456789' * 1000)
    url = http_server(served) + 'f.bin'
    got = io.download(url, tmp_path / 'out' / 'f.bin', sha1=io.sha1sum(served / 'f.bin'), progress=False)
    assert got.read_bytes() == (served / 'f.bin').read_bytes()
    with pytest.raises(OSError, match='could not download .*f.bin: the file has sha1 .*, expected 0000'):
        io.download(url, tmp_path / 'bad' / 'f.bin', sha1='0' * 40, progress=False)
    assert os.listdir(tmp_path / 'bad') == []
    with pytest.raises(OSError, match='closed after 100 of 10000 bytes'):
        io.download(http_server(served, drop_after=100) + 'f.bin', tmp_path / 'bad' / 'f.bin', progress=False)
    assert os.listdir(tmp_path / 'bad') == []


def test_a_trickling_server_hits_the_deadline_for_the_whole_download(tmp_path, http_server):
    served = tmp_path / 'served'
    served.mkdir()
    (served / 'f.bin').write_bytes(b'x' * 1000)
    start = time.monotonic()
    with pytest.raises(OSError, match=r'gave up after \d+ s with .* of 1000 bytes'):
        io.download(http_server(served, trickle=0.5) + 'f.bin', tmp_path / 'f.bin', progress=False,
                    timeout=5, deadline=1.5)
    assert time.monotonic() - start < 5
    assert os.listdir(tmp_path) == ['served']


def test_environment(monkeypatch, tmp_path):
    monkeypatch.setenv('MXNET_HOME', str(tmp_path))
    monkeypatch.setenv('MXNET_GLUON_REPO', 'http://mirror.example/repo')
    assert io.mxnet_home() == tmp_path and io.gluon_repo() == 'http://mirror.example/repo/'
    monkeypatch.delenv('MXNET_HOME')
    monkeypatch.delenv('MXNET_GLUON_REPO')
    assert io.mxnet_home() == os.path.expanduser('~/.mxnet') or str(io.mxnet_home()) == os.path.expanduser('~/.mxnet')
    assert io.gluon_repo('https://x/') == 'https://x/'
    assert io.usable_cores() == len(os.sched_getaffinity(0))
