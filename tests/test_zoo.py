"""GluonCV model-zoo weights in the lecture's networks.

GluonCV's own networks, with seeded random weights, are saved in each of
GluonCV's key formats and loaded into d2lnets' networks: the outputs must
agree. Files are large (vgg19_bn: 548 MB), so each is deleted as soon as it is
loaded and each GluonCV network is built once. Downloads go to a real HTTP
server on 127.0.0.1, never the internet.
"""
import hashlib
import os
import zipfile

import mxnet as mx
import numpy as np
import pytest

import d2lnets
from d2lnets import cli
from d2lnets import io
from d2lnets.deploy.images import prepare
from d2lnets.deploy.predict import top_k
from d2lnets.io import sha1sum
from d2lnets.registry import REGISTRY
from d2lnets.weights import zoo

from conftest import make_picture

# d2lnets name -> GluonCV's model name, as the registry's weights entries say
GLUONCV = {name: e.weights[0].file for name, e in REGISTRY.items() if e.weights and e.weights[0].source == 'gluoncv'}

ZOO = ['alexnet_gluoncv', 'vgg11', 'vgg11_bn', 'vgg13', 'vgg13_bn', 'vgg16', 'vgg16_bn', 'vgg19',
       'vgg19_bn']
FORMATS = ['structural', 'stripped', 'full']
# All three formats where the issue asks; otherwise the format GluonCV publishes
# the name in (prefix-stripped for vgg13, structural for the re-uploaded vgg16/19).
CASES = ([(name, fmt) for name in ('alexnet_gluoncv', 'vgg11', 'vgg11_bn') for fmt in FORMATS]
         + [('vgg13', 'stripped'), ('vgg13_bn', 'stripped'), ('vgg16', 'structural'),
            ('vgg16_bn', 'structural'), ('vgg19', 'structural'), ('vgg19_bn', 'structural')])
FIRST_FORMAT = {name: fmt for name, fmt in reversed(CASES)}

TOL = dict(rtol=1e-5, atol=1e-5)


class _Between(mx.init.Initializer):
    """Uniform on [low, high): positive running variances, gammas around 1."""

    def __init__(self, low, high):
        super().__init__()
        self.low, self.high = low, high

    def _init_weight(self, _, arr):
        mx.nd.random.uniform(self.low, self.high, out=arr)


# Every parameter drawn at random (GluonCV's zero biases and unit statistics
# would hide a mapping that swaps them); uniform draws are fast for 140M weights.
_INITS = {'weight': mx.init.Xavier(factor_type='in', magnitude=2), 'bias': _Between(-0.1, 0.1),
          'gamma': _Between(0.5, 1.5), 'beta': _Between(-0.1, 0.1),
          'running_mean': _Between(-0.1, 0.1), 'running_var': _Between(0.5, 1.5)}


def seeded_init(net, seed=0):
    mx.random.seed(seed)
    for name, p in net.collect_params().items():
        p.init = _INITS[next(s for s in zoo._SUFFIXES if name.endswith(s))]
    net.initialize()


def save(net, fmt, path):
    """Write ``net``'s parameters in one of GluonCV's key formats."""
    if fmt == 'structural':      # features.0.weight
        net.save_parameters(str(path))
    elif fmt == 'stripped':      # conv0_weight
        net.collect_params().save(str(path), strip_prefix=net.prefix)
    else:                        # vgg0_conv0_weight
        net.collect_params().save(str(path))
    return path


@pytest.fixture(scope='module')
def image():
    mx.random.seed(1)
    return mx.nd.random.uniform(-2, 2, shape=(1, 3, 224, 224))


_reference = {}


@pytest.fixture
def gluoncv_net(image):
    """``get(name)`` -> GluonCV's network for ``name`` with seeded random weights and its
    output on ``image``. Holds one network at a time (they are up to 548 MB)."""
    import gluoncv

    def get(name):
        if name not in _reference:
            _reference.clear()
            net = gluoncv.model_zoo.get_model(GLUONCV[name])
            seeded_init(net)
            _reference[name] = net, net(image).asnumpy()
        return _reference[name]
    return get


