"""Fashion-MNIST and MNIST: find the files, verify them by content, iterate fast.

The lecture's ``load_data_fashion_mnist(batch_size, resize)`` goes through
``gluon.data.vision.FashionMNIST``, which checks the gz files' sha1 and, when
they differ (Debian's are recompressed) or are missing, downloads from a host
that has failed users since 2024. Here the files are found in this order:

1. ``root`` (the ``root=`` argument, ``--data-dir``);
2. ``$D2LNETS_DATA/<dataset>``;
3. ``$MXNET_HOME/datasets/<dataset>`` (default ``~/.mxnet/datasets/<dataset>``),
   where MXNet itself keeps them;
4. Debian's package ``dataset-fashion-mnist``: ``/usr/share/datasets/fashion-mnist``;
5. else they are downloaded from MXNet's dataset URL (``$MXNET_GLUON_REPO``,
   as MXNet reads it, names a mirror) into ``$MXNET_HOME/datasets/<dataset>``.

Files may be gz-compressed or raw IDX. They are checked by content: IDX magic
number, dimensions, example counts, label range. A bad file raises
:class:`DatasetError` naming the file, what is wrong and how to fix it.

The whole set is held in memory as one float32 array (60,000 x 1 x 28 x 28 is
188 MB); a batch is a slice of a shuffled index, and resizing (to 224 x 224 for
AlexNet, VGG and NiN) is one batched bilinear resize per batch, so the resized
set is never held in memory.
"""
import gzip
import os
import struct
import sys
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import limits
from .datasets import FASHION_MNIST_CLASSES, TO_TENSOR, DataSet, for_training
from .io import download, gluon_repo, mxnet_home

__all__ = ['DatasetError', 'FASHION_MNIST_CLASSES', 'candidate_dirs', 'locate', 'find_dataset',
           'download_dataset', 'parse_idx', 'read_idx', 'load_arrays', 'ArrayIter', 'load_data',
           'load_fashion_mnist', 'load_mnist', 'classes']

DEBIAN_DIR = '/usr/share/datasets'


class DatasetError(ValueError):
    """A data set file is missing, corrupt, truncated or does not match its
    partner; the message names the file and how to fix it."""


def get_dataset(name: str) -> DataSet:
    """The row of data set ``name`` in :data:`d2lnets.datasets.DATASETS`, which holds its files;
    ``ValueError`` lists the data sets d2lnets trains on."""
    return for_training(name)


def _file_names(ds: DataSet) -> List[str]:
    return [ds.train.images, ds.train.labels, ds.test.images, ds.test.labels]


_DATA_DIR = 'the data folder (--data-dir)'


def candidate_dirs(dataset: str, root: Optional[str] = None) -> List[Path]:
    """The folders searched for ``dataset``, in order."""
    ds = get_dataset(dataset)
    dirs = []
    if root:
        dirs.append(Path(limits.check_path(root, _DATA_DIR)).expanduser())
    if os.environ.get('D2LNETS_DATA'):
        variable = limits.check_path(os.environ['D2LNETS_DATA'], 'D2LNETS_DATA')
        dirs.append(Path(variable).expanduser() / dataset)
    dirs.append(mxnet_home() / 'datasets' / dataset)
    if ds.debian:
        dirs.append(Path(DEBIAN_DIR) / dataset)
    return dirs


def _find_file(folder: Path, base: str) -> Optional[Path]:
    for name in (base + '.gz', base):
        if (folder / name).is_file():
            return folder / name
    return None


def locate(dataset: str, root: Optional[str] = None) -> Optional[Path]:
    """The first candidate folder holding all four files of ``dataset``
    (gz or raw), or ``None``. Nothing is read or downloaded."""
    ds = get_dataset(dataset)
    for folder in candidate_dirs(dataset, root):
        if all(_find_file(folder, f) for f in _file_names(ds)):
            return folder
    return None


def file_url(dataset: str, filename: str) -> str:
    """Where MXNet downloads ``filename`` of ``dataset`` from (``$MXNET_GLUON_REPO`` names a mirror)."""
    return '%sgluon/dataset/%s/%s' % (gluon_repo(), dataset, filename)


def download_dataset(dataset: str, dest: Optional[Path] = None, progress: Optional[bool] = None) -> Path:
    """Download the four files of ``dataset`` into ``dest`` (default
    ``$MXNET_HOME/datasets/<dataset>``); files already there are kept."""
    ds = get_dataset(dataset)
    dest = Path(dest) if dest else mxnet_home() / 'datasets' / dataset
    if progress is None:
        progress = sys.stderr.isatty()
    for base in _file_names(ds):
        if _find_file(dest, base) is None:
            download(file_url(dataset, base + '.gz'), dest / (base + '.gz'), progress=progress, timeout=60)
    return dest


