"""A run folder writes only its own regular files (issue 19, principle 1): a
symbolic link, a FIFO or a hard link planted in it is refused in one line and
nothing outside the run is written. Real symlinks, FIFOs and hard links."""
import datetime
import os
import re
import shutil
import subprocess
import sys

import pytest

from d2lnets import io
from d2lnets.cli import main
from d2lnets.training.runs import RunFolder

from test_run import SMALL, one_epoch, one_error_line, run_copy  # noqa: F401  (fixtures)

VICTIM = 'precious data\n'


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / 'victim.txt'
    path.write_text(VICTIM)
    return path


def plant_named(path, kind, victim):
    """``path`` as a symbolic link to, a hard link of, ``victim``, or a FIFO."""
    if kind == 'symlink':
        path.symlink_to(victim)
    elif kind == 'hardlink':
        os.link(victim, path)
    else:
        os.mkfifo(path)
    return path


def plant(folder, kind, victim):
    """``folder/.lock`` as a symbolic link to, or a hard link of, ``victim``, or a FIFO."""
    return plant_named(folder / '.lock', kind, victim)


WHAT = {'symlink': 'a symbolic link', 'hardlink': r'a hard link \(2 names for one file\)',
        'fifo': 'not a regular file'}


@pytest.mark.parametrize('kind', sorted(WHAT))
def test_a_planted_lock_is_refused_and_its_target_untouched_for_a_new_run(tmp_path, victim, capsys, kind):
    run = tmp_path / 'run'
    run.mkdir()
    lock = plant(run, kind, victim)
    line = one_error_line(capsys, 'train', 'lenet', '--out', run, *SMALL)
    assert line == ('d2lnets train: error: %s is %s; d2lnets writes only regular files of its own there: remove it, '
                    'or choose another folder' % (lock, WHAT[kind].replace('\\', '')))
    assert victim.read_text() == VICTIM and sorted(os.listdir(run)) == ['.lock']


@pytest.mark.parametrize('kind', ['symlink', 'hardlink'])
def test_a_planted_lock_is_refused_for_a_resume(run_copy, victim, capsys, kind):
    before = sorted(os.listdir(run_copy))
    plant(run_copy, kind, victim)
    line = one_error_line(capsys, 'train', '--resume', run_copy, '--epochs', '2', '--quiet')
    assert 'is %s; d2lnets writes only regular files' % WHAT[kind].replace('\\', '') in line
    assert victim.read_text() == VICTIM
    assert sorted(os.listdir(run_copy)) == sorted(before + ['.lock'])


def test_a_checkpoint_folder_that_links_elsewhere_is_refused(run_copy, tmp_path, capsys):
    elsewhere = tmp_path / 'elsewhere'
    shutil.move(str(run_copy / 'checkpoint'), str(elsewhere))
    (run_copy / 'checkpoint').symlink_to(elsewhere)
    listing = sorted(os.listdir(elsewhere))
    with pytest.raises(ValueError, match='checkpoint is a symbolic link; d2lnets writes a run'):
        RunFolder.for_resume(run_copy)
    assert sorted(os.listdir(elsewhere)) == listing


@pytest.mark.parametrize('kind', ['symlink', 'fifo'])
def test_atomic_write_replaces_no_link_and_no_fifo(tmp_path, victim, kind):
    path = tmp_path / 'history.csv'
    path.symlink_to(victim) if kind == 'symlink' else os.mkfifo(path)
    with pytest.raises(ValueError, match='history.csv is (a symbolic link|not a regular file); d2lnets writes'):
        io.write_text(path, 'epoch\n')
    assert victim.read_text() == VICTIM and (path.is_symlink() or path.is_fifo())
    assert sorted(os.listdir(tmp_path)) == sorted(['victim.txt', 'history.csv'])


