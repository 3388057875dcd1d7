"""A path d2lnets cannot encode is refused in one line (issue 19, principle 1): under a UTF-8
locale a name of bytes that are not UTF-8 reaches Python as surrogate escapes, which could be
created but never printed or written into command.txt; a NUL cannot be passed to the system."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from d2lnets import io
from d2lnets.training.runs import RunFolder

ROOT = Path(__file__).resolve().parent.parent
BAD = os.fsdecode(b'bad\xff')           # 'bad\udcff'


@pytest.mark.parametrize('command', [
    ['train', 'lenet', '--out'], ['train', '--resume'], ['train', 'lenet', '--data-dir'],
    ['evaluate', 'lenet', '--pretrained', '--confusion'], ['evaluate', 'lenet', '--pretrained', '--out'],
    ['export', 'lenet', '--format', 'onnx', '--out']])
def test_a_path_option_that_is_not_utf8_is_one_line_and_creates_nothing(tmp_path, command):
    env = dict(os.environ, LC_ALL='C.UTF-8', PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, '-m', 'd2lnets', *command, b'bad\xff'], cwd=tmp_path, env=env,
                          capture_output=True, timeout=120)
    option = command[-1]
    assert proc.returncode == 2
    assert proc.stderr.decode().splitlines() == [
        'd2lnets %s: error: argument %s: the path bad\\xff is not utf-8 text; give a name in utf-8 (see d2lnets %s '
        '--help)' % (command[0], option, command[0])]
    assert proc.stdout == b'' and os.listdir(tmp_path) == []


def test_a_library_caller_gets_one_line_and_nothing_is_created(tmp_path):
    with pytest.raises(ValueError, match='^the run folder %s is not utf-8 text; give a name in utf-8$'
                                         % (str(tmp_path).replace('\\', '\\\\') + '/bad\\\\xff')):
        RunFolder.for_new_run(tmp_path / BAD)
    for write in (lambda p: io.write_text(p, 'x'), lambda p: os.close(io.open_regular(p)),
                  lambda p: os.close(io.create_new(p))):
        with pytest.raises(ValueError, match=r'bad\\xff is not utf-8 text; give a name in utf-8$'):
            write(tmp_path / BAD)
        with pytest.raises(ValueError, match=r'^the path .*/nul\\x00 holds a NUL character; give a path without one$'):
            write(str(tmp_path / 'nul') + '\0')
    assert os.listdir(tmp_path) == []


def test_a_name_in_utf8_is_written_as_ever(tmp_path):
    path = io.write_text(tmp_path / 'Lauf-ü-日本', 'x')
    assert path.read_text() == 'x' and io.check_encodable(path) == str(path)