def find_dataset(dataset: str, root: Optional[str] = None, download: bool = True,
                 progress: Optional[bool] = None) -> Path:
    """The folder holding ``dataset``'s files: the first of :func:`candidate_dirs`
    that has them all, else (with ``download``) a fresh download into ``$MXNET_HOME``.

    A ``root`` given (``--data-dir``) is used or refused, never passed over
    in silence: training on other files than the ones named would surprise."""
    ds = get_dataset(dataset)
    if root is not None:
        folder = Path(limits.check_path(root, _DATA_DIR)).expanduser()
        missing = [f for f in _file_names(ds) if _find_file(folder, f) is None]
        if missing:
            what = 'does not exist' if not folder.is_dir() else 'lacks %s' % ', '.join(missing)
            raise DatasetError('the data folder %s %s; give the folder that holds the %s files (%s, or the same '
                               'without .gz), or leave the folder out to use the copy d2lnets finds'
                               % (folder, what, dataset, ', '.join(f + '.gz' for f in _file_names(ds))))
        return folder
    found = locate(dataset, root)
    if found is not None:
        return found
    where = ('%s was found in none of: %s' % (dataset, ', '.join(map(str, candidate_dirs(dataset, root)))))
    if not download:
        raise DatasetError(where)
    try:
        return download_dataset(dataset, progress=progress)
    except OSError as err:
        apt = (', or install the Debian package (sudo apt-get install %s)' % ds.debian) if ds.debian else ''
        raise OSError('%s; %s. Put its files (%s) in one of those folders%s, or set MXNET_GLUON_REPO to a '
                      'mirror' % (err, where, ', '.join(f + '.gz' for f in _file_names(ds)), apt)) from None


# IDX: big-endian; 2 zero bytes, a type byte, the number of dimensions, then
# one uint32 per dimension, then the data. MNIST-like sets use type 0x08 (ubyte).
_IDX_UBYTE = 0x08
_MAX_DIMS = 4
_MAX_ELEMENTS = 1 << 31


def _fail(name: str, what: str) -> DatasetError:
    return DatasetError('%s: %s' % (name, what))