def test_a_failed_first_epoch_removes_the_parent_folders_it_created_and_no_other(tmp_path, capsys):
    out = tmp_path / 'a' / 'b' / 'run'
    line = one_error_line(capsys, 'train', 'lenet', '--out', out, '--lr', '1e38', *SMALL)
    assert 'became NaN or infinite in epoch 1' in line
    assert sorted(os.listdir(tmp_path)) == []
    (tmp_path / 'a').mkdir()           # a folder that was there before stays
    (tmp_path / 'a' / 'keep.txt').write_text(VICTIM)
    one_error_line(capsys, 'train', 'lenet', '--out', out, '--lr', '1e38', *SMALL)
    assert sorted(os.listdir(tmp_path)) == ['a'] and sorted(os.listdir(tmp_path / 'a')) == ['keep.txt']


@pytest.fixture
def outside(tmp_path):
    """A folder outside the run with a file in it: where a planted link points."""
    folder = tmp_path / 'outside'
    folder.mkdir()
    (folder / 'keep.txt').write_text(VICTIM)
    return folder


def _swapped_for_a_link(folder, outside):
    # What another process may do mid-run: move the folder away, put a link to `outside` in its place.
    os.rename(folder, folder.with_name(folder.name + '-moved'))
    folder.symlink_to(outside, target_is_directory=True)


def _refused(path):
    return ('%s is a symbolic link; d2lnets deletes only files and folders of its own: remove it yourself, or '
            'choose another folder' % path)


@pytest.mark.parametrize('swapped', ['run', 'parent'])
def test_a_folder_it_made_swapped_for_a_link_is_refused_at_cleanup_and_the_outside_kept(tmp_path, outside, swapped):
    # The run's files went where the link points: the user hears it in one line, the link stays for them to
    # see, and nothing it points to is deleted. The run's own folder, or a parent folder it made for it.
    run = tmp_path / 'new' / 'run'
    folder = run if swapped == 'run' else run.parent
    with pytest.raises(ValueError) as info:
        with RunFolder.for_new_run(run):
            _swapped_for_a_link(folder, outside)
            raise RuntimeError('the first epoch failed')
    assert str(info.value) == _refused(folder)
    assert folder.is_symlink() and os.listdir(outside) == ['keep.txt']
    assert (outside / 'keep.txt').read_text() == VICTIM


def test_a_failed_run_in_the_users_folder_removes_its_folders_and_no_link_nor_what_one_points_to(tmp_path, outside):
    # A folder the user gave: what the run wrote goes, a link inside it goes alone (rmtree's walk follows no
    # link), and a link put in the folder itself is the user's to keep.
    run = tmp_path / 'run'
    run.mkdir()
    with pytest.raises(RuntimeError):
        with RunFolder.for_new_run(run):
            (run / 'checkpoint').mkdir()
            (run / 'checkpoint' / 'link').symlink_to(outside, target_is_directory=True)
            (run / 'results').symlink_to(outside, target_is_directory=True)
            raise RuntimeError('the first epoch failed')
    assert os.listdir(run) == ['results'] and (run / 'results').is_symlink()
    assert os.listdir(outside) == ['keep.txt'] and (outside / 'keep.txt').read_text() == VICTIM


@pytest.mark.parametrize('what', ['empty folder', 'tree'])
def test_io_remove_own_removes_a_folder_of_its_own_and_refuses_a_link_to_one(tmp_path, outside, what):
    link = tmp_path / 'link'
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match='^%s$' % re.escape(_refused(link))):
        io.remove_own(link, what)
    assert link.is_symlink() and os.listdir(outside) == ['keep.txt']
    mine = tmp_path / 'mine'
    mine.mkdir()
    (mine / 'link').symlink_to(outside, target_is_directory=True)
    if what == 'empty folder':
        with pytest.raises(OSError):            # something in it: it stays, and the link in it
            io.remove_own(mine, what)
        assert os.listdir(mine) == ['link']
        (mine / 'link').unlink()
    io.remove_own(mine, what)                   # a tree goes with the link in it, which is not followed
    assert not os.path.lexists(mine)
    assert os.listdir(outside) == ['keep.txt'] and (outside / 'keep.txt').read_text() == VICTIM


