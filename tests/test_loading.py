"""One path from weights to a network: load_network, and meta.json's schema.

evaluate, predict and export load through it, so they accept the same files:
with a meta.json beside them, or without one (read off the weights)."""
import json

import mxnet as mx
import numpy as np
import pytest

import d2lnets
from d2lnets import data
from d2lnets.models.loading import load_network
from d2lnets.weights.meta import read_meta, validate, write_meta

META = {'format': 'd2lnets-run/1', 'model': 'lenet', 'model_kwargs': {}, 'input_shape': [1, 1, 28, 28],
        'classes': data.classes('mnist'), 'dataset': 'mnist', 'resize': None,
        'normalization': {'scale': 1 / 255, 'mean': 0.0, 'std': 1.0}}


@pytest.fixture
def saved(tmp_path):
    net = d2lnets.get_model('lenet')
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 1, 28, 28)))
    net.save_parameters(str(tmp_path / 'model.params'))
    return net, tmp_path / 'model.params'


def test_with_and_without_meta_json(saved):
    net, params = saved
    X = mx.nd.random.uniform(shape=(4, 1, 28, 28))
    loaded, meta = load_network('lenet', str(params))     # no meta.json: Fashion-MNIST, read off the weights
    assert meta['dataset'] == 'fashion-mnist' and meta['input_shape'] == [1, 1, 28, 28]
    np.testing.assert_array_equal(loaded(X).asnumpy(), net(X).asnumpy())
    write_meta(params.parent, META)
    loaded, meta = load_network('lenet', str(params))
    assert meta == dict(META)
    np.testing.assert_array_equal(loaded(X).asnumpy(), net(X).asnumpy())
    (params.parent / 'meta.json').write_text(json.dumps(dict(META, model='nin')))
    with pytest.raises(ValueError, match=r"model.params holds weights of 'nin' \(says the meta.json beside it\), "
                                         r"not 'lenet'"):
        load_network('lenet', str(params))


def test_classes_of_the_wrong_length_are_refused_not_miscounted(saved):
    _, params = saved
    (params.parent / 'meta.json').write_text(json.dumps(dict(META, classes=['a', 'b', 'c'])))
    with pytest.raises(ValueError, match='names 3 classes, but the weights have 10 outputs'):
        load_network('lenet', str(params))


def test_nan_weights_are_refused_when_loading(saved):
    net, params = saved
    net[0].weight.data()[0, 0, 0, 0] = float('nan')
    net.save_parameters(str(params))
    with pytest.raises(ValueError, match=r'holds NaN or infinite values \(in 0.weight\): these weights are damaged'):
        load_network('lenet', str(params))


@pytest.mark.parametrize('change, field, message', [
    ({'dataset': None}, None, None),    # null is allowed: nothing known
    ({'dataset': 'cifar'}, 'dataset', 'must be one of fashion-mnist, mnist, imagenet'),
    ({'model_kwargs': [1]}, 'model_kwargs', 'must be an object of builder arguments'),
    ({'normalization': 'imagenet'}, 'normalization', 'must be an object'),
    ({'normalization': {'scale': 1, 'mean': 0, 'std': 0}}, 'normalization', 'must be an object'),
    ({'input_shape': [1, 1, 28]}, 'input_shape', 'must be a list'),
    ({'classes': 'shoes'}, 'classes', 'must be a list of 1 to 100000 class names of at most 200 characters'),
    ({'dataset': 'imagenet'}, 'input_shape', "says 1 channel\\(s\\), but imagenet images have 3"),
    ({'test_acc': 2}, 'test_acc', 'must be null or a number from 0 to 1'),
])
def test_meta_json_is_validated_naming_file_and_field(tmp_path, change, field, message):
    (tmp_path / 'meta.json').write_text(json.dumps(dict(META, **change)))
    if field is None:
        assert read_meta(tmp_path / 'model.params')['dataset'] is None
        return
    with pytest.raises(ValueError, match="%s: the field '%s' %s" % (tmp_path / 'meta.json', field, message)):
        read_meta(tmp_path / 'model.params')
    with pytest.raises(ValueError, match="the field '%s'" % field):
        write_meta(tmp_path / 'other', dict(META, **change))
    assert not (tmp_path / 'other').exists()


def test_meta_json_of_another_kind_is_one_error(tmp_path):
    (tmp_path / 'meta.json').write_text('[1, 2]')
    with pytest.raises(ValueError, match='meta.json must hold a JSON object, not list'):
        read_meta(tmp_path / 'model.params')
    (tmp_path / 'meta.json').write_text('{"model": ')
    with pytest.raises(ValueError, match=r'meta.json is damaged \(not JSON: Expecting value: line 1 column 11 '
                                         r'\(char 10\)\); remove it or write it anew with `d2lnets train`'):
        read_meta(tmp_path / 'model.params')
    assert read_meta(tmp_path / 'elsewhere' / 'model.params') is None
    assert validate({}, 'x') == {}


def test_meta_json_must_agree_with_the_weights(saved):
    _, params = saved
    (params.parent / 'meta.json').write_text(json.dumps({'dataset': 'imagenet'}))
    with pytest.raises(ValueError, match="model.params with its meta.json: the field 'input_shape' says 1 "
                                         "channel\\(s\\), but imagenet images have 3"):
        load_network('lenet', str(params))
