"""Fused CPU kernels for LeNet's convolution blocks, used while training.

LeNet's blocks, ``Conv2D(activation='sigmoid')`` then ``AvgPool2D(2, 2)``, have
1 and 6 input channels: too few for oneDNN's fast kernels, so MXNet 1.9.1 runs
those convolutions and their gradients through a generic GEMM path, and the
sigmoid and the pooling each take one more pass over memory. d2lnets ships one
C++ operator that does convolution, sigmoid and 2x2 average pooling in one
pass, forward and backward (``d2lnets/perf/csrc/conv_sigmoid_avgpool.cc``, with the
output channels as vector lanes). It is built with the system's C++ compiler
on first use and cached, then loaded with ``mx.library.load``.

:func:`for_training` gives what :func:`d2lnets.training.loop` steps through: a copy of
the network's graph in which every such chain is that operator, sharing the
network's parameters. The network itself, its printout, its exports and its
ONNX graph keep Gluon's own layers. The fused graph is used when every context
is a CPU, the network has such a chain, its parameters are float32 and written
(``grad_req='write'``), and the operator builds; otherwise training runs the
network as it is. ``D2LNETS_FUSED=0`` turns it off.

Cache: ``$D2LNETS_CACHE`` or ``$XDG_CACHE_HOME/d2lnets`` (``~/.cache/d2lnets``),
one library per source, MXNet version, compiler and CPU.
"""
import hashlib
import json
import os
import platform
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import mxnet as mx
import numpy as np

from ..io import atomic_write

OP_NAME = 'd2l_conv_sigmoid_avgpool'
SOURCE = Path(__file__).resolve().parent / 'csrc' / 'conv_sigmoid_avgpool.cc'
KERNELS = (3, 5)  # the kernel sizes the operator is compiled for

_loaded: Optional[bool] = None  # per process: None until load() is first called


class BuildError(RuntimeError):
    """The fused operator could not be built or loaded."""


def enabled() -> bool:
    """False when the user turned the fused kernels off (``D2LNETS_FUSED=0``)."""
    return os.environ.get('D2LNETS_FUSED', '1').strip().lower() not in ('0', 'false', 'no', 'off')


def cache_dir() -> Path:
    if os.environ.get('D2LNETS_CACHE'):
        return Path(os.environ['D2LNETS_CACHE'])
    return Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'd2lnets'


def _mxnet_sources() -> Tuple[Path, Path]:
    root = Path(mx.__file__).resolve().parent
    return root / 'include', root / 'src' / 'lib_api.cc'


def _cpu_signature() -> str:
    # -march=native: the library fits the CPU it was built on, so the CPU is part of the key
    try:
        with open('/proc/cpuinfo') as f:
            lines = [l for l in f if l.startswith(('model name', 'flags'))][:2]
    except OSError:
        lines = []
    return platform.machine() + ''.join(lines)


def _compiler() -> Optional[str]:
    return shutil.which(os.environ.get('CXX', 'g++'))