def snapshot(net):
    return {k: p.data().asnumpy() for k, p in net.collect_params().items()}


def assert_unchanged(net, before):
    after = snapshot(net)
    assert list(after) == list(before)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


@pytest.fixture
def server(tmp_path, monkeypatch, http_server):
    """A real HTTP server on 127.0.0.1 serving ``tmp_path/served`` as GluonCV's
    repository (``MXNET_GLUON_REPO``, without the trailing slash GluonCV adds);
    returns (``http_server``, the models folder)."""
    served = tmp_path / 'served'
    (served / 'gluon' / 'models').mkdir(parents=True)
    monkeypatch.setenv('MXNET_GLUON_REPO', http_server(served).rstrip('/'))
    return http_server, served / 'gluon' / 'models'


def publish(params_file, name, models_dir, monkeypatch):
    """Zip ``params_file`` as GluonCV publishes ``name`` and patch its sha1 into
    GluonCV's table; return the file name."""
    from gluoncv.model_zoo import model_store
    sha1 = sha1sum(params_file)
    monkeypatch.setitem(model_store._model_sha1, GLUONCV[name], sha1)
    fname = zoo.file_name(GLUONCV[name])
    with zipfile.ZipFile(models_dir / (fname[:-len('.params')] + '.zip'), 'w', zipfile.ZIP_STORED) as zf:
        zf.write(params_file, fname)
    return fname


# --- AlexNet end to end: download, load, compare; the lecture's AlexNet refused ---------

def test_pretrained_alexnet_downloads_and_equals_gluoncv(gluoncv_net, image, cache, server, tmp_path,
                                                        monkeypatch, capsys):
    httpd, models_dir = server
    theirs, expected = gluoncv_net('alexnet_gluoncv')
    params = save(theirs, 'structural', tmp_path / 'alexnet.params')
    fname = publish(params, 'alexnet_gluoncv', models_dir, monkeypatch)
    params.unlink()

    net = d2lnets.get_model('alexnet_gluoncv', pretrained=True)
    assert len(httpd.requests) == 1
    # Downloaded into GluonCV's cache, under its final name only, with a progress bar.
    assert sorted(p.name for p in cache.iterdir()) == [fname]
    assert fname in capsys.readouterr().err
    np.testing.assert_allclose(net(image).asnumpy(), expected, **TOL)
    net.hybridize()
    np.testing.assert_allclose(net(image).asnumpy(), expected, **TOL)

    # Found in the cache the second time: no download.
    d2lnets.get_model('alexnet_gluoncv', pretrained=True)
    assert len(httpd.requests) == 1

    # The lecture's AlexNet is another layout: refused, with the reason and the alternative.
    with pytest.raises(ValueError, match=r"lecture's 'alexnet'.*alexnet_gluoncv"):
        d2lnets.get_model('alexnet', pretrained=True)
    lecture = d2lnets.get_model('alexnet', classes=1000)
    lecture.initialize()
    lecture(image)
    before = snapshot(lecture)
    with pytest.raises(ValueError) as info:
        zoo.load_gluoncv_params(lecture, cache / fname)
    assert ("layer 0 differs: the network's conv0, a convolution with weight shape (96, 3, 11, 11), "
            "but the file's features.0, a convolution with weight shape (64, 3, 11, 11) "
            "(the network has 5 conv, 3 dense; the file 5 conv, 3 dense)") in str(info.value)
    assert_unchanged(lecture, before)

    # The command line: top-5 ImageNet classes of an image, with names and probabilities.
    picture = tmp_path / 'picture.png'
    make_picture(picture)
    assert cli.main(['predict', 'alexnet_gluoncv', '--pretrained', str(picture)]) == 0
    out = capsys.readouterr().out.splitlines()
    weights = REGISTRY['alexnet_gluoncv'].pretrained()
    logits = theirs(mx.nd.array(prepare([str(picture)], weights.preprocessing, (3, 224, 224)))).asnumpy()
    top5 = top_k(logits, weights.categories, 5)[0]
    assert out == ['%s:' % picture] + ['  %6.2f%%  %4d  %s' % (100 * p, i, n) for i, n, p in top5]
    assert len(out) == 6 and top5[0][2] >= top5[-1][2] > 0


