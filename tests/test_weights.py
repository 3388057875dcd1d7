"""The LeNet weights shipped with d2lnets."""
import json
import shutil

import mxnet as mx
import pytest

import d2lnets
from d2lnets import data, weights
from d2lnets.evaluate import evaluate_accuracy


def test_shipped_lenet_reaches_its_manifest_accuracy_on_the_real_test_set():
    info = weights.manifest('lenet')
    assert info['recipe']['lr'] == 0.9 and info['recipe']['batch_size'] == 256 and info['recipe']['epochs'] == 10
    assert info['dataset'] == 'fashion-mnist' and info['input_shape'] == [1, 1, 28, 28]
    assert info['test_acc'] >= 0.825
    net = d2lnets.get_model('lenet', pretrained=True)
    _, test_iter = data.load_fashion_mnist(1000)
    assert evaluate_accuracy(net, test_iter, mx.cpu()) == pytest.approx(info['test_acc'], abs=1e-3)


def test_shipped_weights_are_sha1_checked(tmp_path, monkeypatch):
    copy = tmp_path / 'weights'
    shutil.copytree(weights.WEIGHTS_DIR, copy, ignore=shutil.ignore_patterns('*.py', '__pycache__'))
    monkeypatch.setattr(weights, 'WEIGHTS_DIR', copy)
    info = json.loads((copy / 'lenet.json').read_text())
    blob = bytearray((copy / info['file']).read_bytes())
    blob[-1] ^= 1
    (copy / info['file']).write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=r'have sha1 [0-9a-f]{40}, their manifest says %s: the file is damaged; '
                                         r'reinstall d2lnets' % info['sha1']):
        d2lnets.get_model('lenet', pretrained=True)


def test_names_without_weights_and_other_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="no pretrained weights are available for 'nin'"):
        d2lnets.get_model('nin', pretrained=True)
    with pytest.raises(ValueError, match="no Fashion-MNIST weights are shipped for 'vgg11'; d2lnets ships them "
                                         "for: lenet"):
        weights.manifest('vgg11')
    with pytest.raises(ValueError, match="the shipped weights of 'lenet' do not fit this network"):
        d2lnets.get_model('lenet', pretrained=True, classes=5)


def test_file_name_carries_the_sha1():
    info = weights.manifest('lenet')
    assert info['file'] == 'lenet-fashion-mnist-%s.params' % info['sha1'][:8]
    assert weights.sha1sum(weights.WEIGHTS_DIR / info['file']) == info['sha1']
