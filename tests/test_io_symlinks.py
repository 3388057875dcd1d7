"""Every path d2lnets.io writes refuses to follow a symbolic link (issue 19, principle 1).

Each function of ``io.WRITERS`` is pointed at a path in a run folder that is a
real symbolic link to a file outside it, a symbolic link to a folder outside
it, or a FIFO: it refuses in one line (the cleanup, remove_stale_temporaries,
leaves it alone) and the file and folder outside are byte-identical after.
A test reads io.py and checks that ``io.WRITERS`` names every public function
that writes, truncates, replaces or deletes a file, so a new writer must join it.
"""
import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from d2lnets import io

VICTIM = b'precious data\n'
KINDS = ('symlink-to-file', 'symlink-to-folder', 'fifo')


@pytest.fixture
def scene(tmp_path):
    """(the run folder, the victim file and the victim folder outside it)."""
    outside = tmp_path / 'outside'
    (outside / 'folder').mkdir(parents=True)
    (outside / 'victim.txt').write_bytes(VICTIM)
    (outside / 'folder' / 'kept.txt').write_bytes(VICTIM)
    run = tmp_path / 'run'
    run.mkdir()
    return run, outside / 'victim.txt', outside / 'folder'


def plant(path, kind, victim, folder):
    if kind == 'symlink-to-file':
        path.symlink_to(victim)
    elif kind == 'symlink-to-folder':
        path.symlink_to(folder, target_is_directory=True)
    else:
        os.mkfifo(path)


def outside_state(victim, folder):
    # Every byte, name and inode outside the run folder.
    return (victim.read_bytes(), os.stat(victim).st_ino, os.stat(victim).st_nlink,
            sorted((p.name, p.read_bytes()) for p in folder.iterdir()))


@pytest.fixture
def no_hang():
    """A FIFO opened the wrong way blocks forever: fail the test after 20 s instead."""
    def expire(signum, frame):
        raise TimeoutError('blocked on a FIFO or an endless file')
    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


@pytest.fixture
def served(tmp_path, http_server):
    """``served()``: the URL of a 1000-byte file on a real HTTP server on 127.0.0.1, started then."""
    (tmp_path / 'served').mkdir()
    (tmp_path / 'served' / 'f.bin').write_bytes(b'x' * 1000)
    return lambda: http_server(tmp_path / 'served') + 'f.bin'


def _staged(path):
    staged = path.parent.parent / 'staged'
    staged.write_bytes(b'new')
    return staged


# How each writer is pointed at ``path``; a writer without an entry fails test_every_writer_is_tried.
CALLS = {
    'atomic_write': lambda path, url: io.atomic_write(path, lambda tmp: Path(tmp).write_bytes(b'new')),
    'write_text': lambda path, url: io.write_text(path, 'new'),
    'write_json': lambda path, url: io.write_json(path, {'new': 1}),
    'replace_all': lambda path, url: io.replace_all([_staged(path)], [path]),
    'open_regular': lambda path, url: os.close(io.open_regular(path)),
    'create_new': lambda path, url: os.close(io.create_new(path)),
    'download': lambda path, url: io.download(url(), path, progress=False),
}
# Writers that take a folder and remove what dead processes left in it: a planted entry is left alone.
CLEANERS = {
    'remove_stale_temporaries': lambda path: io.remove_stale_temporaries(path.parent),
}
# remove_own refuses in its own words (it deletes, it does not write).
CALLS['remove_own'] = lambda path, url: io.remove_own(path)
DELETES = ('remove_own',)
# Writers that write through a temporary beside their target (io.temporary_name).
THROUGH_TEMPORARY = ('atomic_write', 'write_text', 'write_json', 'replace_all', 'download')


