"""Fashion-MNIST and MNIST: locating, verifying, downloading, iterating."""
import gzip
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from d2lnets import data
from d2lnets.data import DatasetError

from conftest import idx_bytes

FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']


@pytest.fixture(scope='module')
def fashion_test():
    return data.load_arrays('fashion-mnist', train=False)


def test_real_fashion_mnist_is_found_and_verified(fashion_test):
    images, labels = data.load_arrays('fashion-mnist', train=True)
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,)
    # Fashion-MNIST is balanced: 6,000 training and 1,000 test examples per class.
    assert np.bincount(labels).tolist() == [6000] * 10
    test_images, test_labels = fashion_test
    assert test_images.shape == (10000, 28, 28) and np.bincount(test_labels).tolist() == [1000] * 10
    assert data.classes('fashion-mnist')[9] == 'ankle boot'


def test_whole_set_is_one_float32_array_and_batches_cover_it_once():
    train_iter, test_iter = data.load_fashion_mnist(256, seed=0)
    assert train_iter.images.dtype == np.float32 and train_iter.images.nbytes == 60000 * 784 * 4  # 188 MB
    assert float(train_iter.images.max()) == 1.0 and float(train_iter.images.min()) == 0.0
    assert len(train_iter) == 235 and len(test_iter) == 40
    labels = []
    sizes = []
    for X, y in test_iter:
        sizes.append(X.shape[0])
        labels.append(y.asnumpy())
    assert sizes == [256] * 39 + [10000 - 39 * 256]
    assert X.shape[1:] == (1, 28, 28) and X.dtype == np.float32
    # The test set comes in order; the training set in a new order each epoch.
    np.testing.assert_array_equal(np.concatenate(labels), test_iter.labels)
    first = train_iter.order()
    assert sorted(first.tolist()) == list(range(60000))
    train_iter.set_epoch(1)
    again = train_iter.order()
    train_iter.set_epoch(2)
    assert not np.array_equal(again, train_iter.order())
    train_iter.set_epoch(1)
    np.testing.assert_array_equal(again, train_iter.order())


def test_resize_is_the_lectures_resize(fashion_test):
    """One batched bilinear resize gives what the lecture's per-image
    transforms.Resize(224) + ToTensor give, up to uint8 rounding."""
    import mxnet as mx
    from mxnet.gluon.data.vision import transforms
    images, labels = fashion_test[0][:16], fashion_test[1][:16]
    (X, y), = list(data.ArrayIter(data.to_tensor(images), labels, 16, resize=224))
    assert X.shape == (16, 1, 224, 224)
    lecture = transforms.Compose([transforms.Resize(224), transforms.ToTensor()])
    expected = np.stack([lecture(mx.nd.array(im[:, :, None], dtype='uint8')).asnumpy() for im in images])
    assert np.abs(X.asnumpy() - expected).max() < 1 / 255


def _make_set(folder: Path, arrays, compress=True, skip=()):
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        if name in skip:
            continue
        raw = idx_bytes(array)
        if compress:
            (folder / (name + '.gz')).write_bytes(gzip.compress(raw, compresslevel=1))
        else:
            (folder / name).write_bytes(raw)
    return folder


def test_search_order(no_data_env, monkeypatch, mnist_files):
    src, _ = mnist_files
    tmp = no_data_env
    places = {'root': tmp / 'root', 'env': tmp / 'env' / 'mnist', 'home': tmp / 'mxnet-home' / 'datasets' / 'mnist'}
    monkeypatch.setenv('D2LNETS_DATA', str(tmp / 'env'))
    assert data.locate('mnist', str(places['root'])) is None
    for where in ('home', 'env', 'root'):
        shutil.copytree(src, places[where])
        assert data.locate('mnist', str(places['root'])) == places[where]
    # A folder missing one file does not count; the search goes on.
    (places['root'] / (FILES[3] + '.gz')).unlink()
    assert data.locate('mnist', str(places['root'])) == places['env']
    assert data.candidate_dirs('fashion-mnist', 'R') == [Path('R'), tmp / 'env' / 'fashion-mnist',
                                                         tmp / 'mxnet-home' / 'datasets' / 'fashion-mnist',
                                                         Path(data.DEBIAN_DIR) / 'fashion-mnist']


