"""One way from a weights file to a network (issue 20, point 1): every source
becomes a name-to-array mapping, its adapter re-keys it by the network's
structural names, and set_params checks the whole mapping before it sets any data."""
import ast
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

import d2lnets
from d2lnets.registry import REGISTRY, entry
from d2lnets.weights import load, zoo
from d2lnets.weights.load import ADAPTERS, by_layer_order, by_structure, load_file, read_params, set_params

ROOT = Path(__file__).resolve().parent.parent
X = mx.nd.random.uniform(shape=(2, 1, 28, 28))


def shipped_lenet():
    return d2lnets.get_model('lenet', pretrained=True)


def fresh_lenet(classes=10):
    net = d2lnets.get_model('lenet', classes=classes)
    net.initialize(mx.init.Xavier())
    net(X)
    return net


def snapshot(net):
    return {k: p.data().asnumpy().copy() for k, p in net._collect_params_with_prefix().items()}


def test_every_source_has_an_adapter_and_the_network_format_is_not_matched_by_layer_order():
    assert ADAPTERS == {'shipped': by_structure, 'run': by_structure, 'gluoncv': by_layer_order}
    assert {w.source for e in REGISTRY.values() for w in e.weights} <= set(ADAPTERS)


def test_the_three_file_formats_give_the_same_network(tmp_path):
    theirs = shipped_lenet()
    want = theirs(X).asnumpy()
    theirs.save_parameters(str(tmp_path / 'model.params'))                        # a run's: '0.weight'
    theirs.collect_params().save(str(tmp_path / 'named.params'))                 # GluonCV's: conv0_weight
    theirs.hybridize()
    theirs(X)
    theirs.export(str(tmp_path / 'lenet'))                                         # export's: arg:conv0_weight
    for path, source in [(tmp_path / 'model.params', 'run'), (tmp_path / 'named.params', 'gluoncv'),
                         (tmp_path / 'lenet-0000.params', 'run'), (entry('lenet').pretrained().path(), 'shipped')]:
        net = load_file(d2lnets.get_model('lenet'), path, source)
        np.testing.assert_allclose(net(X).asnumpy(), want, rtol=1e-6, atol=1e-6)


def test_adapters_key_by_structural_names():
    net = shipped_lenet()
    named = {p.name: p.data() for p in net.collect_params().values()}
    structural = list(net._collect_params_with_prefix())
    assert list(by_layer_order(named, d2lnets.get_model('lenet'))) == structural
    exported = {'arg:' + k: a for k, a in named.items()}
    assert sorted(by_structure(exported, d2lnets.get_model('lenet'))) == sorted(structural)


@pytest.mark.parametrize('damage, message', [
    (lambda a: a.pop('2.bias'), r'x.params does not hold weights of the network: missing 2.bias'),
    (lambda a: a.update(extra=mx.nd.zeros(1)), r'x.params does not hold weights of the network: unexpected extra'),
    (lambda a: a.update({'6.weight': mx.nd.zeros((10, 3))}),
     r'x.params does not hold weights of the network: 6.weight is 10x3 in the file, the network needs 10x84'),
    (lambda a: a['6.bias'].__setitem__(3, float('inf')), r'x.params holds NaN or infinite values \(in 6.bias\)'),
])
def test_set_params_checks_the_whole_mapping_before_it_sets_anything(damage, message):
    net = fresh_lenet()
    before = snapshot(net)
    arrays = {k: p.data().copy() + 1 for k, p in shipped_lenet()._collect_params_with_prefix().items()}
    damage(arrays)
    with pytest.raises(ValueError, match=message):
        set_params(net, arrays, source='x.params')
    after = snapshot(net)
    assert all(np.array_equal(before[k], after[k]) for k in before)   # nothing half-loaded


def test_exclude_output_leaves_the_classifier_whatever_the_source(tmp_path):
    theirs = shipped_lenet()
    theirs.collect_params().save(str(tmp_path / 'named.params'))
    for path, source in [(entry('lenet').pretrained().path(), 'shipped'), (tmp_path / 'named.params', 'gluoncv')]:
        ours = fresh_lenet(classes=3)
        head = ours[-1].weight.data().asnumpy().copy()
        load_file(ours, path, source, exclude_output=True)
        assert np.array_equal(ours[0].weight.data().asnumpy(), theirs[0].weight.data().asnumpy())
        assert np.array_equal(ours[-1].weight.data().asnumpy(), head)


def test_a_shipped_file_is_read_as_the_networks_own_format_not_by_layer_order(tmp_path):
    # On fb36757 the shipped files went through GluonCV's layer-order mapper: a file with
    # one key missing was refused as "layer N differs"; now it is the names that differ.
    arrays = read_params(entry('lenet').pretrained().path())
    del arrays['6.bias']
    mx.nd.save(str(tmp_path / 'short.params'), arrays)
    with pytest.raises(ValueError, match=r'short.params does not hold weights of the network: missing 6.bias$'):
        load_file(d2lnets.get_model('lenet'), tmp_path / 'short.params', 'shipped')


def test_zoo_depends_on_load_never_the_reverse():
    def imported(module):
        tree = ast.parse(Path(module.__file__).read_text())
        return {n.module or '' for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1 and not n.module
            for a in n.names}
    assert 'load' in imported(zoo)
    assert not imported(load), 'weights.load imports %s of its own package' % imported(load)
