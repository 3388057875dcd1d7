"""`d2lnets train` and `d2lnets evaluate`, in fresh processes, on small subsets."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from d2lnets.cli import main

from conftest import ROOT

# Keep each process to one thread: the tests run beside other work on few cores.
ONE = {'OMP_NUM_THREADS': '1'}


@pytest.fixture(scope='module')
def lenet_run(tmp_path_factory):
    """A finished 2-epoch LeNet run on 600 examples."""
    out = tmp_path_factory.mktemp('runs') / 'lenet'
    proc = subprocess.run([sys.executable, '-m', 'd2lnets', 'train', 'lenet', '--epochs', '2', '--limit', '600',
                           '--seed', '1', '--out', str(out)], capture_output=True, text=True, cwd=ROOT,
                          env=dict(__import__('os').environ, **ONE), timeout=300)
    return out, proc


def test_train_writes_the_run_directory(lenet_run):
    out, proc = lenet_run
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith('epoch 1, loss ') and lines[1].startswith('epoch 2, loss ')
    assert lines[2].endswith(' examples/sec on cpu(0)')
    assert lines[3].startswith('test acc ') and lines[3].endswith('after 2 epochs; curves: %s/curves.png' % out)
    assert sorted(p.name for p in out.iterdir()) == ['checkpoint', 'command.txt', 'curves.png', 'history.csv',
                                                     'history.json', 'meta.json', 'model.params']
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['model'] == 'lenet' and meta['input_shape'] == [1, 1, 28, 28] and meta['resize'] is None
    assert meta['recipe'] == {'epochs': 2, 'batch_size': 256, 'lr': 0.9, 'optimizer': 'sgd',
                              'loss': 'softmax_cross_entropy', 'init': 'xavier', 'limit': 600,
                              'kvstore': 'device', 'num_workers': 1}
    assert meta['seed'] == 1 and meta['epochs_done'] == 2 and len(meta['classes']) == 10
    assert meta['normalization'] == {'scale': 1 / 255, 'mean': 0.0, 'std': 1.0}
    history = json.loads((out / 'history.json').read_text())
    assert meta['test_acc'] == history['test_acc'][-1]
    assert (out / 'history.csv').read_text().splitlines()[0] == 'epoch,loss,train_acc,test_acc,seconds,examples_per_sec'
    assert (out / 'command.txt').read_text() == ('d2lnets train lenet --epochs 2 --limit 600 --seed 1 --out %s\n' % out)
    assert (out / 'curves.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_evaluate_a_run(lenet_run, run_cli, capsys, tmp_path):
    out, _ = lenet_run
    meta = json.loads((out / 'meta.json').read_text())
    proc = run_cli('evaluate', 'lenet', '--params', out / 'model.params', '--limit', '600', env=ONE)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == 'lenet on the fashion-mnist test set (600 examples): test acc %.4f' % meta['test_acc']
    assert [l.split()[1] for l in lines[1:11]] == ['t-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal',
                                                    'shirt', 'sneaker', 'bag', 'ankle']
    assert lines[11] == 'confusion matrix: %s' % (out / 'confusion.png')
    assert (out / 'confusion.png').is_file()
    # --out takes them elsewhere, and nothing is written beside the run.
    before = sorted(os.listdir(out))
    assert main(['evaluate', 'lenet', '--params', str(out / 'model.params'), '--limit', '100',
                 '--out', str(tmp_path / 'pictures')]) == 0
    assert sorted(os.listdir(tmp_path / 'pictures')) == ['lenet-confusion.png', 'lenet-mistakes.png']
    assert sorted(os.listdir(out)) == before
    assert main(['evaluate', 'alexnet', '--params', str(out / 'model.params')]) == 1
    assert "holds weights of 'lenet' (says the meta.json beside it), not 'alexnet'" in capsys.readouterr().err


def test_evaluate_pretrained(run_cli, tmp_path):
    proc = run_cli('evaluate', 'lenet', '--pretrained', '--confusion', tmp_path / 'c.png', env=ONE)
    assert proc.returncode == 0, proc.stderr
    acc = json.loads((ROOT / 'd2lnets' / 'weights' / 'lenet-fashion-mnist-5a8ada67.json').read_text())['test_acc']
    assert proc.stdout.splitlines()[0] == 'lenet on the fashion-mnist test set (10000 examples): test acc %.4f' % acc
    assert (tmp_path / 'c.png').is_file()


def test_two_devices_take_a_last_batch_smaller_than_their_count(run_cli, tmp_path, capsys):
    """513 training examples in batches of 256 leave a last batch of one for
    two devices; 257 test examples, one. Both commands finish, and the counts
    are those of one device."""
    two = 'cpu:0,cpu:1'
    proc = run_cli('train', 'lenet', '--ctx', two, '--limit', '513', '--epochs', '1', '--seed', '1',
                   '--out', tmp_path / 'run', env=ONE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].endswith(' examples/sec on [cpu(0), cpu(1)]')
    params = tmp_path / 'run' / 'model.params'
    outputs = []
    # The evaluations through cli.main in this process, as the process runs them (the training proved
    # the process path; each process loads MXNet).
    for ctx in (two, 'cpu'):
        code = main(['evaluate', 'lenet', '--params', str(params), '--ctx', ctx, '--limit', '257',
                     '--confusion', str(tmp_path / 'c.png')])
        stdout, stderr = capsys.readouterr()
        assert code == 0, stderr
        outputs.append(stdout)
    assert outputs[0].startswith('lenet on the fashion-mnist test set (257 examples): test acc ')
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize('args, message', [
    (['train', 'resnet'], "unknown model 'resnet'; valid names: alexnet, alexnet_gluoncv, lenet"),
    (['train', 'lenet', '--resume', '.'], 'is not a checkpoint folder'),
    (['train', 'lenet', '--ctx', 'gpu', '--limit', '10'], 'gpu is not available: MXNet sees 0 GPU(s)'),
    (['train', 'lenet', '--ctx', 'tpu', '--limit', '10'], "cannot read the device 'tpu'"),
    (['train', '--resume', 'nowhere'], 'nowhere is not a checkpoint folder'),
    (['train', 'alexnet', '--resize', '28', '--limit', '10'], 'alexnet cannot take 28x28 input: pool1 (MaxPool2D) cannot take input of shape '
                                                               '(1, 256, 2, 2)'),
    (['evaluate', 'nin', '--pretrained'], "no pretrained weights are available for 'nin'"),
    (['evaluate', 'lenet', '--params', 'missing/model.params'], 'no such file: missing/model.params'),
])
def test_bad_arguments_are_one_line(capsys, args, message):
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert out == '' and len(err.strip().splitlines()) == 1
    assert message in err, err


@pytest.mark.parametrize('args, message', [
    (['train', 'lenet', '--epochs', '-1'], "argument --epochs: expected an integer from 1 to 10000, got '-1'"),
    (['train', 'lenet', '--lr', 'fast'], "argument --lr: expected a number from 1e-12 to 1e+38, got 'fast'"),
    (['train', 'lenet', '--lr', 'inf'], "argument --lr: expected a number from 1e-12 to 1e+38, got 'inf'"),
    (['train', 'lenet', '--seed', str(2 ** 40)], 'argument --seed: expected an integer from 0 to 4294967295'),
    (['evaluate', 'lenet'], 'one of the arguments --params --pretrained is required'),
])
def test_bad_values_are_usage_errors(capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_run_dir_is_not_overwritten(lenet_run, capsys):
    out, _ = lenet_run
    assert main(['train', 'lenet', '--out', str(out)]) == 1
    assert '%s already holds a run; continue it with --resume %s' % (out, out) in capsys.readouterr().err


def test_ctrl_c_keeps_the_last_epoch_and_resume_finishes(tmp_path, run_cli, capsys):
    out = tmp_path / 'run'
    cmd = [sys.executable, '-m', 'd2lnets', 'train', 'lenet', '--epochs', '40', '--limit', '2000', '--seed', '2',
           '--out', str(out)]
    # A shell's background job (`make test &`) inherits SIGINT ignored, and Python
    # then keeps ignoring it: give the child the default, as in a terminal.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(__import__('os').environ, **ONE), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    latest = out / 'checkpoint' / 'latest.json'
    deadline = time.time() + 120
    while not latest.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert latest.exists(), 'no checkpoint within 2 minutes'
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    state = json.loads(latest.read_text())
    done = state['epoch']
    assert 1 <= done < 40
    assert stderr.strip().splitlines() == [
        'd2lnets train: interrupted; the checkpoint of epoch %d is kept; continue with: d2lnets train --resume %s'
        % (done, out)]
    assert not (out / 'model.params').exists()
    assert sorted(p.name for p in (out / 'checkpoint').iterdir()) == [
        'epoch-%04d.params' % done, 'epoch-%04d.trainer.json' % done, 'latest.json']
    resumed = run_cli('train', '--resume', out, '--epochs', done + 1, '--quiet', env=ONE)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / 'meta.json').read_text())['epochs_done'] == done + 1
    assert (out / 'model.params').is_file()
    assert (out / 'command.txt').read_text().splitlines()[1] == 'd2lnets train --resume %s --epochs %d --quiet' % (
        out, done + 1)
    assert main(['train', '--resume', str(out), '--lr', '0.1']) == 1
    assert 'drop --lr' in capsys.readouterr().err