def test_debian_folder_is_searched_after_mxnet_home(monkeypatch, tmp_path):
    monkeypatch.setenv('MXNET_HOME', str(tmp_path))
    monkeypatch.delenv('D2LNETS_DATA', raising=False)
    assert data.locate('fashion-mnist') == Path('/usr/share/datasets/fashion-mnist')


def test_raw_and_gz_files_load_the_same(no_data_env, mnist_files):
    src, arrays = mnist_files
    raw = _make_set(no_data_env / 'raw', arrays, compress=False)
    for root in (raw, src):
        images, labels = data.load_arrays('mnist', train=False, root=str(root))
        np.testing.assert_array_equal(images, arrays['t10k-images-idx3-ubyte'])
        np.testing.assert_array_equal(labels, arrays['t10k-labels-idx1-ubyte'])


@pytest.mark.parametrize('damage, message', [
    (lambda b: b[:len(b) // 2], 'truncated: the data has'),
    (lambda b: b + b'\0', 'has bytes after the 7840000 announced'),
    (lambda b: b'\x00\x00\x09\x03' + b[4:], 'not an IDX file of unsigned bytes (magic number 00000903'),
    (lambda b: b[:4] + (9999).to_bytes(4, 'big') + b[8:], 'has dimensions (9999, 28, 28), expected (10000, 28, 28)'),
])
def test_damaged_image_file_is_one_clear_error(no_data_env, mnist_files, damage, message):
    _, arrays = mnist_files
    folder = _make_set(no_data_env / 'set', arrays, skip={'t10k-images-idx3-ubyte'})
    bad = folder / 't10k-images-idx3-ubyte.gz'
    bad.write_bytes(gzip.compress(damage(idx_bytes(arrays['t10k-images-idx3-ubyte'])), compresslevel=1))
    with pytest.raises(DatasetError) as err:
        data.load_arrays('mnist', train=False, root=str(folder))
    text = str(err.value)
    assert text.startswith(str(bad) + ': ') and message in text
    assert 'the mnist test split' in text and 'delete it and run again' in text


def test_bad_labels_and_bad_gzip_are_clear_errors(no_data_env, mnist_files):
    _, arrays = mnist_files
    folder = _make_set(no_data_env / 'set', arrays)
    labels = arrays['t10k-labels-idx1-ubyte'].copy()
    labels[5] = 10
    (folder / 't10k-labels-idx1-ubyte.gz').write_bytes(gzip.compress(idx_bytes(labels)))
    with pytest.raises(DatasetError, match=r't10k-labels-idx1-ubyte.gz: label 10 \(1 example\) found, mnist labels are 0..9'):
        data.load_arrays('mnist', train=False, root=str(folder))
    gz = gzip.compress(idx_bytes(arrays['t10k-labels-idx1-ubyte']))
    (folder / 't10k-labels-idx1-ubyte.gz').write_bytes(gz[:-20])  # cut inside the deflate stream
    with pytest.raises(DatasetError, match='t10k-labels-idx1-ubyte.gz: cannot be decompressed'):
        data.load_arrays('mnist', train=False, root=str(folder))


def test_debian_files_get_a_reinstall_hint(monkeypatch, tmp_path):
    monkeypatch.setenv('MXNET_HOME', str(tmp_path))
    monkeypatch.delenv('D2LNETS_DATA', raising=False)
    monkeypatch.setattr(data, 'read_idx', lambda path, shape: (_ for _ in ()).throw(DatasetError('%s: bad' % path)))
    with pytest.raises(DatasetError, match='sudo apt-get install --reinstall dataset-fashion-mnist'):
        data.load_arrays('fashion-mnist', train=False)


def test_a_data_folder_given_is_used_or_refused_never_passed_over(no_data_env, mnist_files, tmp_path):
    src, _ = mnist_files
    assert data.find_dataset('mnist', str(src)) == src
    for folder, what in ((tmp_path / 'nowhere', 'does not exist'), (tmp_path, 'lacks ' + ', '.join(FILES))):
        with pytest.raises(DatasetError, match='the data folder %s %s; give the folder that holds the mnist files'
                                               % (folder, what)):
            data.load_data(64, root=str(folder), dataset='mnist')


def _parse(blob: bytes, shape=None):
    try:
        return data.parse_idx(io.BytesIO(blob), 'blob', shape)
    except DatasetError:
        return None


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64))
def test_parser_on_random_bytes_raises_only_dataset_error(blob):
    result = _parse(blob)
    if result is not None:  # random bytes can be a valid (tiny) IDX file: then it is parsed exactly
        assert result.size == len(blob) - 4 - 4 * result.ndim