def library_path() -> Path:
    """Where the library for this source, MXNet, compiler and CPU is cached."""
    cxx = _compiler() or 'none'
    try:
        version = subprocess.run([cxx, '--version'], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        version = ''
    key = hashlib.sha1()
    for part in (SOURCE.read_bytes(), mx.__version__.encode(), cxx.encode(), version.encode(),
                 _cpu_signature().encode()):
        key.update(part)
        key.update(b'\0')
    return cache_dir() / ('libd2lnets_fused-%s.so' % key.hexdigest()[:16])


def build(force: bool = False) -> Path:
    """Compile the operator library (if not cached yet) and return its path.

    Raises
    ------
    BuildError
        No C++ compiler, MXNet without its extension headers, or a failed
        compilation (the compiler's last lines are in the message).
    """
    include, lib_api = _mxnet_sources()
    if not include.joinpath('mxnet', 'lib_api.h').is_file() or not lib_api.is_file():
        raise BuildError('this MXNet has no extension headers (%s); the fused kernels need the pip wheel '
                         'mxnet==1.9.1' % include)
    cxx = _compiler()
    if cxx is None:
        raise BuildError('no C++ compiler found (looked for %s); install g++ (Debian/Ubuntu: apt install g++) '
                         'or set CXX' % os.environ.get('CXX', 'g++'))
    out = library_path()
    if out.is_file() and not force:
        return out
    cmd = [cxx, '-std=c++17', '-O3', '-march=native', '-fopenmp', '-fPIC', '-shared',
           '-I', str(include), str(SOURCE), str(lib_api), '-o']

    def compile_to(tmp: str) -> None:
        try:
            done = subprocess.run(cmd + [tmp], capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            raise BuildError('building the fused kernels took over 10 minutes: %s' % ' '.join(cmd)) from None
        except OSError as err:
            raise BuildError('could not run %s: %s' % (cxx, err.strerror or err)) from None
        if done.returncode != 0:
            tail = '\n'.join((done.stderr or done.stdout).strip().splitlines()[-15:])
            raise BuildError('building the fused kernels failed:\n%s\n%s' % (' '.join(cmd), tail))

    # Another process building the same file at once replaces it with the same bytes.
    try:
        return atomic_write(out, compile_to)
    except OSError as err:
        raise BuildError('cannot write the fused kernels to %s (%s); set D2LNETS_CACHE to a writable folder'
                         % (out.parent, err.strerror or err)) from None


def load() -> bool:
    """Build (once, cached) and load the operator into this process.

    Returns False, after one warning that says why, when it cannot be used.
    """
    global _loaded
    if _loaded is None:
        try:
            mx.library.load(str(build()), verbose=False)
            _loaded = True
        except (BuildError, OSError, mx.base.MXNetError) as err:
            _loaded = False
            warnings.warn('d2lnets trains LeNet-style blocks without its fused CPU kernels, 2-3x slower: %s'
                          % str(err).strip(), stacklevel=2)
    return _loaded


def _tuple(text: Optional[str], default: Tuple[int, ...]) -> Tuple[int, ...]:
    if text in (None, 'None', '()'):
        return default
    return tuple(int(v) for v in text.strip('()[] ').split(',') if v.strip())


def _fusable_conv(attrs: Dict[str, str]) -> Optional[Dict[str, str]]:
    """The fused operator's attributes for a Convolution it can replace, else None."""
    kernel = _tuple(attrs.get('kernel'), ())
    pad = _tuple(attrs.get('pad'), (0, 0))
    if (len(kernel) != 2 or kernel[0] != kernel[1] or kernel[0] not in KERNELS or len(pad) != 2
            or pad[0] != pad[1] or _tuple(attrs.get('stride'), (1, 1)) != (1, 1)
            or _tuple(attrs.get('dilate'), (1, 1)) != (1, 1) or attrs.get('num_group', '1') != '1'
            or attrs.get('no_bias', 'False') != 'False' or attrs.get('layout', 'NCHW') not in ('NCHW', 'None')):
        return None
    return {'kernel': str(kernel[0]), 'pad': str(pad[0]), 'num_filter': attrs['num_filter']}


def _is_avgpool_2x2(attrs: Dict[str, str]) -> bool:
    return (attrs.get('pool_type') == 'avg' and _tuple(attrs.get('kernel'), ()) == (2, 2)
            and _tuple(attrs.get('stride'), (1, 1)) == (2, 2) and _tuple(attrs.get('pad'), (0, 0)) == (0, 0)
            and attrs.get('global_pool', 'False') == 'False'
            and attrs.get('pooling_convention', 'valid') == 'valid'
            and attrs.get('layout', 'NCHW') in ('NCHW', 'None'))


def fuse_graph(graph: Dict[str, Any], fusable_params: Optional[set] = None, inputs: Tuple[str, ...] = ('data',)
               ) -> int:
    """Rewrite a symbol's JSON graph in place: each Convolution -> sigmoid ->
    2x2/2 average Pooling chain whose inner results nothing else reads becomes
    one ``d2l_conv_sigmoid_avgpool`` node. ``fusable_params``: the parameter
    names the operator may compute gradients for (None: all); ``inputs``: the
    graph's inputs, which need no gradient. Returns the number of chains fused."""
    nodes = graph['nodes']
    readers: Dict[int, int] = {}
    for node in nodes:
        for src, _, _ in node['inputs']:
            readers[src] = readers.get(src, 0) + 1
    for src, _, _ in graph['heads']:
        readers[src] = readers.get(src, 0) + 2  # a graph output is never fused away
    replace: Dict[int, Dict[str, Any]] = {}
    drop = set()
    for i, node in enumerate(nodes):
        if node['op'] != 'Pooling' or not _is_avgpool_2x2(node.get('attrs', {})):
            continue
        act = node['inputs'][0][0]
        if nodes[act]['op'] != 'Activation' or nodes[act].get('attrs', {}).get('act_type') != 'sigmoid' \
                or readers.get(act) != 1 or node['inputs'][0][1] != 0:
            continue
        conv = nodes[act]['inputs'][0][0]
        if nodes[conv]['op'] != 'Convolution' or readers.get(conv) != 1:
            continue
        attrs = _fusable_conv(nodes[conv].get('attrs', {}))
        data, weight, bias = (e[0] for e in nodes[conv]['inputs'])
        names = {nodes[weight]['name'], nodes[bias]['name']}
        if attrs is None or (fusable_params is not None and not names <= fusable_params):
            continue
        # The network's input needs no gradient: skip computing one.
        is_input = nodes[data]['op'] == 'null' and nodes[data]['name'] in inputs
        attrs['need_data_grad'] = '0' if is_input else '1'
        replace[i] = {'op': OP_NAME, 'name': nodes[conv]['name'], 'attrs': attrs,
                      'inputs': nodes[conv]['inputs']}
        drop.update((act, conv))
    if not replace:
        return 0
    new_index: Dict[int, int] = {}
    kept: List[Dict[str, Any]] = []
    for i, node in enumerate(nodes):
        if i in drop:
            continue
        new_index[i] = len(kept)
        kept.append(replace.get(i, node))
    for node in kept:
        node['inputs'] = [[new_index[s], o, v] for s, o, v in node['inputs']]
    graph['nodes'] = kept
    graph['heads'] = [[new_index[s], o, v] for s, o, v in graph['heads']]
    graph['arg_nodes'] = [i for i, node in enumerate(kept) if node['op'] == 'null']
    graph.pop('node_row_ptr', None)  # recomputed by MXNet
    return len(replace)


def fused_block(net: mx.gluon.HybridBlock) -> Optional[mx.gluon.SymbolBlock]:
    """A block computing ``net`` with its conv-sigmoid-pool chains fused,
    sharing ``net``'s parameters, or None when nothing can be fused or the
    operator cannot be loaded (see :func:`load`). The parameters must be
    initialized, their shapes known."""
    params = net.collect_params()
    writable = {name for name, p in params.items() if p.grad_req == 'write' and np.dtype(p.dtype) == np.float32}
    graph = json.loads(net(mx.sym.var('data')).tojson())
    if fuse_graph(graph, writable) == 0 or not load():
        return None
    sym = mx.sym.load_json(json.dumps(graph))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # SymbolBlock warns about unused inputs in some versions
        return mx.gluon.SymbolBlock(sym, mx.sym.var('data'), params=params)


class TrainingNet:
    """What the training loop calls: ``net``, or, on CPUs, its fused copy
    (built at the first batch, once deferred shapes are known)."""

    def __init__(self, net: mx.gluon.Block, ctxs: List[mx.Context]):
        self.net = net
        self._fast: Optional[mx.gluon.Block] = None
        self._decided = not (enabled() and isinstance(net, mx.gluon.HybridBlock)
                             and all(c.device_type == 'cpu' for c in ctxs))

    @property
    def fused(self) -> bool:
        """Whether the fused graph is in use (decided at the first call)."""
        return self._fast is not None

    def __call__(self, x: mx.nd.NDArray) -> mx.nd.NDArray:
        if not self._decided:
            self._decided = True
            if any(p._deferred_init for p in self.net.collect_params().values()):
                # Finishes deferred initialization. In training mode: a predict-mode
                # forward lets oneDNN keep the weights in its own layout, which
                # kvstores cannot read.
                with mx.autograd.pause(train_mode=True):
                    self.net(x[:1])
            self._fast = fused_block(self.net)
            if self._fast is not None:
                self._fast.hybridize(static_alloc=True, static_shape=True)
        return (self._fast or self.net)(x)


def for_training(net: mx.gluon.Block, ctxs: List[mx.Context]) -> TrainingNet:
    """``net`` for a training loop on ``ctxs``: see the module's docstring."""
    return TrainingNet(net, ctxs)


if __name__ == '__main__':  # python -m d2lnets.fused: build now (make setup does), say where or why not
    import sys
    from ..runtime import start_engine_quietly
    start_engine_quietly()  # else MXNet logs its engine type when the process exits
    try:
        print('d2lnets fused CPU kernels: %s' % build())
    except BuildError as err:
        print('note: %s; LeNet will train without them, 2-3x slower (docs/performance.md)' % err, file=sys.stderr)
        sys.exit(1)
