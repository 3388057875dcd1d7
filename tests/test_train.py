"""The training loop: the lecture's printout, exact resumption, data
parallelism, NaN handling, checkpoints. Small subsets of the real Fashion-MNIST."""
import hashlib
import re

import mxnet as mx
import numpy as np
import pytest

import d2lnets
from d2lnets import data
from d2lnets.training import checkpoint
from d2lnets.training.config import RunConfig
from d2lnets.training.loop import Checkpoints, History, NonFiniteLoss, Parts, fit, train

LINE = re.compile(r'^epoch (\d+), loss (\d+\.\d{4}), train acc (0\.\d{3}|1\.000), test acc (0\.\d{3}|1\.000), '
                  r'time (\d+\.\d) sec$')


@pytest.fixture(scope='module')
def small():
    """(train_iter, test_iter): the first 1,024 training and test examples, batches of 128."""
    return data.load_fashion_mnist(128, limit=1024, seed=7)


def _params(net):
    return {k: v.data().asnumpy() for k, v in net._collect_params_with_prefix().items()}


def _assert_same(a, b, atol):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=atol, err_msg=k)


def test_prints_the_lectures_lines_and_learns(small, capsys):
    net = d2lnets.get_model('lenet')
    history = train(net, *small, num_epochs=3, lr=0.9, ctx=mx.cpu(), seed=1)
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert len(lines) == 4 and out.err == ''  # no progress bar when stderr is not a terminal
    for epoch, line in enumerate(lines[:3], 1):
        m = LINE.match(line)
        assert m and int(m.group(1)) == epoch, line
        assert float(m.group(2)) == pytest.approx(history.loss[epoch - 1], abs=5e-5)
        assert float(m.group(4)) == pytest.approx(history.test_acc[epoch - 1], abs=5e-4)
    assert re.fullmatch(r'\d+\.\d examples/sec on cpu\(0\)', lines[3])
    assert history.epoch == [1, 2, 3] and len(history.examples_per_sec) == 3
    assert all(t > 0 for t in history.seconds)
    assert history.loss[-1] < history.loss[0]


def test_quiet_prints_nothing(small, capsys):
    train(d2lnets.get_model('lenet'), *small, num_epochs=1, lr=0.9, ctx=mx.cpu(), seed=1, verbose=False)
    assert capsys.readouterr() == ('', '')


def test_resumed_run_ends_where_an_uninterrupted_run_does(small, tmp_path):
    full = d2lnets.get_model('lenet')
    train(full, *small, num_epochs=3, lr=0.9, ctx=mx.cpu(), seed=5, verbose=False,
          hooks=[Checkpoints(tmp_path / 'full')])
    part = d2lnets.get_model('lenet')
    train(part, *small, num_epochs=1, lr=0.9, ctx=mx.cpu(), seed=5, verbose=False,
          hooks=[Checkpoints(tmp_path / 'part')])
    resumed = d2lnets.get_model('lenet')  # a fresh process would build a fresh net
    history = train(resumed, *small, num_epochs=3, lr=0.9, ctx=mx.cpu(), verbose=False,
                    hooks=[Checkpoints(tmp_path / 'part', resume=True)])
    assert history.epoch == [1, 2, 3]
    _assert_same(_params(full), _params(resumed), atol=1e-6)
    assert sorted(p.name for p in (tmp_path / 'part').iterdir()) == ['epoch-0003.params', 'epoch-0003.trainer.json',
                                                                     'latest.json']


