"""GluonCV model-zoo weights for the lecture's networks: locate, download, verify.

GluonCV publishes ImageNet weights for AlexNet and VGG-11/13/16/19 (with and
without batch norm) as ``{name}-{sha1[:8]}.params``, kept in
``$MXNET_HOME/models`` or ``~/.mxnet/models``. The lecture's VGG with
``classes=1000`` is GluonCV's VGG, and ``alexnet_gluoncv`` is GluonCV's
AlexNet, so the weights load into the lecture's code and give GluonCV's
outputs. Only the parameter names differ: the file is mapped onto the network
by the ordered list of parameterized layers (convolution, batch norm, dense),
GluonCV's adapter in :mod:`.load` (``ADAPTERS['gluoncv']``), and loaded by
:func:`d2lnets.weights.load.set_params`, which checks all of it first.

The sha1 table and URL scheme are GluonCV's own
(``gluoncv.model_zoo.model_store``), read when needed, not copied.
"""
import os
import shutil
import urllib.parse
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import mxnet as mx

from ..io import atomic_write, download, gluon_repo, mxnet_home, open_regular, remove_own, sha1sum
from ..types import PathLike
# GluonCV's adapter (by_layer_order) sits in .load with the others; _SUFFIXES names its parameter kinds.
from .load import MAX_PARAMS_BYTES, _SUFFIXES, by_layer_order, load_file, structural_params  # noqa: F401


# Seconds to wait for GluonCV's server before telling the user to place the file.
_TIMEOUT = 30


def _sha1_table() -> Dict[str, str]:
    from gluoncv.model_zoo import model_store
    return model_store._model_sha1


def file_name(gname: str) -> str:
    """GluonCV's file name for the weights of its model ``gname``, e.g. ``vgg11-dd221b16.params``."""
    return '%s-%s.params' % (gname, sha1(gname)[:8])


def sha1(gname: str) -> str:
    """The sha1 GluonCV publishes for its model ``gname``'s weights."""
    try:
        return _sha1_table()[gname]
    except KeyError:
        raise ValueError('GluonCV publishes no weights named %r' % gname) from None


def cache_dirs(root: Optional[PathLike] = None) -> List[Path]:
    """Where weights are looked for, in order: ``root``, ``$MXNET_HOME/models``,
    ``~/.mxnet/models`` (GluonCV's cache). The first is where downloads go."""
    dirs = [Path(root).expanduser()] if root is not None else []
    dirs += [mxnet_home() / 'models', Path('~/.mxnet/models').expanduser()]
    return list(dict.fromkeys(dirs))


def _check_sha1(path: Path, gname: str, url: Optional[str] = None) -> None:
    """Refuse a file whose sha1 is not GluonCV's for ``gname``: the file at
    ``path``, or, with ``url``, the one that server sent (``path`` a temporary)."""
    expected = sha1(gname)
    actual = sha1sum(path)
    if actual == expected:
        return
    if url is not None:
        raise ValueError('%s in %s (from %s) has sha1 %s, but GluonCV publishes %r with sha1 %s: the server '
                         'sends another file or version; nothing was kept. Use GluonCV\'s own server (unset '
                         'MXNET_GLUON_REPO) or a mirror with the right file'
                         % (file_name(gname), url, urllib.parse.urlsplit(url).netloc, actual, gname, expected))
    raise ValueError('%s has sha1 %s, but GluonCV publishes %r with sha1 %s: the file is '
                     'corrupted, truncated or another version. Delete it and run again to '
                     'download it, or put the right file in its place'
                     % (path, actual, gname, expected))


def download_url(gname: str) -> str:
    """GluonCV's URL for its model ``gname``'s zipped weights; ``$MXNET_GLUON_REPO`` replaces
    the repository, as in GluonCV."""
    from gluoncv.model_zoo import model_store
    return model_store._url_format.format(repo_url=gluon_repo(model_store.apache_repo_url),
                                          file_name=file_name(gname)[:-len('.params')])