# --- every zoo name, every key format where asked -----------------------------------------

@pytest.mark.parametrize('name, fmt', CASES)
def test_gluoncv_params_load_and_outputs_agree(name, fmt, gluoncv_net, image, tmp_path):
    theirs, expected = gluoncv_net(name)
    path = save(theirs, fmt, tmp_path / (name + '.params'))
    ours = d2lnets.get_model(name, classes=1000)
    zoo.load_gluoncv_params(ours, path)
    path.unlink()
    # Batch norm in inference mode: its running statistics are used.
    outputs = {'imperative': ours(image).asnumpy()}
    if fmt == FIRST_FORMAT[name]:      # hybridized once per network
        ours.hybridize()
        outputs['hybridized'] = ours(image).asnumpy()
    for mode, y in outputs.items():
        # Shown with `pytest -s`: the differences the closing note reports.
        print('%s %s %s: max |d2lnets - GluonCV| = %.3g (outputs up to %.3g)'
              % (name, fmt, mode, np.abs(y - expected).max(), np.abs(expected).max()))
        np.testing.assert_allclose(y, expected, **TOL)


# --- key formats and errors on small networks (fast) --------------------------------------

ARCH = [(1, 4), (1, 8), (2, 8), (2, 16), (2, 16)]
SMALL = (2, 3, 32, 32)


def small_gluoncv(batch_norm, prefix='vgg7_', classes=10):
    from gluoncv.model_zoo.vgg import VGG
    net = VGG([n for n, _ in ARCH], [c for _, c in ARCH], classes=classes, batch_norm=batch_norm,
              prefix=prefix)
    seeded_init(net)
    net(mx.nd.zeros(SMALL))    # deferred initialization
    return net


def small_ours(batch_norm, classes=10):
    with mx.name.NameManager():
        return d2lnets.models.vgg(ARCH, classes=classes, batch_norm=batch_norm)


@pytest.mark.parametrize('fmt', FORMATS)
def test_any_prefix_number_loads(fmt, tmp_path):
    x = mx.nd.random.uniform(shape=SMALL)
    theirs = small_gluoncv(True, prefix='vgg3_')
    path = save(theirs, fmt, tmp_path / 'small.params')
    keys = list(mx.nd.load(str(path)))
    assert keys[0] == {'structural': 'features.0.weight', 'stripped': 'conv0_weight',
                       'full': 'vgg3_conv0_weight'}[fmt]
    ours = small_ours(True)
    zoo.load_gluoncv_params(ours, path)
    np.testing.assert_allclose(ours(x).asnumpy(), theirs(x).asnumpy(), **TOL)


def test_named_files_in_any_key_order_load(tmp_path):
    # Old files carry no order: convolutions and batch norms are ordered by their counters.
    x = mx.nd.random.uniform(shape=SMALL)
    theirs = small_gluoncv(True)
    arrays = {k: p.data() for k, p in theirs.collect_params().items()}
    mx.nd.save(str(tmp_path / 'shuffled.params'), dict(sorted(arrays.items(), reverse=True)))
    ours = small_ours(True)
    zoo.load_gluoncv_params(ours, tmp_path / 'shuffled.params')
    np.testing.assert_allclose(ours(x).asnumpy(), theirs(x).asnumpy(), **TOL)


def test_another_architecture_names_the_first_differing_layer(tmp_path):
    path = save(small_gluoncv(True), 'structural', tmp_path / 'bn.params')
    ours = small_ours(False)
    ours.initialize()
    ours(mx.nd.zeros(SMALL))
    before = snapshot(ours)
    with pytest.raises(ValueError) as info:
        zoo.load_gluoncv_params(ours, path)
    assert str(info.value) == (
        "cannot load %s: layer 1 differs: the network's conv1, a convolution with weight shape "
        "(8, 4, 3, 3), but the file's features.1, a batch norm with gamma shape (4,) "
        "(the network has 8 conv, 3 dense; the file 8 conv, 8 batchnorm, 3 dense)" % path)
    assert_unchanged(ours, before)