VALID = idx_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=6),
       st.integers(0, len(VALID)), st.booleans())
def test_parser_on_mutated_files_raises_only_dataset_error(edits, cut, compress):
    blob = bytearray(VALID)
    for pos, value in edits:
        blob[pos] = value
    blob = bytes(blob[:cut])
    if compress:
        blob = gzip.compress(blob)
        blob = blob[:cut + 20]  # also truncated compressed streams
    path_result = None
    import tempfile
    with tempfile.NamedTemporaryFile(suffix='.gz') as f:
        f.write(blob)
        f.flush()
        try:
            path_result = data.read_idx(Path(f.name), (2, 3, 4))
        except DatasetError as err:
            assert str(err).startswith(f.name + ': ')
    if path_result is not None:
        assert path_result.shape == (2, 3, 4)


def test_huge_dimensions_are_refused_before_reading():
    header = b'\x00\x00\x08\x03' + (2 ** 31).to_bytes(4, 'big') * 3
    with pytest.raises(DatasetError, match='claims .* elements'):
        data.parse_idx(io.BytesIO(header), 'huge')


def _serve_tree(tmp_path, src, dataset='mnist'):
    tree = tmp_path / 'server'
    shutil.copytree(src, tree / 'gluon' / 'dataset' / dataset)
    return tree


def test_download_from_the_repository_mxnet_names(no_data_env, monkeypatch, mnist_files, http_server):
    src, arrays = mnist_files
    url = http_server(_serve_tree(no_data_env, src))
    monkeypatch.setenv('MXNET_GLUON_REPO', url.rstrip('/'))  # MXNet adds the slash itself
    assert data.file_url('mnist', 'x.gz') == url + 'gluon/dataset/mnist/x.gz'
    train_iter, test_iter = data.load_mnist(1000)
    home = no_data_env / 'mxnet-home' / 'datasets' / 'mnist'
    assert sorted(p.name for p in home.iterdir()) == sorted(f + '.gz' for f in FILES)
    np.testing.assert_array_equal(test_iter.labels, arrays['t10k-labels-idx1-ubyte'])
    assert train_iter.num_examples == 60000


def test_dropped_connection_leaves_nothing_and_says_so(no_data_env, monkeypatch, mnist_files, http_server):
    src, _ = mnist_files
    url = http_server(_serve_tree(no_data_env, src), drop_after=1000)
    monkeypatch.setenv('MXNET_GLUON_REPO', url)
    with pytest.raises(OSError) as err:
        data.load_mnist(100)
    text = str(err.value)
    assert ('could not download %sgluon/dataset/mnist/train-images-idx3-ubyte.gz' % url) in text
    assert '1000 of' in text or 'IncompleteRead' in text or 'closed' in text, text
    assert 'set MXNET_GLUON_REPO to a mirror' in text
    home = no_data_env / 'mxnet-home' / 'datasets' / 'mnist'
    assert list(home.iterdir()) == []


def test_missing_everywhere_offline_names_the_places(no_data_env, monkeypatch, http_server):
    empty = no_data_env / 'empty-server'
    empty.mkdir()
    monkeypatch.setenv('MXNET_GLUON_REPO', http_server(empty))
    with pytest.raises(OSError) as err:
        data.load_fashion_mnist(256)
    text = str(err.value)
    assert 'HTTP Error 404' in text or 'Not Found' in text
    assert str(no_data_env / 'mxnet-home' / 'datasets' / 'fashion-mnist') in text
    assert 'sudo apt-get install dataset-fashion-mnist' in text


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; known: fashion-mnist, mnist"):
        data.load_data(256, dataset='cifar')
    with pytest.raises(ValueError, match=r'the batch size \(`batch_size`\) must be an integer from 1 to 65536, got 0'):
        data.ArrayIter(np.zeros((2, 1, 28, 28), np.float32), np.zeros(2), 0)
    with pytest.raises(ValueError, match=r'the number of examples \(`limit`\) must be an integer from 1 to 100000000, got 0'):
        data.load_data(256, limit=0)


def test_limit_takes_the_first_examples(fashion_test):
    train_iter, test_iter = data.load_fashion_mnist(100, limit=300)
    assert train_iter.num_examples == test_iter.num_examples == 300
    np.testing.assert_array_equal(test_iter.labels, fashion_test[1][:300])