def find_weights(gname: str, root: Optional[PathLike] = None, download: bool = True) -> Path:
    """The verified path of the weights of GluonCV's model ``gname``.

    Looks in :func:`cache_dirs` (``root`` first); a file found is checked
    against GluonCV's full sha1 and refused if it differs (never replaced
    behind the user's back). A missing file is downloaded into the first of
    those directories, if ``download`` and GluonCV's server is reachable.

    Raises
    ------
    ValueError
        ``name`` has no weights, or the file's sha1 is wrong.
    OSError
        The file is missing and could not be downloaded; the message says
        which file to place where.
    """
    fname = file_name(gname)
    dirs = cache_dirs(root)
    for d in dirs:
        if (d / fname).is_file():
            _check_sha1(d / fname, gname)
            return d / fname
    where = ' or '.join(str(d) for d in dirs)
    place = ('place GluonCV\'s %s (sha1 %s, in the zip at %s) in %s'
             % (fname, sha1(gname), download_url(gname), where))
    if not download:
        raise OSError('%s not found; %s' % (fname, place))
    try:
        return download_weights(gname, dirs[0])
    except (OSError, zipfile.BadZipFile) as err:
        reason = getattr(err, 'reason', None) or err
        raise OSError('%s not found and could not be downloaded (%s); %s'
                      % (fname, reason, place)) from None


def download_weights(gname: str, directory: PathLike) -> Path:
    """Download the zipped weights of GluonCV's model ``gname`` from GluonCV's URL into ``directory``
    with a progress bar, verify the sha1 and return the ``.params`` path.

    The file appears under its final name only once complete and verified;
    the zip is a temporary (see :mod:`d2lnets.io`).
    """
    directory = Path(directory).expanduser()
    fname, url = file_name(gname), download_url(gname)

    def fetch_and_extract(tmp: str) -> None:
        archive = Path(tmp + '.zip')
        try:
            download(url, archive, progress=True, timeout=_TIMEOUT, desc=fname)
            with zipfile.ZipFile(archive) as zf, open(open_regular(tmp), 'wb') as out:
                if fname not in zf.namelist():
                    raise ValueError('%s does not contain %s (it holds %s)'
                                     % (url, fname, ', '.join(zf.namelist()[:10])))
                declared = zf.getinfo(fname).file_size
                if declared > MAX_PARAMS_BYTES:
                    raise ValueError('%s says %s unpacks to %d bytes, more than the %d any GluonCV weights take: '
                                     'the server sends another file' % (url, fname, declared, MAX_PARAMS_BYTES))
                # zipfile reads no more than the declared size, and checks the CRC.
                with zf.open(fname) as member:
                    shutil.copyfileobj(member, out, 1 << 20)
        finally:
            # Through remove_own, as everything d2lnets deletes: a link or another's file in its place stays.
            if os.path.lexists(archive):
                remove_own(archive)
        _check_sha1(Path(tmp), gname, url)

    return atomic_write(directory / fname, fetch_and_extract)


def map_gluoncv_params(net: mx.gluon.Block, arrays: Dict[str, mx.nd.NDArray],
                       exclude_output: bool = False) -> Dict[str, mx.nd.NDArray]:
    """Map a GluonCV parameter dict onto ``net``: ``{net parameter name: array}``.

    GluonCV's adapter, :func:`d2lnets.weights.load.by_layer_order`, keyed by
    the parameters' full names; pure, changes nothing. ``ValueError`` names
    the first layer that differs and both shapes.
    """
    params = structural_params(net)
    return {params[k].name: a for k, a in by_layer_order(arrays, net, exclude_output).items()}


def load_gluoncv_params(net: mx.gluon.Block, filename: PathLike, exclude_output: bool = False,
                        ctx: Optional[Union[mx.Context, Sequence[mx.Context]]] = None) -> None:
    """Load a GluonCV ``.params`` file into a lecture-style network.

    All of GluonCV's key formats load: structural keys (``features.0.weight``,
    written by ``save_parameters``), prefix-stripped names (``conv0_weight``)
    and full names with any prefix (``vgg3_conv0_weight``, written by
    ``collect_params().save``). The file is mapped by the ordered list of
    convolution, batch-norm and dense layers; all of it is checked before any
    parameter is set, so a failed load leaves ``net`` unchanged.

    Parameters
    ----------
    net : Block
        E.g. ``d2lnets.get_model('vgg16', classes=1000)``; initialized or not.
    filename : str or path
        The ``.params`` file.
    exclude_output : bool
        Load everything but the final dense layer (the classifier), which is
        left as it was for the caller to initialize: for fine-tuning to
        another number of classes.
    ctx : Context or list of Context, optional
        Where to put parameters that are not initialized yet (default: CPU).
        Initialized parameters keep their contexts.

    Raises
    ------
    ValueError
        The file is unreadable, or its layers or shapes differ from ``net``'s
        (the message names the first differing layer and both shapes).

    Examples
    --------
    >>> net = d2lnets.get_model('vgg11', classes=10)
    >>> load_gluoncv_params(net, 'vgg11-dd221b16.params', exclude_output=True)
    >>> d2lnets.initialize_missing(net, mx.init.Xavier())   # the new classifier
    """
    load_file(net, filename, 'gluoncv', exclude_output, ctx)