def test_differing_shape_deep_inside_loads_nothing(tmp_path):
    # Every layer but the classifier agrees: still nothing may be loaded.
    path = save(small_gluoncv(False, classes=7), 'stripped', tmp_path / 'seven.params')
    ours = small_ours(False)
    ours.initialize()
    ours(mx.nd.zeros(SMALL))
    before = snapshot(ours)
    with pytest.raises(ValueError, match=r"layer 10 differs: the network's dense2, a dense layer with "
                                         r"weight shape \(10, 4096\), but the file's dense2, a dense "
                                         r"layer with weight shape \(7, 4096\)"):
        zoo.load_gluoncv_params(ours, path)
    assert_unchanged(ours, before)
    # An uninitialized network stays uninitialized.
    fresh = small_ours(False)
    with pytest.raises(ValueError):
        zoo.load_gluoncv_params(fresh, path)
    assert not any(d2lnets.models.params.is_initialized(p) for p in fresh.collect_params().values())


def test_missing_layer_is_named(tmp_path):
    from gluoncv.model_zoo.vgg import VGG
    shallow = VGG([1, 1, 2, 2, 1], [4, 8, 8, 16, 16], classes=10)
    seeded_init(shallow)
    shallow(mx.nd.zeros(SMALL))
    path = save(shallow, 'full', tmp_path / 'shallow.params')
    with pytest.raises(ValueError, match=r"layer 7 differs: the network's conv7, a convolution with "
                                         r"weight shape \(16, 0, 3, 3\), but the file's vgg\d+_dense0, "
                                         r"a dense layer"):
        zoo.load_gluoncv_params(small_ours(False), path)
    # A feature extractor (no classifier) has one layer less than the file.
    path = save(small_gluoncv(False), 'full', tmp_path / 'full.params')
    features = small_ours(False)[:-1]
    with pytest.raises(ValueError, match=r"layer 10 differs: the file's vgg7_dense2, a dense layer "
                                         r"with weight shape \(10, 4096\) has no counterpart in the network "
                                         r"\(the network has 8 conv, 2 dense; the file 8 conv, 3 dense\)"):
        zoo.load_gluoncv_params(features, path)


@pytest.mark.parametrize('content', [b'not a params file\n' * 100, 'truncated'])
def test_corrupted_file_is_refused_and_loads_nothing(content, tmp_path):
    path = tmp_path / 'bad.params'
    if content == 'truncated':
        good = save(small_gluoncv(False), 'structural', tmp_path / 'good.params').read_bytes()
        content = good[:len(good) // 2]
    path.write_bytes(content)
    ours = small_ours(False)
    ours.initialize()
    ours(mx.nd.zeros(SMALL))
    before = snapshot(ours)
    with pytest.raises(ValueError, match='bad.params is not a readable MXNet .params file'):
        zoo.load_gluoncv_params(ours, path)
    assert_unchanged(ours, before)


def test_exclude_output_leaves_the_classifier_for_fine_tuning(tmp_path):
    x = mx.nd.random.uniform(shape=SMALL)
    theirs = small_gluoncv(True, classes=1000)
    path = save(theirs, 'structural', tmp_path / 'imagenet.params')
    ours = small_ours(True, classes=10)
    zoo.load_gluoncv_params(ours, path, exclude_output=True)
    # Everything but the classifier is loaded; the classifier waits for its initializer.
    assert not d2lnets.models.params.is_initialized(ours[-1].weight)
    assert d2lnets.initialize_missing(ours, mx.init.Xavier()) == 2
    assert ours(x).shape == (2, 10)
    # Up to the second hidden dense layer (and its dropout, idle in inference) all is GluonCV's.
    np.testing.assert_allclose(ours[:-1](x).asnumpy(), theirs.features(x).asnumpy(), **TOL)
    # A training step moves the new classifier (the network really trains).
    trainer = mx.gluon.Trainer(ours.collect_params(), 'sgd', {'learning_rate': 0.1})
    w = ours[-1].weight.data().copy()
    with mx.autograd.record():
        loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()(ours(x), mx.nd.array([1, 2]))
    loss.backward()
    trainer.step(2)
    assert np.abs(ours[-1].weight.data().asnumpy() - w.asnumpy()).max() > 0


# --- locating, verifying and downloading --------------------------------------------------

def test_file_names_and_urls_are_gluoncvs(monkeypatch):
    from gluoncv.model_zoo import model_store
    assert sorted(GLUONCV) == ZOO
    for name in ZOO:
        gname = GLUONCV[name]
        assert zoo.file_name(GLUONCV[name]) == gname + '-' + model_store.short_hash(gname) + '.params'
    assert zoo.file_name('vgg11') == 'vgg11-dd221b16.params'
    assert zoo.file_name('alexnet') == 'alexnet-44335d1f.params'
    monkeypatch.delenv('MXNET_GLUON_REPO', raising=False)
    assert zoo.download_url('vgg16') == (
        'https://apache-mxnet.s3-accelerate.dualstack.amazonaws.com/gluon/models/vgg16-e660d456.zip')
    monkeypatch.setenv('MXNET_GLUON_REPO', 'https://mirror.example/repo')
    assert zoo.download_url('vgg16') == 'https://mirror.example/repo/gluon/models/vgg16-e660d456.zip'


def test_search_order(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'mx'))
    assert zoo.cache_dirs(tmp_path / 'root') == [tmp_path / 'root', tmp_path / 'mx' / 'models',
                                                 tmp_path / 'home' / '.mxnet' / 'models']
    monkeypatch.delenv('MXNET_HOME')
    assert zoo.cache_dirs() == [tmp_path / 'home' / '.mxnet' / 'models']


