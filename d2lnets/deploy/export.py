"""Export a network to MXNet's symbol format and to ONNX, and check the result.

Two deploy formats leave d2lnets:

- ``symbol``: ``PREFIX-symbol.json`` and ``PREFIX-0000.params``, MXNet's own
  deploy format (``HybridBlock.export``), read back by ``SymbolBlock.imports``.
- ``onnx``: ``PREFIX.onnx`` via ``mx.onnx.export_model``, with a dynamic batch
  axis, checked by ``onnx.checker``; runs in onnxruntime without MXNet. With
  ``activations=True`` its outputs are the logits (named by the last block) and
  then the output of each other top-level block (named by it), picked from the traced
  graph's internals: what the browser page draws.

Files are written under temporary names beside the target and renamed at the
end, so a failed export leaves nothing behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import warnings
from typing import TYPE_CHECKING, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:   # MXNet is imported where it is used: this module loads without it
    import mxnet as mx

from ..io import check_replaceable, disk_full, remove_own, remove_stale_temporaries, replace_all, temporary_name
from .onnx_model import METADATA_KEY

FORMATS = ('symbol', 'onnx')
# `d2lnets export --verify` fails above this largest absolute difference.
TOLERANCE = 1e-4

# The graph's input and the batch axis' name in the ONNX file.
INPUT_NAME = 'data'
BATCH_AXIS = 'batch'


def output_files(prefix: str, fmt: str) -> List[str]:
    """The files ``export`` writes for ``prefix`` in format ``fmt``."""
    check_format(fmt)
    if fmt == 'symbol':
        return ['%s-symbol.json' % prefix, '%s-0000.params' % prefix]
    return ['%s.onnx' % prefix]


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError('unsupported export format %r; use one of: %s' % (fmt, ', '.join(FORMATS)))


def _check_input_shape(input_shape: Sequence[int]) -> Tuple[int, ...]:
    from ..models.summary import check_input_shape
    shape = check_input_shape(input_shape)
    if len(shape) != 4:
        raise ValueError('input shape must be (batch, channels, height, width), got %r' % (tuple(input_shape),))
    return shape


def _trace(net: mx.gluon.HybridBlock, input_shape: Tuple[int, ...]) -> None:
    """Hybridize ``net`` without a backend (fused operators do not export) and
    run it once, so that it holds the graph ``HybridBlock.export`` saves."""
    import mxnet as mx
    from ..models.params import is_initialized
    from ..models.summary import infer_block_shapes
    if not isinstance(net, mx.gluon.HybridBlock):
        raise ValueError('only a HybridBlock can be exported, got %s' % type(net).__name__)
    if not all(is_initialized(p) for p in net.collect_params().values()):
        raise ValueError('the network is not initialized: load its weights (or call initialize()) first')
    infer_block_shapes(net, input_shape)   # a clear error for a shape the network cannot take
    net.hybridize()
    net(mx.nd.zeros(input_shape, ctx=_context(net)))


def block_outputs(net: mx.gluon.HybridBlock, batch: np.ndarray) -> List[np.ndarray]:
    """The logits and each top-level block's output but the last, one block after the other
    on ``batch``: what an export with ``activations=True`` gives, computed by Gluon."""
    import mxnet as mx
    x = mx.nd.array(batch, ctx=_context(net))
    outputs = []
    for child in net._children.values():
        x = child(x)
        outputs.append(x.asnumpy())
    return [outputs[-1]] + outputs[:-1]


def _with_activations(net: mx.gluon.HybridBlock, symbol_file: str) -> List[str]:
    """Rewrite ``symbol_file`` so that its outputs are the logits and then the output of
    each other top-level block, found among the traced graph's internals by the name
    ``d2lnets.models.layers.layers`` gives it (``conv0_sigmoid_fwd``, listed with ``_output``);
    the ONNX names of its outputs: each block's name, the last block's (the logits) first."""
    import mxnet as mx
    from ..models.layers import layers
    symbol = mx.sym.load(symbol_file)
    internals = symbol.get_internals()
    *picked, last = layers(net)
    known = set(internals.list_outputs())
    missing = [layer.output for layer in picked if layer.output + '_output' not in known]
    if missing:
        raise ValueError('the traced graph has no output %s; cannot export activations' % ', '.join(missing))
    group = mx.sym.Group([symbol] + [internals[layer.output + '_output'] for layer in picked])
    group.save(symbol_file)
    return [last.name] + [layer.name for layer in picked]


def _order_outputs(graph, symbol_outputs: Sequence[str]) -> None:
    """Put ``graph``'s outputs in the symbol's order (the exporter lists them in the order
    it converts nodes); an ONNX output is named as the op, MXNet's as the op + ``_output``."""
    by_name = {value.name: value for value in graph.output}
    wanted = [name[:-len('_output')] if name.endswith('_output') else name for name in symbol_outputs]
    if sorted(wanted) != sorted(by_name):
        raise ValueError('the ONNX outputs %s are not the graph\'s %s' % (sorted(by_name), sorted(wanted)))
    ordered = [type(by_name[name])() for name in wanted]
    for copy, name in zip(ordered, wanted):
        copy.CopyFrom(by_name[name])
    del graph.output[:]
    graph.output.extend(ordered)


