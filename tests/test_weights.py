"""The weights d2lnets ships, and the registry entries that name published weights."""
import shutil

import mxnet as mx
import pytest

import d2lnets
from d2lnets import data
from d2lnets.training.metrics import evaluate_accuracy
from d2lnets.io import sha1sum
from d2lnets.registry import REGISTRY, entry, list_models
from d2lnets.weights import WEIGHTS_DIR, shipped


def test_shipped_lenet_reaches_its_manifest_accuracy_on_the_real_test_set():
    info = shipped.manifest_for(entry('lenet').pretrained())
    assert info['recipe']['lr'] == 0.9 and info['recipe']['batch_size'] == 256 and info['recipe']['epochs'] == 10
    assert info['dataset'] == 'fashion-mnist' and info['input_shape'] == [1, 1, 28, 28]
    assert info['test_acc'] >= 0.825
    net = d2lnets.get_model('lenet', pretrained=True)
    _, test_iter = data.load_fashion_mnist(1000)
    assert evaluate_accuracy(net, test_iter, mx.cpu()) == pytest.approx(info['test_acc'], abs=1e-3)


def test_registry_and_manifest_agree_on_every_shipped_file():
    entries = [w for e in REGISTRY.values() for w in e.weights if w.source == 'shipped']
    assert [w.file for w in entries] == ['lenet-fashion-mnist-5a8ada67.params']
    for w in entries:
        info = shipped.manifest_for(w)
        assert (info['file'], info['sha1'], info['dataset'], tuple(info['input_shape'])) == (
            w.file, w.sha1, w.dataset, w.input_shape)
        assert w.file == 'lenet-fashion-mnist-%s.params' % w.sha1[:8] and sha1sum(WEIGHTS_DIR / w.file) == w.sha1
        assert info['classes'] == w.classes == data.classes('fashion-mnist')
    # Every .params in the folder is a registered file with its manifest: nothing unlisted ships.
    assert sorted(p.name for p in WEIGHTS_DIR.glob('*.params')) == [w.file for w in entries]
    assert sorted(p.name for p in WEIGHTS_DIR.glob('*.json')) == ['lenet-fashion-mnist-5a8ada67.json']


def test_gluoncv_entries_take_their_sha1_from_gluoncv():
    from gluoncv.model_zoo import model_store
    from d2lnets.weights import zoo
    gluon = {e.name: e.weights[0].file for e in REGISTRY.values() if e.weights and e.weights[0].source == 'gluoncv'}
    assert gluon == {'alexnet_gluoncv': 'alexnet', **{n: n for n in
                     ('vgg11', 'vgg13', 'vgg16', 'vgg19', 'vgg11_bn', 'vgg13_bn', 'vgg16_bn', 'vgg19_bn')}}
    for gname in gluon.values():
        assert zoo.sha1(gname) == model_store._model_sha1[gname]
    assert list_models(pretrained=True) == sorted(['lenet'] + list(gluon))


def test_shipped_weights_are_sha1_checked(tmp_path, monkeypatch):
    copy = tmp_path / 'weights'
    shutil.copytree(WEIGHTS_DIR, copy, ignore=shutil.ignore_patterns('*.py', '__pycache__'))
    monkeypatch.setattr(shipped, 'WEIGHTS_DIR', copy)
    weights = entry('lenet').pretrained()
    blob = bytearray((copy / weights.file).read_bytes())
    blob[-1] ^= 1
    (copy / weights.file).write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=r'have sha1 [0-9a-f]{40}, the registry says %s: the file is damaged; '
                                         r'reinstall d2lnets' % weights.sha1):
        d2lnets.get_model('lenet', pretrained=True)


def test_names_without_weights_and_other_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="no pretrained weights are available for 'nin'; weights exist for "
                                         "alexnet_gluoncv, lenet, vgg11"):
        d2lnets.get_model('nin', pretrained=True)
    with pytest.raises(ValueError, match="no ImageNet weights fit the lecture's 'alexnet'"):
        d2lnets.get_model('alexnet', pretrained=True)
    with pytest.raises(ValueError, match="the Fashion-MNIST weights of 'lenet' have 10 classes, got classes=5; to "
                                         "fine-tune to 5 classes, build with pretrained=False"):
        d2lnets.get_model('lenet', pretrained=True, classes=5)


def test_fine_tuning_loads_all_but_the_classifier():
    from d2lnets.models.loading import load_pretrained
    ours = d2lnets.get_model('lenet', classes=3)
    ours.initialize(mx.init.Xavier())
    ours(mx.nd.zeros((1, 1, 28, 28)))
    head = ours[-1].weight.data().copy()
    load_pretrained(ours, 'lenet', exclude_output=True)
    theirs = d2lnets.get_model('lenet', pretrained=True)
    assert (ours[0].weight.data() == theirs[0].weight.data()).asnumpy().all()
    assert (ours[-1].weight.data() == head).asnumpy().all() and ours[-1].weight.shape == (3, 84)
