"""The package and its command line, as a user meets them."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import d2lnets


def test_version_everywhere(run_cli):
    proc = run_cli('--version')
    assert proc.returncode == 0 and proc.stdout.strip() == 'd2lnets ' + d2lnets.__version__
    script = shutil.which('d2lnets', path=str(Path(sys.executable).parent))
    assert script, 'the console script d2lnets is installed beside python'
    out = subprocess.run([script, '--version'], capture_output=True, text=True)
    assert out.stdout.strip() == 'd2lnets ' + d2lnets.__version__


def test_list(run_cli):
    proc = run_cli('list')
    assert proc.stdout.split() == d2lnets.list_models()


def test_unknown_model_is_one_line(run_cli):
    proc = run_cli('summary', 'resnet')
    assert proc.returncode == 1 and proc.stdout == ''
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "unknown model 'resnet'; valid names: alexnet, alexnet_gluoncv, lenet" in proc.stderr


def test_bad_shape_argument_is_a_usage_error(run_cli):
    proc = run_cli('summary', 'lenet', '--input-shape', '1,x,28')
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert 'expected positive integers' in proc.stderr


def test_import_without_mxnet_says_what_to_install():
    # Importing works (the ONNX deploy path needs no MXNet); the first name that needs MXNet says so.
    code = "import sys; sys.modules['mxnet'] = None; import d2lnets; d2lnets.get_model('lenet')"
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert 'pip install mxnet==1.9.1' in proc.stderr and 'requirements-gpu.txt' in proc.stderr


def test_every_deploy_module_imports_without_mxnet():
    # d2lnets/deploy/__init__.py's rule: the ONNX path runs where only onnxruntime, numpy and Pillow are.
    modules = sorted('d2lnets.deploy.' + p.stem for p in (Path(d2lnets.__file__).parent / 'deploy').glob('*.py')
                     if p.stem != '__init__')
    code = ("import importlib, sys; sys.modules['mxnet'] = None; import d2lnets\n"
            "for name in sys.argv[1:]:\n    importlib.import_module(name)\n"
            "print(len(sys.argv) - 1, sys.modules['mxnet'])")
    proc = subprocess.run([sys.executable, '-c', code] + modules, capture_output=True, text=True)
    assert (proc.returncode, proc.stderr, proc.stdout.split()) == (0, '', [str(len(modules)), 'None'])
    assert 'd2lnets.deploy.onnx_model' in modules and 'd2lnets.deploy.predict' in modules


def test_cli_without_mxnet_is_one_line():
    code = "import sys; sys.modules['mxnet'] = None; from d2lnets.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, '-c', code, 'summary', 'lenet'], capture_output=True, text=True)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert 'pip install mxnet==1.9.1' in proc.stderr and 'predict NAME --onnx' in proc.stderr


def test_import_is_cheap_and_sets_threads():
    code = ("import os, sys; os.environ.pop('OMP_NUM_THREADS', None); import d2lnets; "
            "print('mxnet' in sys.modules, os.environ['OMP_NUM_THREADS'])")
    env = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'}
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env)
    assert proc.stdout.split() == ['False', str(len(os.sched_getaffinity(0)))]


def test_user_thread_setting_is_kept_and_late_import_warns():
    # Importing mxnet first on numpy>=1.24 needs numpy's old alias given by hand (tests/test_compat.py).
    code = ("import numpy; numpy.bool = bool\n"
            "import mxnet, warnings, d2lnets.runtime as r; import os; "
            "warnings.simplefilter('error'); os.environ.pop('OMP_NUM_THREADS', None)\n"
            "try:\n    r.apply_defaults()\nexcept UserWarning as w:\n    print('warned:', w)")
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env)
    assert 'warned: mxnet was imported before d2lnets' in proc.stdout, proc.stderr
    code = "import os, d2lnets; print(os.environ['OMP_NUM_THREADS'])"
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env)
    assert proc.stdout.strip() == '1'


def test_an_unexpected_error_is_one_line_saying_where_to_report_and_debug_shows_the_traceback(monkeypatch, capsys):
    from d2lnets import cli

    def broken(args):
        raise RuntimeError('something no one expected')
    monkeypatch.setitem(cli._COMMANDS, 'list', (cli._add_list, broken))
    assert cli.main(['list']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['d2lnets list: internal error: RuntimeError: something no one expected; this is a bug in '
                   'd2lnets; please report it with the command line and the output of `d2lnets --version`, and '
                   'run again with --debug for the traceback']
    assert cli.main(['--debug', 'list']) == 1
    err = capsys.readouterr().err
    assert err.startswith('d2lnets list: internal error: RuntimeError') and 'Traceback (most recent call last)' in err


# --- d2lnets explain: PNGs in --out and nothing else; bad input one line ---

def test_explain_writes_exactly_the_pngs_it_prints(run_cli, tmp_path, capsys, monkeypatch):
    from d2lnets import cli
    out = tmp_path / 'out'
    proc = run_cli('explain', 'lenet', '--pretrained', '--index', '1', '--out', out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    printed = proc.stdout.splitlines()
    assert printed == [str(out / ('lenet-%s.png' % kind)) for kind in ('activations', 'filters', 'saliency', 'gradcam')]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out']
    assert sorted(str(p) for p in out.iterdir()) == sorted(printed)
    for path in printed:
        assert Path(path).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    # The second through cli.main in this process, as the process runs it (the first proved the process path).
    monkeypatch.chdir(tmp_path)
    code = cli.main(['explain', 'lenet', '--pretrained', '--index', '1', '--show', 'saliency,activations',
                     '--class', 'coat', '--out', str(out)])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert stdout.splitlines() == [str(out / 'lenet-activations.png'), str(out / 'lenet-saliency.png')]


def test_explain_bad_input_is_one_line_and_writes_nothing(run_cli, tmp_path, capsys, monkeypatch):
    from d2lnets import cli
    # The first case in a process of its own (nothing but the line reaches stderr); the others through
    # cli.main in this one, as the process runs it, to keep the test short (each process loads MXNet).
    monkeypatch.chdir(tmp_path)
    text = tmp_path / 'notes.png'
    text.write_text('not an image')
    out = tmp_path / 'out'
    cases = [
        (['--index', '0', '--show', 'gradcam', '--layer', 'conv9'], "unknown layer 'conv9'"),
        (['--index', '0', '--class', '10'], 'class 10 is out of range: the network has 10 classes (0 to 9)'),
        (['--image', text], 'cannot read %s as an image' % text),
        (['--index', '10000'], 'the test-set index must be an integer from 0 to 9999'),
        (['--index', '0', '--show', 'histogram'], '--show takes a comma-separated list of activations, filters'),
        (['--index', '0', '--show', 'gradcam', '--layer', 'dense0'], "Grad-CAM needs a layer whose output is channel maps"),
    ]
    for i, (extra, message) in enumerate(cases):
        argv = ['explain', 'lenet', '--pretrained', *map(str, extra), '--out', str(out)]
        if i == 0:
            proc = run_cli(*argv, cwd=tmp_path)
            code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
        else:
            code = cli.main(argv)
            stdout, stderr = capsys.readouterr()
        assert code == 1, (extra, stdout, stderr)
        line, = stderr.splitlines()
        assert line.startswith('d2lnets explain: error: ') and message in line, line
        assert stdout == '' and not out.exists(), extra
    for where, message in ((text / 'out', '%s is not a folder: --out makes one folder' % text),
                           (text, '%s is not a folder: --out takes the folder' % text)):
        code = cli.main(['explain', 'lenet', '--pretrained', '--index', '0', '--out', str(where)])
        stderr = capsys.readouterr().err
        assert code == 1 and stderr.startswith('d2lnets explain: error: ' + message), stderr
        assert text.read_text() == 'not an image'
    proc = run_cli('explain', 'lenet', '--index', '0', '--out', out, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr == ('d2lnets explain: error: say which weights to explain: '
                                                    '--pretrained or --params FILE\n')


def test_evaluate_prints_the_most_confused_pairs_and_writes_the_mistakes_into_out(run_cli, tmp_path):
    import numpy as np
    from d2lnets.training.runs import evaluate_saved
    out = tmp_path / 'pictures'     # made: its parent exists
    # PYTHONPATH: from another folder, python -m d2lnets would import the d2lnets installed, not this one.
    proc = run_cli('evaluate', 'lenet', '--pretrained', '--limit', '1000', '--out', out, cwd=tmp_path,
                   env={'PYTHONPATH': str(Path(__file__).resolve().parent.parent)})
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(tmp_path) == ['pictures']
    assert sorted(p.name for p in out.iterdir()) == ['lenet-confusion.png', 'lenet-mistakes.png']
    assert all(p.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' for p in out.iterdir())
    lines = proc.stdout.splitlines()
    assert lines[11] == 'confusion matrix: %s' % (out / 'lenet-confusion.png')
    assert lines[-1] == 'most confident mistakes: %s' % (out / 'lenet-mistakes.png')
    pairs = lines[lines.index('most confused (true -> predicted: count):') + 1:-1]
    matrix = evaluate_saved('lenet', pretrained=True, limit=1000)['matrix']
    classes = d2lnets.data.classes('fashion-mnist')
    counts = []
    for line in pairs:
        true, rest = line.strip().split(' -> ')
        predicted, count = rest.rsplit(None, 1)
        counts.append(int(count))
        assert matrix[classes.index(true.strip()), classes.index(predicted.strip())] == int(count), line
    off = matrix[~np.eye(10, dtype=bool)]
    assert pairs and counts == sorted(off, reverse=True)[:len(counts)]


def test_evaluate_pretrained_without_out_writes_nothing_and_says_how(tmp_path, monkeypatch, capsys):
    """Nothing is written outside the folder the user gave: --pretrained names none, so the
    printout is --out's but for the pictures' lines, and its last line says how to get them."""
    from d2lnets import cli
    cwd = tmp_path / 'cwd'
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert cli.main(['evaluate', 'lenet', '--pretrained', '--limit', '300']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert os.listdir(cwd) == []
    assert lines[-1] == ('no pictures written: --out DIR writes the confusion matrix and the most confident '
                         'mistakes there')
    out = tmp_path / 'out'
    assert cli.main(['evaluate', 'lenet', '--pretrained', '--limit', '300', '--out', str(out)]) == 0
    written = capsys.readouterr().out.splitlines()
    assert os.listdir(cwd) == [] and sorted(os.listdir(out)) == ['lenet-confusion.png', 'lenet-mistakes.png']
    assert lines[:-1] == [line for line in written
                          if not line.startswith(('confusion matrix: ', 'most confident mistakes: '))]