def test_download_verifies_and_leaves_no_partial_file(cache, server, tmp_path, monkeypatch, capsys):
    httpd, models_dir = server
    params = save(small_gluoncv(False), 'structural', tmp_path / 'small.params')
    fname = publish(params, 'vgg11', models_dir, monkeypatch)
    root = tmp_path / 'root'
    path = zoo.find_weights('vgg11', root=root)
    assert path == root / fname and path.read_bytes() == params.read_bytes()
    assert sorted(p.name for p in root.iterdir()) == [fname]
    assert 'vgg11-' in capsys.readouterr().err          # tqdm's progress bar
    assert zoo.find_weights('vgg11', root=root) == path and len(httpd.requests) == 1

    # The server's file has another sha1 than GluonCV's table: refused, nothing kept.
    from gluoncv.model_zoo import model_store
    monkeypatch.setitem(model_store._model_sha1, 'vgg13', hashlib.sha1(b'other').hexdigest())
    publish_as = models_dir / (zoo.file_name('vgg13')[:-len('.params')] + '.zip')
    with zipfile.ZipFile(publish_as, 'w') as zf:
        zf.write(params, zoo.file_name('vgg13'))
    with pytest.raises(ValueError, match='has sha1 %s, but GluonCV publishes' % sha1sum(params)):
        zoo.find_weights('vgg13', root=root)
    assert sorted(p.name for p in root.iterdir()) == [fname]


def test_a_zip_replaced_by_a_link_is_left_alone(cache, server, tmp_path, monkeypatch):
    """The downloaded zip is a temporary of d2lnets, deleted through io.remove_own like every file it
    deletes: when another process has put a symbolic link to a file outside in its place (between the
    download and the unpacking), the link stays, the file it names too, and no weights appear."""
    _, models_dir = server
    params = save(small_gluoncv(False), 'structural', tmp_path / 'small.params')
    publish(params, 'vgg11', models_dir, monkeypatch)
    outside = tmp_path / 'outside'
    outside.write_bytes(b'not a file of d2lnets')
    swapped = []

    def download_then_swap(url, dest, **kwargs):
        path = io.download(url, dest, **kwargs)     # the real download, from the real server
        os.unlink(path)
        path.symlink_to(outside)
        swapped.append(path)
        return path
    monkeypatch.setattr(zoo, 'download', download_then_swap)
    root = tmp_path / 'root'
    with pytest.raises(ValueError, match=r'\.zip is a symbolic link; d2lnets deletes only regular files of its own'):
        zoo.download_weights('vgg11', root)
    assert [p.name for p in root.iterdir()] == [swapped[0].name] and swapped[0].is_symlink()
    assert outside.read_bytes() == b'not a file of d2lnets'


