"""GluonCV model-zoo weights for the lecture's networks: locate, verify, map, load.

GluonCV publishes ImageNet weights for AlexNet and VGG-11/13/16/19 (with and
without batch norm) as ``{name}-{sha1[:8]}.params``, kept in
``$MXNET_HOME/models`` or ``~/.mxnet/models``. The lecture's VGG with
``classes=1000`` is GluonCV's VGG, and ``alexnet_gluoncv`` is GluonCV's
AlexNet, so the weights load into the lecture's code and give GluonCV's
outputs. Only the parameter names differ: the file is mapped onto the network
by the ordered list of parameterized layers (convolution, batch norm, dense),
checking every count and shape before anything is loaded.

The sha1 table and URL scheme are GluonCV's own
(``gluoncv.model_zoo.model_store``), read when needed, not copied.
"""
import re
import shutil
import urllib.parse
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import mxnet as mx

from ..io import atomic_write, download, gluon_repo, mxnet_home, open_regular, sha1sum
from ..types import PathLike
from .load import check_finite, read_params, strip_prefix


# Seconds to wait for GluonCV's server before telling the user to place the file.
_TIMEOUT = 30
# The largest GluonCV ImageNet weights (VGG-19 with batch norm) are 0.57 GB.
MAX_PARAMS_BYTES = 2 << 30


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
            if archive.exists():
                archive.unlink()
        _check_sha1(Path(tmp), gname, url)

    return atomic_write(directory / fname, fetch_and_extract)


# --- mapping a GluonCV file onto a network --------------------------------------------------

# Parameter names of each kind of layer, as Gluon names them.
_KINDS = {'conv': 'a convolution', 'batchnorm': 'a batch norm', 'dense': 'a dense layer'}
_SUFFIXES = ('running_mean', 'running_var', 'gamma', 'beta', 'weight', 'bias')
_NAMED_LAYER = re.compile(r'^(?:.*_)?(conv|batchnorm|dense)(\d+)$')

Layer = Tuple[str, str, Dict[str, object]]   # (name, kind, {param: array or Parameter})


def _network_layers(block: mx.gluon.Block) -> List[Layer]:
    """The parameterized layers of ``block`` in forward order: (name, kind, params)."""
    if block._reg_params:
        if isinstance(block, mx.gluon.nn.Conv2D):
            kind = 'conv'
        elif isinstance(block, mx.gluon.nn.BatchNorm):
            kind = 'batchnorm'
        elif isinstance(block, mx.gluon.nn.Dense):
            kind = 'dense'
        else:
            raise ValueError('cannot map GluonCV weights onto %s (%s): only convolution, batch-norm '
                             'and dense layers are supported' % (block.name, type(block).__name__))
        return [(block.name, kind, dict(block._reg_params))]
    return [layer for child in block._children.values() for layer in _network_layers(child)]


def _split_key(key: str, structural: bool) -> Tuple[str, str]:
    """``'features.0.weight'`` -> ``('features.0', 'weight')``;
    ``'vgg0_batchnorm0_running_mean'`` -> ``('vgg0_batchnorm0', 'running_mean')``."""
    if structural:
        layer, _, param = key.rpartition('.')
        return layer, param
    for suffix in _SUFFIXES:
        if key.endswith('_' + suffix):
            return key[:-len(suffix) - 1], suffix
    raise ValueError('unrecognized parameter name %r' % key)


def _layer_order(layer: str, structural: bool) -> tuple:
    if structural:
        # 'features.10' -> ((1, 'features'), (0, 10)): numbers compare as numbers.
        return tuple((0, int(p)) if p.isdigit() else (1, p) for p in layer.split('.'))
    match = _NAMED_LAYER.match(layer)
    if not match:
        raise ValueError('unrecognized layer name %r (expected convN, batchnormN or denseN)' % layer)
    kind, number = match.group(1), int(match.group(2))
    # Named files carry no order across layer types: each convolution is followed
    # by its batch norm (same counter), and the dense layers come last, as in
    # GluonCV's AlexNet and VGG.
    return (kind == 'dense', number, kind == 'batchnorm')