def test_every_writer_is_tried():
    assert sorted(w.__name__ for w in io.WRITERS) == sorted(list(CALLS) + list(CLEANERS))


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('writer', sorted(CALLS))
def test_a_writer_pointed_at_a_link_or_a_fifo_refuses_in_one_line(scene, served, http_server, no_hang, writer, kind):
    run, victim, folder = scene
    path = run / 'target'
    plant(path, kind, victim, folder)
    before = outside_state(victim, folder)
    with pytest.raises(ValueError) as info:
        CALLS[writer](path, served)
    words = 'deletes only regular files of its own: remove it yourself' if writer in DELETES else \
        'writes only regular files of its own there: remove it'
    assert str(info.value) == '%s is %s; d2lnets %s, or choose another folder' % (
        path, 'not a regular file' if kind == 'fifo' else 'a symbolic link', words)
    assert outside_state(victim, folder) == before
    assert sorted(os.listdir(run)) == ['target'] and (path.is_symlink() or path.is_fifo())
    assert http_server.requests == []       # refused before anything is fetched


@pytest.mark.parametrize('kind', KINDS + ('hardlink',))
@pytest.mark.parametrize('cleaner', sorted(CLEANERS))
def test_the_cleanup_leaves_a_planted_temporary_alone(scene, no_hang, cleaner, kind):
    # Named as the temporary of a process no longer running, but a link, a FIFO or a hard link of
    # someone's file: d2lnets did not make it, so it neither follows nor removes it.
    run, victim, folder = scene
    path = run / ('.model.params.%d.0123abcd.tmp' % dead_pid())
    if kind == 'hardlink':
        os.link(victim, path)
    else:
        plant(path, kind, victim, folder)
    before = outside_state(victim, folder)
    assert CLEANERS[cleaner](path) == 0
    assert outside_state(victim, folder) == before
    assert os.listdir(run) == [path.name]


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('writer', THROUGH_TEMPORARY)
def test_a_temporary_planted_under_its_name_is_not_written_through(scene, served, no_hang, monkeypatch, writer,
                                                                     kind):
    # Someone who guessed the temporary's name (here: it is forced) planted a link or a FIFO there:
    # the temporary is created with O_CREAT | O_EXCL | O_NOFOLLOW, so nothing is written through it.
    run, victim, folder = scene
    guessed = run / '.target.guessed.tmp'
    monkeypatch.setattr(io, 'temporary_name', lambda path, suffix='.tmp': str(guessed))
    plant(guessed, kind, victim, folder)
    before = outside_state(victim, folder)
    with pytest.raises(ValueError) as info:
        CALLS[writer](run / 'target', served)
    assert str(info.value) == '%s is %s; d2lnets writes only regular files of its own there: remove it, or ' \
                              'choose another folder' % (guessed, 'not a regular file' if kind == 'fifo'
                                                         else 'a symbolic link')
    assert outside_state(victim, folder) == before
    assert os.listdir(run) == [guessed.name] and (guessed.is_symlink() or guessed.is_fifo())


@pytest.mark.parametrize('kind', ['fifo', 'link-to-fifo', 'link-to-device'])
def test_sha1sum_reads_only_a_regular_file(tmp_path, no_hang, kind):
    path = tmp_path / 'weights.params'
    if kind == 'fifo':
        os.mkfifo(path)                 # opening it to read would wait for a writer forever
    elif kind == 'link-to-fifo':
        os.mkfifo(tmp_path / 'fifo')
        path.symlink_to(tmp_path / 'fifo')
    else:
        path.symlink_to('/dev/zero')    # never ends
    with pytest.raises(ValueError, match='^%s is not a regular file$' % path):
        io.sha1sum(path)


# --- io.WRITERS names every writer: io.py read as a syntax tree ---------------------------------

# What writes, truncates, replaces or deletes a file, called directly.
WRITE_CALLS = {'os.unlink', 'os.remove', 'os.rmdir', 'os.replace', 'os.rename', 'os.link', 'os.symlink', 'os.chmod',
               'os.truncate', 'os.ftruncate', 'os.write', 'os.mkdir', 'os.makedirs', 'os.mkfifo', 'shutil.rmtree',
               'shutil.move', 'shutil.copy', 'shutil.copy2', 'shutil.copyfile', 'shutil.copyfileobj'}