def _rename_outputs(graph, names: Sequence[str]) -> None:
    """Give ``graph``'s outputs ``names`` (in order), where each tensor is made and read."""
    renamed = {value.name: name for value, name in zip(graph.output, names) if value.name != name}
    for node in graph.node:
        for field in (node.input, node.output):
            for i, tensor in enumerate(field):
                if tensor in renamed:
                    field[i] = renamed[tensor]
    for value in graph.output:
        value.name = renamed.get(value.name, value.name)


def _context(net: mx.gluon.Block) -> mx.Context:
    """The (first) context ``net``'s weights are on."""
    return next(iter(net.collect_params().values())).list_ctx()[0]


def output_prefix(out: str, name: str) -> str:
    """``out`` as a prefix: a folder (an existing one, or text ending in ``/``)
    stands for ``FOLDER/NAME``, so no file is named only by its extension."""
    if out.endswith(os.sep) or os.path.isdir(out):
        return os.path.join(out, name)
    return out


@contextlib.contextmanager
def _staging(prefix: str) -> Iterator[str]:
    """A temporary directory beside ``prefix`` (same file system, so the final
    ``os.replace`` is atomic); removed afterwards, whatever happened, and by
    the next export into that folder if this process is killed (see d2lnets.io)."""
    directory = os.path.dirname(os.path.abspath(prefix))
    if not os.path.isdir(directory):
        raise FileNotFoundError('the output directory %s does not exist; create it first' % directory)
    remove_stale_temporaries(directory)
    tmp = temporary_name(prefix)
    os.mkdir(tmp)
    try:
        yield tmp
    except Exception as err:
        full = disk_full(directory, err, prefix)
        if full is not None:
            raise full from None   # MXNet and onnx report a full disk in their own ways
        raise
    finally:
        # Through io, as everything d2lnets deletes: a link put in its place (what the export wrote then
        # went where it points) is refused in one line, and nothing it points to is deleted.
        if os.path.lexists(tmp):
            remove_own(tmp, 'tree')


def _export_symbol_files(net: mx.gluon.HybridBlock, prefix: str) -> Tuple[str, str]:
    net.export(prefix, epoch=0)
    return '%s-symbol.json' % prefix, '%s-0000.params' % prefix