def test_dropout_networks_resume_exactly_too(small, tmp_path):
    """Dropout draws from MXNet's generator, which every epoch reseeds."""
    def net():
        from d2lnets import nn
        with mx.name.NameManager():
            mlp = nn.Sequential()
            mlp.add(nn.Dense(64, activation='relu'), nn.Dropout(0.5), nn.Dense(10))
        return mlp
    a = net()
    train(a, *small, num_epochs=2, lr=0.1, ctx=mx.cpu(), seed=2, verbose=False)
    b = net()
    train(b, *small, num_epochs=1, lr=0.1, ctx=mx.cpu(), seed=2, verbose=False, hooks=[Checkpoints(tmp_path)])
    c = net()
    train(c, *small, num_epochs=2, lr=0.1, ctx=mx.cpu(), verbose=False, hooks=[Checkpoints(tmp_path, resume=True)])
    _assert_same(_params(a), _params(c), atol=1e-6)
    other = net()
    train(other, *small, num_epochs=2, lr=0.1, ctx=mx.cpu(), seed=3, verbose=False)
    assert not np.allclose(_params(a)['0.weight'], _params(other)['0.weight'])


def test_two_devices_train_as_one(small):
    """Data parallelism over cpu(0) and cpu(1): each half-batch's gradient is
    summed by the kvstore, so the step is the single-device step."""
    one, two = d2lnets.get_model('lenet'), d2lnets.get_model('lenet')
    h1 = train(one, *small, num_epochs=1, lr=0.9, ctx=mx.cpu(0), seed=3, verbose=False)
    h2 = train(two, *small, num_epochs=1, lr=0.9, ctx=[mx.cpu(0), mx.cpu(1)], seed=3, verbose=False)
    _assert_same(_params(one), _params(two), atol=1e-5)
    assert h1.loss[0] == pytest.approx(h2.loss[0], rel=1e-5)
    assert h1.test_acc == h2.test_acc


def test_a_last_batch_smaller_than_the_device_count_trains_as_on_one_device():
    """513 examples in batches of 256: the last batch holds one example for two
    devices. It goes to one device, the idle one adds a zero gradient, and the
    run equals the single-device run."""
    iters = data.load_fashion_mnist(256, limit=513, seed=7)
    assert [X.shape[0] for X, _ in iters[0]] == [256, 256, 1]
    one, two = d2lnets.get_model('lenet'), d2lnets.get_model('lenet')
    h1 = train(one, *iters, num_epochs=1, lr=0.9, ctx=mx.cpu(0), seed=3, verbose=False)
    h2 = train(two, *iters, num_epochs=1, lr=0.9, ctx=[mx.cpu(0), mx.cpu(1)], seed=3, verbose=False)
    _assert_same(_params(one), _params(two), atol=1e-5)
    assert h1.loss[0] == pytest.approx(h2.loss[0], rel=1e-5)
    assert h1.train_acc == h2.train_acc and h1.test_acc == h2.test_acc


def test_hybridized_and_imperative_training_agree(small):
    a, b = d2lnets.get_model('lenet'), d2lnets.get_model('lenet')
    train(a, *small, num_epochs=1, lr=0.9, ctx=mx.cpu(), seed=4, verbose=False)
    fit(RunConfig(epochs=1, lr=0.9, seed=4), Parts(b, *small, ctx=mx.cpu(), hybridize=False))
    _assert_same(_params(a), _params(b), atol=1e-5)


def test_pretrained_weights_are_not_wiped(small):
    net = d2lnets.get_model('lenet', pretrained=True)
    before = _params(net)
    train(net, *small, num_epochs=1, lr=1e-12, ctx=mx.cpu(), verbose=False)
    _assert_same(before, _params(net), atol=1e-7)


def _sha1(path):
    return hashlib.sha1(path.read_bytes()).hexdigest()


def test_non_finite_loss_stops_and_keeps_the_good_checkpoint(small, tmp_path):
    net = d2lnets.get_model('lenet')
    train(net, *small, num_epochs=1, lr=0.9, ctx=mx.cpu(), seed=1, verbose=False, hooks=[Checkpoints(tmp_path)])
    good = _sha1(tmp_path / 'epoch-0001.params')
    # A diverging run, made certain: the third example is NaN, so the loss is NaN from the first batch on.
    images = small[0].images.copy()
    images[2] = np.nan
    diverging = data.ArrayIter(images, small[0].labels, 128, shuffle=False)
    with pytest.raises(NonFiniteLoss) as err:
        fit(RunConfig(epochs=2, lr=0.9), Parts(d2lnets.get_model('lenet'), diverging, small[1], ctx=mx.cpu(),
                                               check_every=2), [Checkpoints(tmp_path)])
    assert 'the training loss became NaN or infinite in epoch 1: the learning rate 0.9 is probably too high' \
        in str(err.value)
    assert 'try a lower one, such as 0.45. The checkpoint of epoch 1 is kept in %s' % tmp_path in str(err.value)
    assert checkpoint.load_checkpoint(tmp_path)['epoch'] == 1
    assert _sha1(tmp_path / 'epoch-0001.params') == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch-0001.params', 'epoch-0001.trainer.json', 'latest.json']


