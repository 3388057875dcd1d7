"""RunConfig: one frozen value per run, from the registry's recipe and the user's
overrides, round-tripping through meta.json (old layouts included)."""
import dataclasses
import json

import pytest

from d2lnets import registry
from d2lnets.training.config import RunConfig

from conftest import ROOT


def test_the_recipe_fills_what_the_user_did_not_give():
    c = RunConfig.from_recipe(registry.entry('alexnet').recipe, 'alexnet', epochs=3, lr=None, batch_size=None,
                              limit=600, seed=None)
    assert c == RunConfig(epochs=3, lr=0.01, model='alexnet', batch_size=128, resize=224, limit=600)
    assert c.seed is None and c.kvstore == 'device' and c.num_workers == 1 and c.dataset == 'fashion-mnist'
    assert RunConfig.from_recipe(registry.entry('lenet').recipe, 'lenet') == RunConfig(
        epochs=10, lr=0.9, model='lenet', batch_size=256, resize=None)


def test_it_is_frozen_and_replace_checks_again():
    c = RunConfig.from_recipe(registry.entry('lenet').recipe, 'lenet', seed=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.epochs = 3
    assert c.replace(epochs=12).epochs == 12 and c.epochs == 10
    with pytest.raises(ValueError, match=r'the number of epochs \(`num_epochs`\) must be an integer from 0 to 10000'):
        c.replace(epochs=-1)


@pytest.mark.parametrize('overrides, message', [
    ({'epochs': 0}, r'the number of epochs \(`epochs`\) must be an integer from 1 to 10000, got 0'),
    ({'lr': 1e308}, r'the learning rate \(`lr`\) must be a number from 1e-12 to 1e\+38, got 1e\+308'),
    ({'batch_size': True}, r'the batch size \(`batch_size`\) must be an integer from 1 to 65536, got True'),
    ({'resize': 5000}, r'the side length fed to the network \(`resize`\) must be an integer from 1 to 4096'),
    ({'seed': -1}, r'the seed \(`seed`\) must be an integer from 0 to 4294967295, got -1'),
    ({'limit': 0}, r'the number of examples \(`limit`\) must be an integer from 1 to 100000000, got 0'),
])
def test_overrides_are_checked_in_the_options_words(overrides, message):
    with pytest.raises(ValueError, match='^' + message):
        RunConfig.from_recipe(registry.entry('lenet').recipe, 'lenet', **overrides)


def test_an_unknown_override_is_refused():
    with pytest.raises(TypeError, match='RunConfig has no field colour'):
        RunConfig.from_recipe(registry.entry('lenet').recipe, 'lenet', colour='red')


def test_meta_round_trips_exactly():
    c = RunConfig(epochs=2, lr=0.05, model='vgg11_small', batch_size=64, resize=96, dataset='mnist', limit=300,
                  seed=7, kvstore='dist_sync', num_workers=2, model_kwargs={'classes': 5})
    meta = json.loads(json.dumps(c.to_meta()))      # as meta.json holds it
    assert meta == {'model': 'vgg11_small', 'model_kwargs': {'classes': 5}, 'dataset': 'mnist', 'resize': 96,
                    'recipe': {'epochs': 2, 'batch_size': 64, 'lr': 0.05, 'optimizer': 'sgd',
                               'loss': 'softmax_cross_entropy', 'init': 'xavier', 'limit': 300,
                               'kvstore': 'dist_sync', 'num_workers': 2},
                    'seed': 7}
    assert RunConfig.from_meta(meta) == c
    assert c.global_batch_size == 128 and c.kwargs == {'classes': 5}


def test_the_meta_json_of_the_current_main_reads_back():
    """The layout main fb36757 writes (runs.make_meta), literally: the recipe has kvstore and num_workers."""
    meta = {'format': 'd2lnets-run/1', 'model': 'lenet', 'model_kwargs': {}, 'classes': ['c%d' % i for i in range(10)],
            'input_shape': [1, 1, 28, 28], 'dataset': 'fashion-mnist', 'data_folder': '/somewhere', 'resize': None,
            'normalization': {'scale': 1 / 255, 'mean': 0.0, 'std': 1.0},
            'recipe': {'epochs': 2, 'batch_size': 256, 'lr': 0.9, 'optimizer': 'sgd', 'loss': 'softmax_cross_entropy',
                       'init': 'xavier', 'limit': 600, 'kvstore': 'device', 'num_workers': 1},
            'seed': 1, 'epochs_done': 2, 'test_acc': 0.5, 'd2lnets_version': '0.1.0', 'mxnet_version': '1.9.1',
            'created': '2026-12-06T12:00:00+00:00'}
    c = RunConfig.from_meta(meta)
    assert c == RunConfig(epochs=2, lr=0.9, model='lenet', batch_size=256, limit=600, seed=1)
    assert all(meta[k] == v for k, v in c.to_meta().items())


def test_the_shipped_weights_meta_has_the_older_recipe_and_reads_back():
    """d2lnets 0.1's layout: no kvstore and num_workers in the recipe."""
    meta = json.loads((ROOT / 'd2lnets' / 'weights' / 'lenet-fashion-mnist-5a8ada67.json').read_text())
    assert 'kvstore' not in meta['recipe'] and 'num_workers' not in meta['recipe']
    c = RunConfig.from_meta(meta)
    assert c == RunConfig(epochs=10, lr=0.9, model='lenet', batch_size=256, seed=1)
    assert c.kvstore == 'device' and c.num_workers == 1


def test_a_meta_without_a_recipe_is_one_error():
    with pytest.raises(ValueError, match="the run's settings have no recipe"):
        RunConfig.from_meta({'model': 'lenet'})
    with pytest.raises(ValueError, match="the run's recipe has no 'lr'"):
        RunConfig.from_meta({'model': 'lenet', 'recipe': {'epochs': 1, 'batch_size': 2}})