def _file_layers(arrays: Dict[str, mx.nd.NDArray]) -> List[Layer]:
    """Group a loaded file's arrays into layers, in forward order."""
    keys = [strip_prefix(k) for k in arrays]
    structural = all('.' in k for k in keys)
    if not structural and any('.' in k for k in keys):
        raise ValueError('the file mixes structural keys (features.0.weight) with parameter names '
                         '(conv0_weight)')
    groups: Dict[str, Dict[str, object]] = {}
    for key, array in zip(keys, arrays.values()):
        layer, param = _split_key(key, structural)
        groups.setdefault(layer, {})[param] = array
    layers = []
    for layer in sorted(groups, key=lambda g: _layer_order(g, structural)):
        params = groups[layer]
        if 'gamma' in params:
            kind = 'batchnorm'
        elif 'weight' in params and params['weight'].ndim == 4:
            kind = 'conv'
        elif 'weight' in params and params['weight'].ndim == 2:
            kind = 'dense'
        else:
            raise ValueError('cannot tell what layer %s is (parameters %s)' % (layer, sorted(params)))
        layers.append((layer, kind, params))
    return layers


def _describe(layer: Layer, whose: str) -> str:
    name, kind, params = layer
    main = 'gamma' if kind == 'batchnorm' else 'weight'
    return "%s %s, %s with %s shape %s" % (whose, name, _KINDS[kind], main, tuple(params[main].shape))


def _census(layers: Sequence[Layer]) -> str:
    counts = {kind: sum(1 for _, k, _ in layers if k == kind) for kind in _KINDS}
    return ', '.join('%d %s' % (n, kind) for kind, n in counts.items() if n)


def _compatible(net_shape: tuple, file_shape: tuple) -> bool:
    # 0 in the network's shape is a size not known until the first forward pass.
    return len(net_shape) == len(file_shape) and all(a in (0, b) for a, b in zip(net_shape, file_shape))


def map_gluoncv_params(net: mx.gluon.Block, arrays: Dict[str, mx.nd.NDArray],
                       exclude_output: bool = False) -> Dict[str, mx.nd.NDArray]:
    """Map a GluonCV parameter dict onto ``net``: ``{net parameter name: array}``.

    Pure: checks that the parameterized layers (convolution, batch norm,
    dense) agree in number, kind and every shape, and changes nothing.
    ``exclude_output`` leaves out the final dense layer of both.

    Raises ``ValueError`` naming the first layer that differs and both shapes.
    """
    ours, theirs = _network_layers(net), _file_layers(arrays)
    census = '(the network has %s; the file %s)' % (_census(ours), _census(theirs))
    if exclude_output:
        for layers, whose in ((ours, 'the network'), (theirs, 'the file')):
            if not layers or layers[-1][1] != 'dense':
                raise ValueError('exclude_output=True expects a final dense layer, but the last '
                                 'layer of %s is %s' % (whose, layers[-1][0] if layers else 'missing'))
        ours, theirs = ours[:-1], theirs[:-1]
    mapped = {}
    for i, (mine, other) in enumerate(zip(ours, theirs)):
        same = mine[1] == other[1] and set(mine[2]) == set(other[2]) and all(
            _compatible(tuple(p.shape), tuple(other[2][k].shape)) for k, p in mine[2].items())
        if not same:
            raise ValueError('layer %d differs: %s, but %s %s'
                             % (i, _describe(mine, "the network's"), _describe(other, "the file's"), census))
        mapped.update({p.name: other[2][k] for k, p in mine[2].items()})
    if len(ours) != len(theirs):
        extra, whose, other = ((ours, "the network's", 'the file') if len(ours) > len(theirs)
                               else (theirs, "the file's", 'the network'))
        raise ValueError('layer %d differs: %s has no counterpart in %s %s'
                         % (min(len(ours), len(theirs)), _describe(extra[min(len(ours), len(theirs))], whose),
                            other, census))
    return mapped


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
    arrays = read_params(filename)
    check_finite(arrays, str(filename))
    try:
        mapped = map_gluoncv_params(net, arrays, exclude_output)
    except ValueError as err:
        raise ValueError('cannot load %s: %s' % (filename, err)) from None
    net.collect_params().load_dict(mapped, ctx=ctx, allow_missing=exclude_output)