def _read_exactly(stream: BinaryIO, n: int, name: str, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise _fail(name, 'truncated: %s has %d of %d bytes' % (what, len(data), n))
    return data


def parse_idx(stream: BinaryIO, name: str = '<stream>', shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """Parse one IDX file of unsigned bytes from a binary ``stream``.

    Parameters
    ----------
    stream : binary file object
        Raw IDX bytes (decompress first).
    name : str
        Named in error messages.
    shape : sequence of int, optional
        The expected dimensions; checked before the data is read.

    Returns
    -------
    numpy.ndarray of uint8 with the file's dimensions.

    Raises
    ------
    DatasetError
        Anything else than one complete ubyte IDX array of the expected shape.
    """
    try:
        magic = _read_exactly(stream, 4, name, 'the header')
        if magic[:2] != b'\x00\x00' or magic[2] != _IDX_UBYTE or not 1 <= magic[3] <= _MAX_DIMS:
            raise _fail(name, 'not an IDX file of unsigned bytes (magic number %s, expected 0x000008NN '
                              'with 1 <= NN <= %d)' % (magic.hex(), _MAX_DIMS))
        ndim = magic[3]
        dims = struct.unpack('>%dI' % ndim, _read_exactly(stream, 4 * ndim, name, 'the dimensions'))
        if shape is not None and tuple(dims) != tuple(shape):
            raise _fail(name, 'has dimensions %s, expected %s' % (tuple(dims), tuple(shape)))
        count = 1
        for d in dims:  # Python ints: numpy's product would overflow on hostile dimensions
            count *= d
        if count > _MAX_ELEMENTS:
            raise _fail(name, 'claims %d elements (dimensions %s), more than an IDX data set holds'
                        % (count, tuple(dims)))
        data = _read_exactly(stream, count, name, 'the data')
        if stream.read(1):
            raise _fail(name, 'has bytes after the %d announced by its dimensions %s' % (count, tuple(dims)))
    except (OSError, EOFError, zlib.error) as err:
        # gzip: a bad header (BadGzipFile is an OSError), corrupt or truncated stream.
        raise _fail(name, 'cannot be decompressed: %s' % (err,)) from None
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def read_idx(path: Path, shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """Read an IDX file, gz-compressed or raw (told apart by content); see :func:`parse_idx`."""
    path = Path(path)
    try:
        f = open(path, 'rb')
    except OSError as err:
        raise DatasetError('%s: cannot be read: %s' % (path, err.strerror or err)) from None
    with f:
        gz = f.read(2) == b'\x1f\x8b'
        f.seek(0)
        stream = gzip.GzipFile(fileobj=f, mode='rb') if gz else f
        return parse_idx(stream, str(path), shape)


def _fix_hint(ds: DataSet, folder: Path) -> str:
    hint = 'delete it and run again to download a fresh copy'
    if ds.debian and str(folder).startswith(DEBIAN_DIR):
        hint = 'reinstall it: sudo apt-get install --reinstall %s' % ds.debian
    return hint


def load_arrays(dataset: str = 'fashion-mnist', train: bool = True, root: Optional[str] = None,
                download: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split, verified.

    Returns
    -------
    (images, labels)
        ``uint8`` arrays of shape (N, 28, 28) and (N,): N = 60,000 for the
        training split and 10,000 for the test split.
    """
    ds = get_dataset(dataset)
    split = ds.train if train else ds.test
    folder = find_dataset(dataset, root, download=download)
    files = [_find_file(folder, split.images), _find_file(folder, split.labels)]
    if None in files:  # removed since it was found
        raise DatasetError('%s: the %s files went missing' % (folder, dataset))
    img_path, lbl_path = files
    hint = _fix_hint(ds, folder)
    try:
        images = read_idx(img_path, (split.count, ds.image_size, ds.image_size))
        labels = read_idx(lbl_path, (split.count,))
    except DatasetError as err:
        raise DatasetError('%s (it should hold the %s %s split); %s'
                           % (err, dataset, 'training' if train else 'test', hint)) from None
    bad = out_of_range(labels, len(ds.classes))
    if bad:
        raise DatasetError('%s: %s found, %s labels are 0..%d; %s' % (lbl_path, bad, dataset, len(ds.classes) - 1,
                                                                       hint))
    return images, labels


def out_of_range(labels: np.ndarray, classes: int) -> Optional[str]:
    """``'label 12 (3 examples)'``: the most extreme label outside ``[0, classes)`` and how many
    examples have it, or ``None`` when every label is a class, an integer from 0 to ``classes - 1``."""
    labels = np.asarray(labels).ravel()
    outside = labels[(labels < 0) | (labels >= classes) | (labels != np.floor(labels))]
    if not outside.size:
        return None
    worst = outside.max() if outside.max() >= classes else outside.min()
    count = int(np.count_nonzero(labels == worst))
    return 'label %g (%d example%s)' % (worst, count, '' if count == 1 else 's')


class ArrayIter:
    """Mini-batches over images held in memory, as the lecture's DataLoader
    gives them: ``for X, y in it`` with X of shape (batch, 1, H, W), float32
    NDArrays on the CPU, and y the labels (float32, as the lecture's).

    Parameters
    ----------
    images : numpy.ndarray
        (N, 1, 28, 28) float32, already scaled.
    labels : numpy.ndarray
        (N,) labels.
    batch_size : int
    shuffle : bool
        Visit the examples in a new random order every epoch.
    resize : int, optional
        Resize each batch to ``resize x resize`` (bilinear, one batched operation).
    drop_last : bool
        Leave out an incomplete last batch (as a parameter-server job does, whose
        workers must take the same number of steps).
    seed : int, optional
        With a seed, epoch ``e``'s order depends only on ``(seed, e)``
        (see :meth:`set_epoch`), so an interrupted run can be resumed exactly.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool = False,
                 resize: Optional[int] = None, seed: Optional[int] = None, drop_last: bool = False):
        batch_size = limits.check('batch_size', batch_size)
        resize = limits.check('resize', resize, optional=True)
        if len(images) != len(labels):
            raise ValueError('%d images but %d labels' % (len(images), len(labels)))
        self.images = np.ascontiguousarray(images, dtype=np.float32)
        self.labels = labels.astype(np.float32)
        self.batch_size, self.shuffle, self.resize, self.seed = int(batch_size), shuffle, resize, seed
        self.drop_last = drop_last
        self.epoch = 0
        self.shard_index, self.num_shards = 0, 1

    def shard(self, index: int, count: int) -> 'ArrayIter':
        """Give only shard ``index`` of ``count`` from now on (a worker's part
        of data-parallel training): each pass cuts the same order into global
        batches of ``batch_size x count`` examples and yields part ``index`` of
        each, so the workers together see what one process with the global
        batch would. An incomplete last global batch is dropped, so that
        every worker takes the same number of steps. All workers must shuffle
        alike: give them the same ``seed`` (or, as :func:`d2lnets.training.loop.train`
        does, seed NumPy alike before each pass)."""
        if not (limits.is_int(count) and count >= 1 and limits.is_int(index) and 0 <= index < count):
            raise ValueError('shard %r of %r: need 0 <= index < count' % (index, count))
        if count > 1 and len(self.images) < self.batch_size * count:
            raise ValueError('%d examples are fewer than one global batch of %d x %d'
                             % (len(self.images), self.batch_size, count))
        self.shard_index, self.num_shards = index, count
        return self

    @property
    def num_examples(self) -> int:
        return len(self.images)

    @property
    def example_shape(self) -> Tuple[int, ...]:
        """(C, H, W) of one example as the network sees it."""
        c, h, w = self.images.shape[1:]
        return (c, self.resize, self.resize) if self.resize else (c, h, w)

    def __len__(self) -> int:
        if self.num_shards > 1 or self.drop_last:
            return len(self.images) // (self.batch_size * self.num_shards)
        return (len(self.images) + self.batch_size - 1) // self.batch_size

    def _batches(self, order: np.ndarray) -> Iterator[np.ndarray]:
        if self.num_shards == 1 and not self.drop_last:
            for start in range(0, len(order), self.batch_size):
                yield order[start:start + self.batch_size]
            return
        step = self.batch_size * self.num_shards
        offset = self.shard_index * self.batch_size
        for start in range(0, len(order) - step + 1, step):
            yield order[start + offset:start + offset + self.batch_size]

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use epoch ``epoch``'s order."""
        self.epoch = epoch

    def order(self) -> np.ndarray:
        """The example indices of the next pass."""
        n = len(self.images)
        if not self.shuffle:
            return np.arange(n)
        if self.seed is None:
            return np.random.permutation(n)
        return np.random.RandomState([self.seed, self.epoch]).permutation(n)

    def __iter__(self) -> Iterator:
        import mxnet as mx
        for idx in self._batches(self.order()):
            # Indexing with an array makes a fresh contiguous copy (0.2 ms for 256
            # examples), which the NDArray takes over without a copy: mx.nd.array
            # would copy again and wait for MXNet's engine, several ms per batch.
            X = mx.nd.from_numpy(self.images[idx], zero_copy=True)
            y = mx.nd.from_numpy(self.labels[idx], zero_copy=True)
            if self.resize:
                # (batch, C, 28, 28) -> (batch, C, resize, resize); align_corners=False
                # samples pixel centres as the lecture's transforms.Resize (OpenCV) does.
                X = mx.nd.contrib.BilinearResize2D(X, height=self.resize, width=self.resize,
                                                   align_corners=False)
            yield X, y


def to_tensor(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 1, 28, 28) float32 in [0, 1], as ToTensor."""
    out = images.astype(np.float32).reshape(len(images), 1, *images.shape[1:])
    out *= np.float32(TO_TENSOR['scale'])
    return out


def check_limit(limit: Optional[int]) -> None:
    """``ValueError`` unless ``limit`` is ``None`` or within :data:`d2lnets.limits.BOUNDS`."""
    limits.check('limit', limit, optional=True)


def load_data(batch_size: int, resize: Optional[int] = None, root: Optional[str] = None,
              dataset: str = 'fashion-mnist', limit: Optional[int] = None, seed: Optional[int] = None,
              download: bool = True, drop_last: bool = False) -> Tuple[ArrayIter, ArrayIter]:
    """``(train_iter, test_iter)`` over ``dataset``, as the lecture's
    ``load_data_fashion_mnist``: the training set shuffled each epoch, the
    test set in order, pixels scaled to [0, 1].

    Parameters
    ----------
    batch_size : int
    resize : int, optional
        Side length to resize to (224 for AlexNet, VGG, NiN).
    root : str, optional
        Searched first for the files (see the module's docstring for the order).
    dataset : str
        ``'fashion-mnist'`` or ``'mnist'``.
    limit : int, optional
        Use only the first ``limit`` training and test examples.
    seed : int, optional
        Makes each epoch's order depend only on (seed, epoch).
    drop_last : bool
        Leave out the training set's incomplete last batch.
    """
    get_dataset(dataset)
    check_limit(limit)
    iters = []
    for train in (True, False):
        images, labels = load_arrays(dataset, train, root, download=download)
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        iters.append(ArrayIter(to_tensor(images), labels, batch_size, shuffle=train, resize=resize, seed=seed,
                               drop_last=drop_last and train))
    return iters[0], iters[1]


def load_fashion_mnist(batch_size: int, resize: Optional[int] = None, root: Optional[str] = None,
                       **kwargs) -> Tuple[ArrayIter, ArrayIter]:
    """The lecture's ``load_data_fashion_mnist``; see :func:`load_data`."""
    return load_data(batch_size, resize, root, dataset='fashion-mnist', **kwargs)


def load_mnist(batch_size: int, resize: Optional[int] = None, root: Optional[str] = None,
               **kwargs) -> Tuple[ArrayIter, ArrayIter]:
    """MNIST, as :func:`load_fashion_mnist`; see :func:`load_data`."""
    return load_data(batch_size, resize, root, dataset='mnist', **kwargs)


def classes(dataset: str) -> List[str]:
    """The class names of ``dataset``, by label (:attr:`d2lnets.datasets.DataSet.classes`)."""
    return get_dataset(dataset).classes
