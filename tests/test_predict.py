"""predict: image files from the real Fashion-MNIST test set get the class the
network gives the array, through the MXNet network and through ONNX without MXNet.

The network is LeNet with the weights d2lnets ships (83% test accuracy), so
its predictions mean something."""
import json
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from PIL import Image

import d2lnets
import d2lnets.models.loading
from d2lnets import cli
from d2lnets.data import FASHION_MNIST_CLASSES, load_arrays, to_tensor
from d2lnets.deploy.export import export
from d2lnets.deploy.images import load_images
from d2lnets.deploy.predict import iter_predictions, predict_network, softmax, top_k
from d2lnets.registry import entry

from conftest import make_picture

# Two test images of each class.
PER_CLASS = 2


@pytest.fixture(scope='module')
def test_set():
    """(images (N, 28, 28) uint8, labels) of PER_CLASS test images per class."""
    images, labels = load_arrays('fashion-mnist', train=False, download=False)
    pick = np.concatenate([np.flatnonzero(labels == c)[:PER_CLASS] for c in range(10)])
    return images[pick], labels[pick]


def write_pngs(folder, images, invert=False):
    folder.mkdir(exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        paths.append(str(folder / ('%02d.png' % i)))
        Image.fromarray(255 - img if invert else img).save(paths[-1])
    return paths


def save_run(folder, net, side=28):
    """model.params and meta.json, as `d2lnets train` writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    net.save_parameters(str(folder / 'model.params'))
    (folder / 'meta.json').write_text(json.dumps({
        'model': 'lenet', 'model_kwargs': {}, 'classes': FASHION_MNIST_CLASSES, 'input_shape': [1, 1, side, side],
        'dataset': 'fashion-mnist', 'resize': None if side == 28 else side,
        'normalization': {'scale': 1 / 255, 'mean': 0.0, 'std': 1.0}}))
    return folder


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    """A run directory holding the shipped LeNet weights, as `d2lnets train` would write it."""
    return save_run(tmp_path_factory.mktemp('run'), d2lnets.get_model('lenet', pretrained=True))


def network_on_arrays(params, images, side=28):
    """Class probabilities of the saved LeNet on the test set's arrays, as training feeds them."""
    net = d2lnets.get_model('lenet')
    net.load_parameters(str(params))
    x = mx.nd.array(to_tensor(images))
    if side != 28:
        x = mx.nd.contrib.BilinearResize2D(x, height=side, width=side, align_corners=False)
    return softmax(net(x).asnumpy())


def parse(out):
    """{path: [(probability, index, name), ...]} from predict's output."""
    result, path = {}, None
    for line in out.splitlines():
        if not line.startswith(' '):
            path = line.rstrip(':')
            result[path] = []
        else:
            prob, index, name = line.split(None, 2)
            result[path].append((float(prob.rstrip('%')) / 100, int(index), name))
    return result


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize('invert', [False, True], ids=['dark-background', 'light-background'])
def test_pngs_read_back_as_the_arrays(tmp_path, test_set, invert):
    images, _ = test_set
    paths = write_pngs(tmp_path / 'png', images, invert)
    batch = load_images(paths, (1, 28, 28))
    assert batch.shape == (len(images), 1, 28, 28) and batch.dtype == np.float32
    assert np.array_equal(batch[:, 0], to_tensor(images)[:, 0])


def test_transparent_background_counts_as_white(tmp_path, test_set):
    images, _ = test_set
    paths = []
    for i, img in enumerate(images):
        rgba = np.zeros(img.shape + (4,), np.uint8)
        rgba[..., :3] = (255 - img)[..., None]      # a dark item ...
        rgba[..., 3] = np.where(img > 0, 255, 0)    # ... on a transparent background
        paths.append(str(tmp_path / ('%02d.png' % i)))
        Image.fromarray(rgba, 'RGBA').save(paths[-1])
    assert np.array_equal(load_images(paths, (1, 28, 28))[:, 0], to_tensor(images)[:, 0])


@pytest.mark.parametrize('weights', ['--params', '--pretrained'])
def test_predict_gives_the_class_of_the_array(tmp_path, capsys, test_set, run_dir, weights):
    images, _ = test_set
    paths = write_pngs(tmp_path / 'png', images)
    args = ['--params', run_dir / 'model.params'] if weights == '--params' else ['--pretrained']
    code, out, err = run(capsys, 'predict', 'lenet', *args, *paths)
    assert (code, err) == (0, '')
    got = parse(out)
    assert list(got) == paths and all(len(top) == 3 for top in got.values())
    probs = network_on_arrays(run_dir / 'model.params', images)
    for path, p in zip(paths, probs):
        order = np.argsort(-p, kind='stable')[:3]
        assert [i for _, i, _ in got[path]] == list(order)
        assert [name for _, _, name in got[path]] == [FASHION_MNIST_CLASSES[i] for i in order]
        assert np.allclose([q for q, _, _ in got[path]], p[order], atol=5e-5)


def test_predict_onnx_needs_no_mxnet(tmp_path, capsys, test_set, run_dir):
    images, _ = test_set
    paths = write_pngs(tmp_path / 'png', images, invert=True)
    code, _, err = run(capsys, 'export', 'lenet', '--params', run_dir / 'model.params', '--format', 'onnx',
                       '--out', tmp_path / 'lenet')
    assert (code, err) == (0, '')
    # MXNet blocked: importing it would fail.
    code = ("import sys; sys.modules['mxnet'] = None\n"
            "from d2lnets.cli import main\n"
            "code = main(sys.argv[1:])\n"
            "assert sys.modules['mxnet'] is None\n"
            "sys.exit(code)")
    proc = subprocess.run([sys.executable, '-c', code, 'predict', 'lenet', '--onnx', str(tmp_path / 'lenet.onnx')]
                          + paths, capture_output=True, text=True)
    assert (proc.returncode, proc.stderr) == (0, '')
    got = parse(proc.stdout)
    probs = network_on_arrays(run_dir / 'model.params', images)
    for path, p in zip(paths, probs):
        order = np.argsort(-p, kind='stable')[:3]
        assert [i for _, i, _ in got[path]] == list(order)
        assert np.allclose([q for q, _, _ in got[path]], p[order], atol=5e-5)


def test_predict_resizes_as_the_run_did(tmp_path, capsys, test_set):
    """A run trained on 32 x 32 (``resize``: 32): the 28 x 28 form is resized as
    the training pipeline resizes (bilinear, pixel centres aligned)."""
    images, _ = test_set
    net = d2lnets.get_model('lenet')
    net.initialize(mx.init.Xavier(magnitude=6))
    net(mx.nd.zeros((1, 1, 32, 32)))
    folder = save_run(tmp_path / 'run32', net, side=32)
    paths = write_pngs(tmp_path / 'png', images)
    code, out, err = run(capsys, 'predict', 'lenet', '--params', folder / 'model.params', '--top', '1', *paths)
    assert (code, err) == (0, '')
    probs = network_on_arrays(folder / 'model.params', images, side=32)
    assert [top[0][1] for top in parse(out).values()] == list(probs.argmax(axis=1))


def test_a_photo_gets_the_class_of_the_array(tmp_path, capsys, test_set, run_dir):
    """Product photos: each test item 8x larger, on a light background with
    margins, as JPEG. Brought to Fashion-MNIST's form, they get the class the
    network gives the array (resampling may flip a rare close call)."""
    images, _ = test_set
    paths = []
    for i, img in enumerate(images):
        photo = np.full((300, 400), 255, np.uint8)
        photo[40:264, 100:324] = np.asarray(Image.fromarray(255 - img).resize((224, 224), Image.NEAREST))
        paths.append(str(tmp_path / ('photo%02d.jpg' % i)))
        Image.fromarray(photo).convert('RGB').save(paths[-1], quality=90)
    code, out, err = run(capsys, 'predict', 'lenet', '--params', run_dir / 'model.params', '--top', '1', *paths)
    assert (code, err) == (0, '')
    got = [top[0][1] for top in parse(out).values()]
    expected = network_on_arrays(run_dir / 'model.params', images).argmax(axis=1)
    assert np.sum(np.array(got) == expected) >= len(images) - 2, (got, expected)


@pytest.mark.parametrize('name, args, message', [
    ('lenet', ['--params', 'PARAMS', 'nothere.png'], 'no such image file: nothere.png'),
    ('lenet', ['--params', 'PARAMS', 'NOT_AN_IMAGE'], 'cannot read'),
    ('lenet', ['--onnx', 'nothere.onnx', 'IMAGE'], 'no such ONNX file: nothere.onnx'),
    ('lenet', ['--onnx', 'NOT_AN_IMAGE', 'IMAGE'], 'is not a model onnxruntime can run'),
    ('nin', ['--params', 'PARAMS', 'IMAGE'], "holds weights of 'lenet' (says the meta.json beside it), not 'nin'"),
])
def test_bad_input_is_one_line(tmp_path, capsys, test_set, run_dir, name, args, message):
    not_an_image = tmp_path / 'notes.png'
    not_an_image.write_text('not an image')
    image = write_pngs(tmp_path / 'png', test_set[0][:1])[0]
    args = [{'PARAMS': run_dir / 'model.params', 'NOT_AN_IMAGE': not_an_image, 'IMAGE': image}.get(a, a)
            for a in args]
    code, out, err = run(capsys, 'predict', name, *args)
    assert code == 1 and out == ''
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_onnx_of_another_model_is_refused(tmp_path, capsys, test_set, run_dir):
    net = d2lnets.get_model('lenet')
    net.initialize()
    export(net, str(tmp_path / 'lenet'), (1, 1, 28, 28), 'onnx', metadata={'model': 'lenet'})
    image = write_pngs(tmp_path / 'png', test_set[0][:1])[0]
    code, out, err = run(capsys, 'predict', 'nin', '--onnx', tmp_path / 'lenet.onnx', image)
    assert code == 1 and "lenet.onnx holds 'lenet', not 'nin'" in err


def smooth_picture(path, height, width, seed):
    """A photo-like RGB picture: coarse random colours, smoothly interpolated."""
    coarse = np.random.RandomState(seed).randint(0, 256, (height // 20 + 2, width // 20 + 2, 3)).astype(np.uint8)
    Image.fromarray(coarse).resize((width, height), Image.BICUBIC).save(path)
    return path


def test_onnx_of_imagenet_weights_predicts_as_the_mxnet_path(tmp_path, capsys):
    """An ONNX file of ImageNet weights (3x224x224, ImageNet's classes) gets
    GluonCV's preprocessing without MXNet: the same top 5 as the MXNet network (predict_network)."""
    from d2lnets.models.loading import pretrained_meta
    net = d2lnets.get_model('nin', classes=1000)
    net.initialize(mx.init.Xavier(magnitude=6))
    meta = dict(pretrained_meta('vgg11'), model='nin')
    export(net, str(tmp_path / 'nin'), (1, 3, 224, 224), 'onnx', metadata=meta)
    paths = [smooth_picture(str(tmp_path / ('%d.png' % i)), h, w, i)
             for i, (h, w) in enumerate([(300, 400), (500, 333), (224, 224)])]
    code, out, err = run(capsys, 'predict', 'nin', '--onnx', tmp_path / 'nin.onnx', *paths)
    assert (code, err) == (0, '')
    got = parse(out)
    for path, expected in zip(paths, predict_network(net, meta, paths)):    # ImageNet's default: top 5
        assert [(i, name) for _, i, name in got[path]] == [(i, name) for i, name, _ in expected]
        assert np.allclose([p for p, _, _ in got[path]], [p for _, _, p in expected], atol=1e-3)


# --- ImageNet weights: top-k names, and what the command line refuses -----------------------

def test_top_k_names_and_probabilities():
    logits = mx.nd.zeros((1, 1000))
    logits[0, 281] = 5
    logits[0, 1] = 4
    categories = entry('vgg11').pretrained().categories
    (top,) = top_k(logits.asnumpy(), categories, k=3)
    assert [(i, n) for i, n, _ in top] == [(281, 'tabby'), (1, 'goldfish'), (0, 'tench')]
    e = np.exp([5.0, 4.0, 0.0])
    np.testing.assert_allclose([p for _, _, p in top], e / (e[:2].sum() + 998), rtol=1e-6)
    assert len(categories) == 1000
    with pytest.raises(ValueError, match=r'\(batch, 1000\)'):
        top_k(np.zeros((1, 10)), categories)


def test_predict_errors_are_one_line(run_cli, tmp_path):
    picture = tmp_path / 'p.png'
    make_picture(picture)
    proc = run_cli('predict', 'alexnet', '--pretrained', picture)
    assert proc.returncode == 1 and proc.stdout == '' and len(proc.stderr.strip().splitlines()) == 1
    assert "d2lnets predict: error: no ImageNet weights fit the lecture's 'alexnet'" in proc.stderr
    assert "use get_model('alexnet_gluoncv', pretrained=True)" in proc.stderr


@pytest.mark.parametrize('argv, match', [
    (['predict', 'nin', '--pretrained', 'IMG'], "no pretrained weights are available for 'nin'"),
    (['predict', 'vgg11', 'IMG'], 'say which weights to use: --pretrained'),
    (['predict', 'vgg11', '--pretrained', 'missing.jpg'], 'no such image file: missing.jpg'),
    (['predict', 'vgg11', '--pretrained', 'NOTIMG'], 'n.png as an image'),
    (['predict', 'vgg11', '--pretrained', 'IMG'], 'vgg11-dd221b16.params not found'),
])
def test_predict_refusals(argv, match, cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('MXNET_GLUON_REPO', 'http://127.0.0.1:9/')
    make_picture(tmp_path / 'p.png')
    (tmp_path / 'n.png').write_text('not an image')
    argv = [{'IMG': str(tmp_path / 'p.png'), 'NOTIMG': str(tmp_path / 'n.png')}.get(a, a) for a in argv]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and match in err


@pytest.mark.parametrize('size', ['0', '65537', '2.5'])
def test_a_batch_size_out_of_bounds_is_refused_in_one_line(size, tmp_path, capsys):
    make_picture(tmp_path / 'p.png')
    with pytest.raises(SystemExit) as exit:
        cli.main(['predict', 'lenet', '--pretrained', '--batch-size', size, str(tmp_path / 'p.png')])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.splitlines() == [
        "d2lnets predict: error: argument --batch-size: expected an integer from 1 to 65536, got '%s' "
        "(see d2lnets predict --help)" % size]


def test_onnx_metadata_whose_classes_do_not_fit_the_outputs_is_refused(tmp_path, capsys, test_set):
    """As --params refuses a meta.json naming more or fewer classes than the weights have outputs,
    --onnx refuses metadata whose class list does not fit the model's outputs, in one line."""
    import onnx
    net = d2lnets.get_model('lenet')
    net.initialize()
    export(net, str(tmp_path / 'lenet'), (1, 1, 28, 28), 'onnx', metadata={'model': 'lenet'})
    model = onnx.load(str(tmp_path / 'lenet.onnx'))
    for entry in model.metadata_props:       # a hand-edited (or another export's) class list of 9
        if entry.key == 'd2lnets':
            entry.value = json.dumps(dict(json.loads(entry.value), classes=FASHION_MNIST_CLASSES[:9]))
    onnx.save(model, str(tmp_path / 'lenet.onnx'))
    image = write_pngs(tmp_path / 'png', test_set[0][:1])[0]
    code, out, err = run(capsys, 'predict', 'lenet', '--onnx', tmp_path / 'lenet.onnx', image)
    assert (code, out) == (1, '')
    assert err.splitlines() == [
        'd2lnets predict: error: the d2lnets metadata in %s names 9 classes, but the model has 10 outputs; the '
        'two do not belong together: export it again' % (tmp_path / 'lenet.onnx')]


def test_many_images_are_predicted_one_batch_at_a_time_as_one_at_a_time(tmp_path, capsys):
    """300 files: the results are those of one image at a time, and the paths (a generator here)
    are taken no further ahead than the batch being run, so at most ``batch`` images are decoded
    at any time; the CLI prints each batch as it is done, the same results."""
    images, _ = load_arrays('fashion-mnist', train=False, download=False)
    paths = write_pngs(tmp_path / 'png', images[:300])
    net, meta = d2lnets.models.loading.load_network('lenet', pretrained=True)
    alone = [predict_network(net, meta, [p], k=3)[0] for p in paths]
    taken, ahead = [], []

    def given():
        for path in paths:
            taken.append(path)
            yield path
    got = []
    for path, preds in iter_predictions('lenet', given(), pretrained=True, batch=32):
        got.append((path, preds))
        ahead.append(len(taken) - len(got))
    assert [path for path, _ in got] == paths
    assert max(ahead) == 31 and min(ahead) == 0         # a batch of 32 taken, then given back one by one
    assert ahead[:32] == list(range(31, -1, -1))
    for (_, preds), one in zip(got, alone):
        assert [(i, name) for i, name, _ in preds] == [(i, name) for i, name, _ in one]
        np.testing.assert_allclose([p for _, _, p in preds], [p for _, _, p in one], rtol=1e-5, atol=1e-7)
    for batch in ([], ['--batch-size', '7']):     # the default (64 for 28x28), and 7: 42 batches and a 6
        code, out, err = run(capsys, 'predict', 'lenet', '--pretrained', *batch, *paths)
        assert (code, err) == (0, '')
        printed = parse(out)
        assert list(printed) == paths
        for path, one in zip(paths, alone):
            assert [(i, name) for _, i, name in printed[path]] == [(i, name) for i, name, _ in one]
            np.testing.assert_allclose([p for p, _, _ in printed[path]], [p for _, _, p in one], atol=5e-5)