def test_runs_started_in_the_same_second_without_out_get_folders_of_their_own(tmp_path):
    # Every default name of the next minute is taken by another run: each process makes NAME-2, NAME-3, ...
    # with an exclusive mkdir, so two processes started at once never share (or take over) one folder.
    now = datetime.datetime.now()
    taken = {'lenet-%s' % (now + datetime.timedelta(seconds=s)).strftime('%Y%m%d-%H%M%S') for s in range(-1, 60)}
    for name in taken:
        (tmp_path / 'runs' / name).mkdir(parents=True)
        (tmp_path / 'runs' / name / 'meta.json').write_text('{}')
        (tmp_path / 'runs' / name / 'command.txt').write_text('another run\n')
    procs = [subprocess.Popen([sys.executable, '-m', 'd2lnets', 'train', 'lenet', '--epochs', '1', *SMALL],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0, 0], results
    new = sorted(set(os.listdir(tmp_path / 'runs')) - taken)
    assert len(new) == 2 and all(n.rsplit('-', 1)[0] in taken and n.rsplit('-', 1)[1] in ('2', '3') for n in new)
    for name in new:
        assert (tmp_path / 'runs' / name / 'model.params').is_file()
    for name in taken:
        assert sorted(os.listdir(tmp_path / 'runs' / name)) == ['command.txt', 'meta.json']
        assert (tmp_path / 'runs' / name / 'command.txt').read_text() == 'another run\n'


@pytest.mark.parametrize('kind', ['symlink', 'fifo'])
def test_confusion_is_never_written_through_a_link_or_into_a_fifo(tmp_path, victim, capsys, kind):
    path = tmp_path / 'c.png'
    path.symlink_to(victim) if kind == 'symlink' else os.mkfifo(path)
    assert main(['evaluate', 'lenet', '--pretrained', '--limit', '100', '--confusion', str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ''        # refused before the evaluation
    assert err.splitlines() == ['d2lnets evaluate: error: %s is %s; d2lnets writes only regular files of its own '
                                'there: remove it, or choose another folder'
                                % (path, 'a symbolic link' if kind == 'symlink' else 'not a regular file')]
    assert victim.read_text() == VICTIM and (path.is_symlink() or path.is_fifo())


@pytest.mark.parametrize('kind', ['symlink', 'fifo'])
def test_an_export_replaces_no_link_and_no_fifo(tmp_path, victim, capsys, kind):
    path = tmp_path / 'lenet.onnx'
    path.symlink_to(victim) if kind == 'symlink' else os.mkfifo(path)
    assert main(['export', 'lenet', '--pretrained', '--format', 'onnx', '--out', str(tmp_path / 'lenet')]) == 1
    assert capsys.readouterr().err.splitlines() == [
        'd2lnets export: error: %s is %s; d2lnets writes only regular files of its own there: remove it, or choose '
        'another folder' % (path, 'a symbolic link' if kind == 'symlink' else 'not a regular file')]
    assert victim.read_text() == VICTIM and (path.is_symlink() or path.is_fifo())
    assert sorted(os.listdir(tmp_path)) == ['lenet.onnx', 'victim.txt']


def test_io_replace_all_moves_every_file_or_none(tmp_path, victim):
    staged = [tmp_path / 'staged-a', tmp_path / 'staged-b']
    for s in staged:
        s.write_text('new ' + s.name)
    targets = [tmp_path / 'a', tmp_path / 'b']
    targets[0].write_text('old a')
    targets[1].symlink_to(victim)          # the second is refused before the first moves
    with pytest.raises(ValueError, match='b is a symbolic link; d2lnets writes only regular files'):
        io.replace_all(staged, targets)
    assert targets[0].read_text() == 'old a' and victim.read_text() == VICTIM
    targets[1].unlink()
    io.replace_all(staged, targets)
    assert [t.read_text() for t in targets] == ['new staged-a', 'new staged-b']
    assert sorted(os.listdir(tmp_path)) == ['a', 'b', 'victim.txt']



@pytest.mark.parametrize('kind', sorted(WHAT))
def test_a_killed_runs_folder_holding_a_planted_file_is_refused_and_nothing_deleted(tmp_path, victim, kind):
    # The remains of a run killed in epoch 1 are replaced only if d2lnets made every file of them.
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'meta.json').write_text('{}')
    plant_named(run / 'history.csv', kind, victim)
    with pytest.raises(ValueError) as info:
        RunFolder.for_new_run(run)
    assert str(info.value) == ('%s is %s; d2lnets deletes only regular files of its own: remove it yourself, or '
                               'choose another folder' % (run / 'history.csv', WHAT[kind].replace('\\', '')))
    assert victim.read_text() == VICTIM and os.stat(victim).st_nlink == (2 if kind == 'hardlink' else 1)
    assert sorted(os.listdir(run)) == ['history.csv', 'meta.json'] and (run / 'meta.json').read_text() == '{}'


@pytest.mark.parametrize('kind', sorted(WHAT) + ['folder'])
def test_io_remove_own_deletes_only_a_file_d2lnets_made(tmp_path, victim, kind):
    path = tmp_path / 'epoch-0001.params'
    path.mkdir() if kind == 'folder' else plant_named(path, kind, victim)
    with pytest.raises(ValueError, match='^%s is %s; d2lnets deletes only regular files of its own'
                                         % (path, WHAT.get(kind, 'a folder'))):
        io.remove_own(path)
    assert os.path.lexists(path) and victim.read_text() == VICTIM
    mine = tmp_path / 'mine'
    mine.write_text('x')
    io.remove_own(mine)
    assert not os.path.lexists(mine)


def test_io_remove_own_leaves_another_users_file(tmp_path):
    if os.geteuid() != 0:
        pytest.skip('giving a file to another user needs root')
    path = tmp_path / 'epoch-0001.params'
    path.write_text(VICTIM)
    os.chown(path, 65534, 65534)
    with pytest.raises(ValueError, match='is owned by another user \\(uid 65534\\); d2lnets deletes only'):
        io.remove_own(path)
    assert path.read_text() == VICTIM


@pytest.mark.parametrize('kind', ['symlink', 'hardlink'])
def test_checkpoint_pruning_removes_only_its_own_old_epochs(tmp_path, victim, kind):
    import mxnet as mx
    from d2lnets.training.checkpoint import save_checkpoint
    net = mx.gluon.nn.Dense(2, in_units=3)
    net.initialize()
    history = {field: [] for field in ('epoch', 'loss', 'train_acc', 'test_acc', 'seconds', 'examples_per_sec')}
    folder = tmp_path / 'checkpoint'
    save_checkpoint(folder, 1, net, None, history)
    planted = folder / 'epoch-0000.params'          # an older epoch's name, planted
    plant_named(planted, kind, victim)
    save_checkpoint(folder, 2, net, None, history)
    assert sorted(os.listdir(folder)) == ['epoch-0000.params', 'epoch-0002.params', 'latest.json']
    assert victim.read_text() == VICTIM and os.path.lexists(planted)


@pytest.mark.parametrize('kind', ['fifo', 'big'])
def test_command_txt_is_read_within_a_bound(tmp_path, kind):
    # A FIFO would block the run at its start, a file of gigabytes be read whole: one line instead.
    import signal
    from d2lnets.training.runs import _append_command
    path = tmp_path / 'command.txt'
    os.mkfifo(path) if kind == 'fifo' else path.write_bytes(b'x' * (5 << 20))
    signal.alarm(20)        # before the fix the FIFO blocked forever
    try:
        with pytest.raises(ValueError) as info:
            _append_command(tmp_path, ['d2lnets', 'train'])
    finally:
        signal.alarm(0)
    assert str(info.value) == ("the run's command record %s is damaged (%s); remove it, or start a new run with "
                               "another `out`" % (path, 'not a regular file' if kind == 'fifo' else
                                          '5242880 bytes, more than the 4194304 a file of its kind can have'))
    assert path.is_fifo() or path.stat().st_size == 5 << 20