def test_missing_file_says_which_file_to_place_where(cache, server):
    httpd, _ = server         # serves nothing: 404
    with pytest.raises(OSError) as info:
        d2lnets.get_model('vgg16_bn', pretrained=True)
    message = str(info.value)
    assert message.startswith('vgg16_bn-7f01cf05.params not found and could not be downloaded (')
    assert ("place GluonCV's vgg16_bn-7f01cf05.params (sha1 7f01cf050d357127a73826045c245041b0df7363, "
            "in the zip at %s/gluon/models/vgg16_bn-7f01cf05.zip) in %s or %s"
            % (httpd_url(httpd), cache, cache.parent.parent / 'home' / '.mxnet' / 'models')) in message
    assert len(httpd.requests) == 1 and list(cache.iterdir()) == []


def httpd_url(httpd):
    return 'http://127.0.0.1:%d' % httpd.servers[-1].server_address[1]


def test_unreachable_server_and_no_download(cache, monkeypatch):
    monkeypatch.setenv('MXNET_GLUON_REPO', 'http://127.0.0.1:9/')     # the discard port: refused
    with pytest.raises(OSError, match=r'vgg11-dd221b16.params not found and could not be downloaded '
                                      r'\(.*refused.*\); place GluonCV'):
        zoo.find_weights('vgg11')
    with pytest.raises(OSError, match=r'^vgg11-dd221b16.params not found; place GluonCV'):
        zoo.find_weights('vgg11', download=False)


def test_wrong_sha1_in_cache_is_refused_not_redownloaded(cache, server, tmp_path):
    httpd, _ = server
    cache.mkdir(parents=True)
    (cache / 'vgg19-ad2f660d.params').write_bytes(b'an older or damaged download')
    with pytest.raises(ValueError, match=r'vgg19-ad2f660d.params has sha1 [0-9a-f]{40}, but GluonCV '
                                         r"publishes 'vgg19' with sha1 ad2f660d101905472b83590b59708b71ea22b2e5"
                                         r'.*Delete it and run again'):
        d2lnets.get_model('vgg19', pretrained=True)
    assert len(httpd.requests) == 0
    assert (cache / 'vgg19-ad2f660d.params').read_bytes() == b'an older or damaged download'


@pytest.mark.parametrize('name, kwargs, match', [
    ('nin', {}, r"no pretrained weights are available for 'nin'; weights exist for "
                r"alexnet_gluoncv, lenet, vgg11, vgg11_bn"),
    ('vgg11_small', {}, 'no pretrained weights'),
    ('vgg16', {'classes': 10}, r"the ImageNet weights of 'vgg16' have 1000 classes, got classes=10; "
                               r"to fine-tune .*exclude_output=True"),
])
def test_pretrained_refusals(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        d2lnets.get_model(name, pretrained=True, **kwargs)


# --- the real GluonCV files, where a user's cache has them (never in CI) ------------------

def test_real_gluoncv_weights_give_gluoncvs_outputs(image):
    """Every GluonCV file the user's cache holds loads and gives GluonCV's outputs."""
    import gluoncv
    present = []
    for name in ZOO:
        try:
            zoo.find_weights(GLUONCV[name], download=False)
            present.append(name)
        except OSError:
            pass
    if not present:
        pytest.skip("none of GluonCV's ImageNet files is in %s (never in CI): place, e.g., %s there "
                    "to run this test" % (' or '.join(map(str, zoo.cache_dirs())), zoo.file_name('vgg11')))
    for name in present:
        theirs = gluoncv.model_zoo.get_model(GLUONCV[name], pretrained=True)
        ours = d2lnets.get_model(name, pretrained=True)
        np.testing.assert_allclose(ours(image).asnumpy(), theirs(image).asnumpy(), **TOL,
                                   err_msg=name)
        del theirs, ours