@contextlib.contextmanager
def _weights_as_raw_bytes() -> Iterator[None]:
    """While exporting, store each weight as raw bytes instead of as a list of floats.

    MXNet's exporter (its converter of the ``null`` operator, which yields
    the weights) builds every initializer from ``array.tolist()``: for VGG-11's
    129 M weights that is over a minute and gigabytes of Python floats. Same
    tensors, same file semantics (``raw_data`` is how ONNX stores tensors
    usually). MXNet 1.9.1 is the last release, so its registry will not change.
    """
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph
    from onnx import helper, numpy_helper
    originals = {v: ops['null'] for v, ops in MXNetGraph.registry_.items() if 'null' in ops}

    def convert(original):
        def convert_null(node, **kwargs):
            if kwargs['is_input']:
                return original(node, **kwargs)
            name, array = node['name'], kwargs['weights'][node['name']]
            tensor = numpy_helper.from_array(np.ascontiguousarray(array), name)
            kwargs['initializer'].append(tensor)
            return [helper.make_tensor_value_info(name, tensor.data_type, array.shape)], (array.dtype,)
        return convert_null

    try:
        for version, original in originals.items():
            MXNetGraph.registry_[version]['null'] = convert(original)
        yield
    finally:
        for version, original in originals.items():
            MXNetGraph.registry_[version]['null'] = original


def _export_onnx_file(symbol_file: str, params_file: str, input_shape: Tuple[int, ...],
                      path: str, metadata: Optional[Dict] = None,
                      output_names: Optional[Sequence[str]] = None) -> None:
    import mxnet as mx
    import onnx
    with _weights_as_raw_bytes():
        mx.onnx.export_model(symbol_file, params_file, [input_shape], [np.float32], path,
                             dynamic=True, dynamic_input_shapes=[(None,) + tuple(input_shape[1:])])
    model = onnx.load(path)
    graph = model.graph
    # MXNet's exporter lists every weight as a graph input too; onnxruntime then
    # treats them as overridable (a warning per weight, no constant folding).
    weights = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    symbol = mx.sym.load(symbol_file)
    _order_outputs(graph, symbol.list_outputs())
    # Name the dynamic batch axis, on the input and on every output; the
    # exporter leaves the outputs' other axes unknown: fill them in.
    _, out_shapes, _ = symbol.infer_shape(**{INPUT_NAME: input_shape})
    for value, shape in zip(graph.output, out_shapes):
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(dims[1:], shape[1:]):
            dim.dim_value = size
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField('dim_value')
            dims[0].dim_param = BATCH_AXIS
    if output_names:
        _rename_outputs(graph, output_names)
    if metadata:
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(metadata, sort_keys=True)
    onnx.checker.check_model(model)
    onnx.save(model, path)


class Exported(NamedTuple):
    """What :func:`export` wrote: the files, and the verified differences."""
    files: List[str]
    # batch size -> largest absolute difference to the Gluon network (empty unless verified)
    differences: Dict[int, float]