WRITE_METHODS = {'mkdir', 'write_text', 'write_bytes', 'unlink', 'rmdir', 'touch', 'symlink_to', 'hardlink_to',
                 'rename', 'chmod'}
WRITE_FLAGS = {'O_WRONLY', 'O_RDWR', 'O_CREAT', 'O_TRUNC', 'O_APPEND'}


def _writes(call: ast.Call) -> bool:
    func = call.func
    name = '%s.%s' % (func.value.id, func.attr) if isinstance(func, ast.Attribute) and \
        isinstance(func.value, ast.Name) else None
    if name in WRITE_CALLS:
        return True
    if name == 'os.open':
        return any(isinstance(n, ast.Attribute) and n.attr in WRITE_FLAGS for arg in call.args[1:]
                   for n in ast.walk(arg))
    if isinstance(func, ast.Name) and func.id == 'open':
        modes = call.args[1:2] + [k.value for k in call.keywords if k.arg == 'mode']
        return any(isinstance(m, ast.Constant) and set(str(m.value)) & set('wax+') for m in modes)
    return isinstance(func, ast.Attribute) and name is None and func.attr in WRITE_METHODS


def writing_functions(source: str) -> set:
    """The module-level functions of ``source`` that write a file, themselves or through another one."""
    functions = {node.name: node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}
    calls = {name: [c for c in ast.walk(node) if isinstance(c, ast.Call)] for name, node in functions.items()}
    writers = {name for name, found in calls.items() if any(_writes(c) for c in found)}
    while True:
        more = {name for name, found in calls.items() if name not in writers and
                any(isinstance(c.func, ast.Name) and c.func.id in writers for c in found)}
        if not more:
            return writers
        writers |= more


def test_writers_names_every_public_function_of_io_that_writes():
    found = {name for name in writing_functions(Path(io.__file__).read_text()) if not name.startswith('_')}
    assert found == {w.__name__ for w in io.WRITERS}


def test_the_reading_of_io_finds_each_kind_of_writer():
    probe = ('import os, shutil\n'
             'def a(p): os.replace(p, p + "x")\n'
             'def b(p): open(p, mode="ab")\n'
             'def c(p): return os.open(p, os.O_RDONLY | os.O_CREAT)\n'
             'def d(p): p.parent.mkdir()\n'
             'def e(p): return a(p)\n'
             'def f(p): return open(p, "rb").read() + str(os.open(p, os.O_RDONLY))\n'
             'def g(p): return "a b".replace(" ", "")\n')
    assert writing_functions(probe) == {'a', 'b', 'c', 'd', 'e'}


@pytest.mark.parametrize('kind', ['fifo', 'link-to-device', 'big', 'lines', 'fits'])
def test_read_bounded_checks_kind_size_and_lines_before_reading(tmp_path, no_hang, kind):
    path = tmp_path / 'hosts'
    if kind == 'fifo':
        os.mkfifo(path)
    elif kind == 'link-to-device':
        path.symlink_to('/dev/zero')
    else:
        path.write_bytes({'big': b'x' * 101, 'lines': b'\n' * 11, 'fits': b'a\nb'}[kind])
    why = {'fifo': 'not a regular file', 'link-to-device': 'not a regular file',
           'big': '101 bytes, more than the 100 a file of its kind can have',
           'lines': '11 lines, more than the 10 a file of its kind can have'}
    if kind == 'fits':
        assert io.read_bounded(path, 100, max_lines=2) == b'a\nb'
        return
    with pytest.raises(io.DamagedFile) as info:
        io.read_bounded(path, 100, 'the hosts file', 'give a text file', max_lines=10)
    assert str(info.value) == 'the hosts file %s is damaged (%s); give a text file' % (path, why[kind])