def test_bad_arguments(small):
    net = d2lnets.get_model('lenet')
    with pytest.raises(ValueError, match=r'the number of epochs \(`num_epochs`\) must be an integer from 0 to 10000, got -1'):
        train(net, *small, num_epochs=-1, lr=0.9)
    with pytest.raises(ValueError, match=r'the learning rate \(`lr`\) must be a number from 1e-12 to 1e\+38, got 0'):
        train(net, *small, num_epochs=1, lr=0)
    with pytest.raises(ValueError, match='gpu is not available: MXNet sees 0 GPU'):
        train(net, *small, num_epochs=1, lr=0.9, ctx='gpu')
    with pytest.raises(ValueError, match="cannot read the device 'cpu0'"):
        train(net, *small, num_epochs=1, lr=0.9, ctx='cpu0')


def test_history_round_trips():
    h = History()
    h.append(epoch=1, loss=2.5, train_acc=0.1, test_acc=0.125, seconds=1.5, examples_per_sec=1000.0)
    assert History.from_dict(h.to_dict()) == h
    assert h.to_csv() == 'epoch,loss,train_acc,test_acc,seconds,examples_per_sec\n1,2.5,0.1,0.125,1.5,1000.0\n'


def test_labels_outside_the_networks_classes_are_refused_before_training(small):
    # Fashion-MNIST's labels 0..9 and a LeNet of 5 classes: labels 5..9 would train silently wrong.
    net = d2lnets.get_model('lenet', classes=5)
    nines = int(np.count_nonzero(small[0].labels == 9))
    with pytest.raises(ValueError) as err:
        train(net, *small, num_epochs=1, lr=0.9, verbose=False)
    assert str(err.value) == ('the training data holds label 9 (%d examples), but the network has 5 classes, labels '
                              '0 to 4: give labels in that range, or a network with more classes (classes=N)' % nines)
    with pytest.raises(RuntimeError):      # nothing was initialized, let alone trained
        next(iter(net.collect_params().values())).data()
    images = small[0].images[:256]
    labels = np.zeros(256, np.float32)
    labels[[3, 7]] = -1
    test = data.ArrayIter(images, labels, 128)
    with pytest.raises(ValueError, match=r'^the test data holds label -1 \(2 examples\), but the network has 10 '
                                         r'classes, labels 0 to 9: give labels'):
        train(d2lnets.get_model('lenet'), small[0], test, num_epochs=1, lr=0.9, verbose=False)


def test_a_label_outside_the_classes_is_one_line_from_the_cli(no_data_env, mnist_files, capsys):
    import gzip
    from conftest import idx_bytes
    from test_data import _make_set
    from test_run import one_error_line
    _, arrays = mnist_files
    folder = _make_set(no_data_env / 'set', arrays)
    labels = arrays['train-labels-idx1-ubyte'].copy()
    labels[[10, 20, 30]] = 12
    (folder / 'train-labels-idx1-ubyte.gz').write_bytes(gzip.compress(idx_bytes(labels), compresslevel=1))
    out = no_data_env / 'run'
    line = one_error_line(capsys, 'train', 'lenet', '--dataset', 'mnist', '--data-dir', folder, '--out', out,
                          '--limit', '600', '--quiet')
    assert line.startswith('d2lnets train: error: %s: label 12 (3 examples) found, mnist labels are 0..9; '
                           % (folder / 'train-labels-idx1-ubyte.gz')), line
    assert not out.exists()