def export(net: mx.gluon.HybridBlock, prefix: str, input_shape: Sequence[int], fmt: str = 'symbol',
           metadata: Optional[Dict] = None, tolerance: Optional[float] = None,
           activations: bool = False) -> Exported:
    """Export an initialized network; optionally verify before writing.

    Parameters
    ----------
    net : HybridBlock
        Initialized (its weights are what is exported). It is hybridized and
        run once on zeros of ``input_shape``.
    prefix : str
        Output path without extension: ``PREFIX-symbol.json`` and
        ``PREFIX-0000.params`` for ``symbol``, ``PREFIX.onnx`` for ``onnx``.
        Its directory must exist.
    input_shape : (batch, channels, height, width)
        The input the graph is traced with. The ONNX file's batch axis is
        dynamic; channels and sizes are fixed.
    fmt : {'symbol', 'onnx'}
    metadata : dict, optional
        Stored as JSON in the ONNX file's ``metadata_props`` under ``'d2lnets'``
        (ignored for ``symbol``).
    tolerance : float, optional
        Verify before the files are put in place: run the exported model and
        ``net`` on random batches of the traced batch size and one more
        (:func:`verify`); ``ValueError`` above ``tolerance``, and nothing is written.
    activations : bool
        ONNX only: the file's outputs are the logits and then each other top-level
        block's output, each named by its block (:func:`_with_activations`);
        verified output by output against :func:`block_outputs`.

    Returns
    -------
    Exported
        The written files, in the order of :func:`output_files`, and the
        differences per batch size if verified.
    """
    check_format(fmt)
    if activations and fmt != 'onnx':
        raise ValueError('activations are exported to ONNX only; use --format onnx')
    shape = _check_input_shape(input_shape)
    _trace(net, shape)
    targets = output_files(prefix, fmt)
    for target in targets:
        if os.path.isdir(target) and not os.path.islink(target):
            raise ValueError('%s is a folder; give `prefix` a path for the file (e.g. %s)'
                             % (target, os.path.join(target, 'model')))
        check_replaceable(target)     # before the export's work: a link, a FIFO is refused at once
    differences = {}
    with _staging(prefix) as tmp:
        staged_prefix = os.path.join(tmp, 'model')
        staged = list(_export_symbol_files(net, staged_prefix))
        if fmt == 'onnx':
            onnx_file = staged_prefix + '.onnx'
            names = _with_activations(net, staged[0]) if activations else None
            _export_onnx_file(staged[0], staged[1], shape, onnx_file, metadata, names)
            staged = [onnx_file]
        if tolerance is not None:
            # Two batch sizes: the symbol and the ONNX batch axis are not fixed.
            for batch in (shape[0], shape[0] + 1):
                differences[batch] = verify(net, staged, (batch,) + shape[1:], activations=activations)
            worst = max(differences.values())
            if not worst <= tolerance:  # also catches NaN
                raise ValueError('the exported model differs from the network by up to %.3g (tolerance '
                                 '%.3g); nothing was written' % (worst, tolerance))
        replace_all(staged, targets)
    return Exported(targets, differences)


def random_batch(input_shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """A reproducible float32 batch in [0, 1), the range of the networks' images."""
    return np.random.RandomState(seed).uniform(size=tuple(input_shape)).astype(np.float32)


def run_exported(files: Sequence[str], batch: np.ndarray, ctx: Optional[mx.Context] = None) -> np.ndarray:
    """Run exported ``files`` (as :func:`export` returns them) on ``batch``:
    ``SymbolBlock.imports`` for the symbol format, onnxruntime for ONNX."""
    import mxnet as mx
    if len(files) == 1 and files[0].endswith('.onnx'):
        from .onnx_model import OnnxModel
        return OnnxModel(files[0]).run(batch)
    if len(files) != 2:
        raise ValueError('expected PREFIX-symbol.json and PREFIX-0000.params, or PREFIX.onnx; got %s'
                         % ', '.join(files))
    ctx = ctx or mx.cpu()
    with warnings.catch_warnings():
        # SymbolBlock.imports warns that it cannot infer the input's type: it is float32.
        warnings.simplefilter('ignore', UserWarning)
        block = mx.gluon.SymbolBlock.imports(files[0], [INPUT_NAME], files[1], ctx=ctx)
    return block(mx.nd.array(batch, ctx=ctx)).asnumpy()


def verify(net: mx.gluon.HybridBlock, files: Sequence[str], input_shape: Sequence[int],
           seed: int = 0, activations: bool = False) -> float:
    """Largest absolute difference between the exported model and ``net`` on
    the same random batch of ``input_shape`` (any batch size: the exported
    batch axis is dynamic); with ``activations``, over every output of the
    ONNX file against :func:`block_outputs`."""
    import mxnet as mx
    batch = random_batch(_check_input_shape(input_shape), seed)
    ctx = _context(net)
    if activations:
        from .onnx_model import OnnxModel
        expected, got = block_outputs(net, batch), OnnxModel(files[0]).run_all(batch)
    else:
        expected, got = [net(mx.nd.array(batch, ctx=ctx)).asnumpy()], [run_exported(files, batch, ctx)]
    shapes = [a.shape for a in got], [a.shape for a in expected]
    if shapes[0] != shapes[1]:
        raise ValueError('the exported model gives outputs of shapes %s, the network %s' % shapes)
    return max(float(np.abs(a - b).max()) for a, b in zip(got, expected))
