"""Bad input is refused in one line, before anything is allocated or written
(issue 19, principles 4 and 8): numbers outside their bounds, shapes MXNet
cannot hold, paths too long for the system, labels outside the classes."""
import time

import pytest

import d2lnets
from d2lnets import limits
from d2lnets.cli import main


def usage_error(capsys, argv) -> str:
    """The one line ``d2lnets ARGV`` ends in, with exit status 2."""
    with pytest.raises(SystemExit) as stop:
        main(list(map(str, argv)))
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def error_line(capsys, argv) -> str:
    """The one line ``d2lnets ARGV`` ends in, with exit status 1."""
    assert main(list(map(str, argv))) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == '' and len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize('argv, message', [
    (['summary', 'lenet', '--input-shape', '1,1,99999999999,2'],
     'd2lnets summary: error: argument --input-shape: the input shape (1, 1, 99999999999, 2): each side must be at '
     'most 16384, got 99999999999'),
    (['train', 'lenet', '--lr', '1e308'], "d2lnets train: error: argument --lr: expected a number from 1e-12 to "
                                          "1e+38, got '1e308'"),
    (['train', 'lenet', '--lr', 'nan'], "argument --lr: expected a number from 1e-12 to 1e+38, got 'nan'"),
    (['train', 'lenet', '--epochs', '100000'], "argument --epochs: expected an integer from 1 to 10000"),
    (['train', 'lenet', '--batch-size', '10' * 20], "argument --batch-size: expected an integer from 1 to 65536"),
    (['train', 'lenet', '--resize', '5000'], "argument --resize: expected an integer from 1 to 4096"),
    (['complexity', 'lenet', '--classes', '10000000000'],
     "d2lnets complexity: error: argument --classes: expected an integer from 1 to 100000, got '10000000000'"),
    (['bench', '--seconds', 'nan'], "d2lnets bench: error: argument --seconds: expected a number from 0.001 to "
                                    "3600, got 'nan'"),
    (['bench', '--seconds', 'inf'], "argument --seconds: expected a number from 0.001 to 3600, got 'inf'"),
    (['bench', '--runs', '0'], "argument --runs: expected an integer from 1 to 1000, got '0'"),
    (['evaluate', 'lenet', '--pretrained', '--batch-size', '9' * 5000],
     "argument --batch-size: expected an integer from 1 to 65536, got '" + '9' * 36 + "... (see"),
    (['predict', 'lenet', '--pretrained', 'x.png', '--top', '0'], "argument --top: expected an integer from 1 to "
                                                                  "1000, got '0'"),
])
def test_a_number_out_of_its_bounds_is_one_line_naming_option_and_range(capsys, argv, message):
    line = usage_error(capsys, argv)
    assert message in line, line
    assert line.endswith('(see d2lnets %s --help)' % argv[0])


def test_the_library_refuses_the_same_numbers_in_the_same_words():
    from d2lnets.context import parse_ctx
    from d2lnets.perf.bench import bench
    from d2lnets.training.runs import train_run
    with pytest.raises(ValueError, match=r'^the learning rate \(`lr`\) must be a number from 1e-12 to 1e\+38, '
                                         r'got 1e\+308$'):
        train_run('lenet', lr=1e308)
    with pytest.raises(ValueError, match=r'^the number of classes \(`classes`\) must be an integer from 1 to '
                                         r'100000, got 10000000000$'):
        d2lnets.get_model('lenet', classes=10 ** 10)
    with pytest.raises(ValueError, match=r'^the length of one timed run in seconds \(`seconds_per_run`\) must be a number '
                                         r'from 0.001 to 3600, got nan$'):
        bench('lenet', seconds_per_run=float('nan'))
    start = time.monotonic()
    with pytest.raises(ValueError, match=r'^a device index \(`ctx`\) must be an integer from 0 to 255, '
                                         r'got 1000000000$'):
        parse_ctx('cpu:1000000000')
    assert time.monotonic() - start < 5         # MXNet would take 100 s and 10 GB for this context


def test_a_shape_mxnet_cannot_hold_is_the_users_error_before_anything_is_allocated(capsys):
    # 1 x 9999 x 9999 fits, but LeNet's first dense layer would need 120 x 99,760,144 weights.
    line = error_line(capsys, ['summary', 'lenet', '--input-shape', '1,1,9999,9999'])
    assert line == ("d2lnets summary: error: dense0 (Dense), given input (1, 16, 2497, 2497), would need a parameter "
                    "of shape (120, 99760144): 11971217280 elements, more than the 2147483647 a tensor of MXNet's "
                    "CPU build can hold; use a smaller input or batch")
    line = error_line(capsys, ['summary', 'lenet', '--input-shape', '60000,1,9999,2'])
    assert 'would need an output of shape (60000, 6, 9999, 2): 7199280000 elements' in line
    with pytest.raises(ValueError, match='an input of shape'):
        limits.check_shape((65536, 4096, 16384, 16384))


def test_a_data_folder_variable_too_long_for_the_system_is_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv('D2LNETS_DATA', 'a' * 5000)
    line = error_line(capsys, ['train', 'lenet', '--out', tmp_path / 'run', '--limit', '10', '--quiet'])
    assert line == ('d2lnets train: error: D2LNETS_DATA is a path of 5000 bytes whose longest name has 5000; a path '
                    'may have at most 4095 bytes, and each name in it 255: give a shorter one')
    assert not (tmp_path / 'run').exists()
    monkeypatch.setenv('D2LNETS_DATA', 'a/' * 2500)
    assert 'D2LNETS_DATA is a path of 5000 bytes whose longest name has 1;' in error_line(
        capsys, ['evaluate', 'lenet', '--pretrained', '--limit', '10'])


def test_a_batch_mxnet_cannot_hold_is_the_users_error_before_the_run_folder_exists(tmp_path):
    # NiN takes any side; 512 images resized to 4096 x 4096 make a batch of 8,589,934,592 elements.
    # Run in a process of at most 6 GiB of address space: without the check MXNet would try to allocate 32 GiB.
    import resource
    import subprocess
    import sys
    limit = 6 << 30
    proc = subprocess.run([sys.executable, '-m', 'd2lnets', 'train', 'nin', '--resize', '4096', '--batch-size', '512',
                           '--limit', '512', '--epochs', '1', '--quiet', '--out', str(tmp_path / 'run')],
                          capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    assert (proc.returncode, proc.stderr.splitlines()) == (1, [
        "d2lnets train: error: nin cannot train on batches of 512 at 4096x4096 (--batch-size, --resize): an input "
        "of shape (512, 1, 4096, 4096): 8589934592 elements, more than the 2147483647 a tensor of MXNet's CPU build "
        "can hold; use a smaller input or batch"])
    assert not (tmp_path / 'run').exists()
