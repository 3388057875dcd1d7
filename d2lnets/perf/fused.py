"""Fused CPU kernels for LeNet's convolution blocks, for training and inference.

LeNet's blocks, ``Conv2D(activation='sigmoid')`` then ``AvgPool2D(2, 2)``, have
1 and 6 input channels: too few for oneDNN's fast kernels, so MXNet 1.9.1 runs
those convolutions and their gradients through a generic GEMM path, and the
sigmoid and the pooling each take one more pass over memory. d2lnets ships one
C++ operator that does convolution, sigmoid and 2x2 average pooling in one
pass, forward and backward (``d2lnets/perf/csrc/conv_sigmoid_avgpool.cc``, with the
output channels as vector lanes). It is built with the system's C++ compiler
on first use and cached, then loaded with ``mx.library.load``.

Variants: one library per x86-64 instruction set (:data:`VARIANTS`),
``avx512`` (``-march=x86-64-v4``) and ``avx2`` (``-march=x86-64-v3``, AVX2 and
FMA), each registering its own operator name (``d2l_conv_sigmoid_avgpool_avx2``),
so that several can be loaded into one process (the tests run every variant
the CPU can execute). The best one the CPU runs is used; a CPU with neither
(or not x86-64) runs MXNet's layers, after one warning.

:func:`for_training` and :func:`for_inference` give what the training loop,
:func:`d2lnets.training.metrics.evaluate_accuracy` and
:func:`d2lnets.deploy.predict.predict_network`
call: a copy of the network's graph in which each such chain is that operator,
sharing the network's parameters. The network itself, its printout, its
exports and its ONNX graph keep Gluon's own layers. Per chain, at the first
batch, the fused operator and MXNet's layers are timed on the real shapes
(a few forward, and for training backward, passes) and the faster one is kept,
as ``cudnn.benchmark`` chooses algorithms; the choice is cached beside the
library. ``D2LNETS_FUSED=0`` runs MXNet's layers, ``1`` the fused operator
wherever it applies, ``auto`` (the default) measures. The fused graph needs
CPU contexts and float32 parameters; for training also ``grad_req='write'``.
``D2LNETS_FUSED_VARIANT=avx2`` forces a variant (to measure the AVX2 build on
an AVX-512 machine).

Cache: ``$D2LNETS_CACHE`` or ``$XDG_CACHE_HOME/d2lnets`` (``~/.cache/d2lnets``),
one library per source, MXNet version, compiler and variant, with a
``.json`` beside it recording its size and sha256 (a damaged library is
rebuilt, not loaded) and the timing choices.
"""
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import mxnet as mx
import numpy as np

from ..io import atomic_write, read_json, cpu_flags, cpu_model  # noqa: F401  (cpu_*: what the variant is chosen from)

OP_NAME = 'd2l_conv_sigmoid_avgpool'  # each variant's operator: OP_NAME + '_' + variant
SOURCE = Path(__file__).resolve().parent / 'csrc' / 'conv_sigmoid_avgpool.cc'
KERNELS = (3, 5)  # the kernel sizes the operator is compiled for
MODES = ('0', '1', 'auto')
MAX_RECORD = 1 << 20  # bytes of a library's record: its size, sha256 and a few hundred timing choices

# variant -> (-march level, the /proc/cpuinfo flags that level needs); best first.
_V3 = ('avx', 'avx2', 'fma', 'bmi1', 'bmi2', 'f16c', 'movbe', 'abm', 'xsave')
VARIANTS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    'avx512': ('x86-64-v4', _V3 + ('avx512f', 'avx512bw', 'avx512cd', 'avx512dq', 'avx512vl')),
    'avx2': ('x86-64-v3', _V3),
}

_loaded: Dict[str, bool] = {}      # per process: variant -> loaded (False: failed, warned)
_warned_no_variant = False


class BuildError(RuntimeError):
    """The fused operator could not be built or loaded."""


def mode() -> str:
    """``D2LNETS_FUSED``: '0' (MXNet's layers), '1' (fused wherever it applies)
    or 'auto' (the default: measured per chain).

    Raises
    ------
    ValueError
        Any other value.
    """
    text = os.environ.get('D2LNETS_FUSED', 'auto').strip().lower() or 'auto'
    text = {'false': '0', 'no': '0', 'off': '0', 'true': '1', 'yes': '1', 'on': '1'}.get(text, text)
    if text not in MODES:
        raise ValueError('D2LNETS_FUSED must be 0, 1 or auto, got %r' % os.environ['D2LNETS_FUSED'])
    return text


def enabled() -> bool:
    """False when the user turned the fused kernels off (``D2LNETS_FUSED=0``)."""
    return mode() != '0'


def op_name(variant: str) -> str:
    """The operator name the ``variant`` library registers."""
    return '%s_%s' % (OP_NAME, variant)


def cache_dir() -> Path:
    if os.environ.get('D2LNETS_CACHE'):
        return Path(os.environ['D2LNETS_CACHE'])
    return Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'd2lnets'


def _mxnet_sources() -> Tuple[Path, Path]:
    root = Path(mx.__file__).resolve().parent
    return root / 'include', root / 'src' / 'lib_api.cc'


def runnable_variants() -> List[str]:
    """The variants this CPU can execute, best first (none off x86-64)."""
    if platform.machine().lower() not in ('x86_64', 'amd64'):
        return []
    flags = cpu_flags()
    return [v for v, (_, needs) in VARIANTS.items() if set(needs) <= flags]


def instruction_set() -> str:
    """A short name of the CPU's vector instruction set: 'avx512', 'avx2',
    or what it is short of."""
    runnable = runnable_variants()
    if runnable:
        return runnable[0]
    if platform.machine().lower() not in ('x86_64', 'amd64'):
        return 'not x86-64 (%s)' % platform.machine()
    return 'x86-64 without AVX2 and FMA'


def best_variant() -> Optional[str]:
    """The variant to use: ``D2LNETS_FUSED_VARIANT`` if set, else the best
    one this CPU runs, None if it runs none.

    Raises
    ------
    ValueError
        ``D2LNETS_FUSED_VARIANT`` names no variant, or one this CPU cannot run.
    """
    forced = os.environ.get('D2LNETS_FUSED_VARIANT', '').strip()
    runnable = runnable_variants()
    if forced:
        if forced not in VARIANTS:
            raise ValueError('D2LNETS_FUSED_VARIANT must be one of %s, got %r' % (', '.join(VARIANTS), forced))
        if forced not in runnable:
            raise ValueError('D2LNETS_FUSED_VARIANT=%s: this CPU cannot run it (it runs: %s)'
                             % (forced, ', '.join(runnable) or 'none'))
        return forced
    return runnable[0] if runnable else None


def _compiler() -> Optional[str]:
    return shutil.which(os.environ.get('CXX', 'g++'))


def _command(variant: str) -> List[str]:
    include, lib_api = _mxnet_sources()
    # Each variant registers its operator under its own name, so several load into one process.
    return ([_compiler() or 'g++', '-std=c++17', '-O3', '-march=' + VARIANTS[variant][0], '-fopenmp', '-fPIC',
             '-shared', '-DD2L_OP_NAME=' + op_name(variant)]
            + ['-I', str(include), str(SOURCE), str(lib_api), '-o'])


def library_path(variant: Optional[str] = None) -> Path:
    """Where the ``variant`` library (default: :func:`best_variant`) for this
    source, MXNet and compiler is cached."""
    variant = variant or best_variant() or 'avx2'
    cxx = _compiler() or 'none'
    try:
        version = subprocess.run([cxx, '--version'], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        version = ''
    key = hashlib.sha1()
    for part in (SOURCE.read_bytes(), mx.__version__.encode(), cxx.encode(), version.encode(),
                 ' '.join(_command(variant)).encode()):
        key.update(part)
        key.update(b'\0')
    return cache_dir() / ('libd2lnets_fused-%s-%s.so' % (variant, key.hexdigest()[:16]))


def _record_path(lib: Path) -> Path:
    return lib.with_suffix('.json')


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_record(lib: Path) -> Dict[str, Any]:
    # A missing or damaged record is an empty one: the library is then not intact, and rebuilt.
    try:
        record = read_json(_record_path(lib), 'the record of the fused kernels', 'rebuilding them',
                           max_bytes=MAX_RECORD)
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def intact(lib: Path) -> bool:
    """Whether the cached library ``lib`` has the size and sha256 recorded when
    it was built (a truncated library would crash the process at load)."""
    record = _read_record(lib)
    try:
        return (lib.is_file() and record.get('size') == lib.stat().st_size
                and record.get('sha256') == _sha256(lib))
    except OSError:
        return False


def _write_record(lib: Path, record: Dict[str, Any]) -> None:
    atomic_write(_record_path(lib), lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1, sort_keys=True)))


def _toolchain(variant: Optional[str]) -> Tuple[str, str]:
    """(the variant to build, the compiler): ``BuildError`` for what is missing."""
    if variant is None:
        variant = best_variant()
        if variant is None:
            raise BuildError('this CPU (%s) has no AVX2 and FMA, which the fused kernels need'
                             % instruction_set())
    if variant not in VARIANTS:
        raise ValueError('variant must be one of %s, got %r' % (', '.join(VARIANTS), variant))
    include, lib_api = _mxnet_sources()
    if not include.joinpath('mxnet', 'lib_api.h').is_file() or not lib_api.is_file():
        raise BuildError('this MXNet has no extension headers (%s); the fused kernels need the pip wheel '
                         'mxnet==1.9.1' % include)
    cxx = _compiler()
    if cxx is None:
        raise BuildError('no C++ compiler found (looked for %s); install g++ (Debian/Ubuntu: apt install g++) '
                         'or set CXX' % os.environ.get('CXX', 'g++'))
    return variant, cxx


def _check_writable(folder: Path) -> None:
    """Refuse a kernel cache that cannot be written, in one line, before any compiler runs."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK | os.X_OK)
    except OSError as err:
        raise BuildError('cannot write the fused kernels to %s (%s); set D2LNETS_CACHE to a writable folder'
                         % (folder, err.strerror or err)) from None
    if not writable:
        raise BuildError('cannot write the fused kernels to %s (not writable); set D2LNETS_CACHE to a writable '
                         'folder' % folder)


class _Terminated(BaseException):
    """SIGTERM during a build of a process that had no handler of its own."""


def _compile(cmd: List[str], cache: Path, timeout: float = 600) -> Tuple[int, str]:
    """Run the compiler ``cmd``; return its status and output.

    It runs in a process group of its own, with its temporaries in a folder
    of its own inside ``cache``: Ctrl-C, SIGTERM or the timeout end the whole
    group (g++ and the cc1plus, as and ld it started) and remove that folder.
    """
    import signal
    import tempfile
    previous = None
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL and _main_thread():
        def terminated(signum, frame):
            raise _Terminated
        previous = signal.signal(signal.SIGTERM, terminated)
    try:
        with tempfile.TemporaryDirectory(prefix='.build-', dir=cache) as scratch:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True, env=dict(os.environ, TMPDIR=scratch))
            try:
                output, _ = proc.communicate(timeout=timeout)
            except BaseException:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.communicate()
                raise
            return proc.returncode, output
    except _Terminated:
        signal.signal(signal.SIGTERM, previous)
        previous = None
        os.kill(os.getpid(), signal.SIGTERM)   # now ends the process, as it would have
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    """Whether this is the main thread, the only one that may set signal handlers."""
    import threading
    return threading.current_thread() is threading.main_thread()


def build(variant: Optional[str] = None, force: bool = False) -> Path:
    """Compile the ``variant`` library (default: :func:`best_variant`) if it is
    not cached yet, or is damaged, and return its path. Building prints one
    line on stderr (it takes about 10 s, once).

    Raises
    ------
    BuildError
        No C++ compiler, MXNet without its extension headers, a failed
        compilation (the compiler's last lines are in the message), or no
        variant for this CPU.
    """
    variant, cxx = _toolchain(variant)
    out = library_path(variant)
    if out.is_file() and not force:
        if intact(out):
            return out
        print("d2lnets: the cached fused kernels %s are damaged (size or sha256 differ from the build's "
              "record); rebuilding" % out, file=sys.stderr, flush=True)
    cmd = _command(variant)
    _check_writable(out.parent)

    def compile_to(tmp: str) -> None:
        try:
            code, output = _compile(cmd + [tmp], out.parent)
        except subprocess.TimeoutExpired:
            raise BuildError('building the fused kernels took over 10 minutes: %s' % ' '.join(cmd)) from None
        except OSError as err:
            raise BuildError('could not run %s: %s' % (cxx, err.strerror or err)) from None
        if code != 0:
            tail = '\n'.join(output.strip().splitlines()[-15:])
            raise BuildError('building the fused kernels failed:\n%s\n%s' % (' '.join(cmd), tail))

    print("building d2lnets' fused CPU kernels (%s, once, ~10 s)..." % variant, file=sys.stderr, flush=True)
    # Another process building the same file at once replaces it with the same bytes.
    try:
        atomic_write(out, compile_to)
        _write_record(out, {'size': out.stat().st_size, 'sha256': _sha256(out), 'variant': variant,
                            'command': ' '.join(cmd + [out.name]), 'choices': {}})
    except OSError as err:
        raise BuildError('cannot write the fused kernels to %s (%s); set D2LNETS_CACHE to a writable folder'
                         % (out.parent, err.strerror or err)) from None
    except ValueError as err:   # a record that is a link or a FIFO: io writes no such file
        raise BuildError(str(err)) from None
    return out


def load(variant: Optional[str] = None) -> Optional[str]:
    """Build (once, cached) and load the ``variant`` library (default:
    :func:`best_variant`) into this process; returns its operator name.

    Returns None, after one warning that says why, when it cannot be used.
    """
    global _warned_no_variant
    if variant is None:
        variant = best_variant()
        if variant is None:
            if not _warned_no_variant:
                _warned_no_variant = True
                warnings.warn('d2lnets runs LeNet-style blocks through MXNet\'s layers: this CPU (%s) has no '
                              'AVX2 and FMA, which its fused kernels need' % instruction_set(), stacklevel=2)
            return None
    if variant not in _loaded:
        try:
            mx.library.load(str(build(variant)), verbose=False)
            _loaded[variant] = True
        except (BuildError, OSError, mx.base.MXNetError) as err:
            _loaded[variant] = False
            warnings.warn('d2lnets runs LeNet-style blocks without its fused CPU kernels, 2-3x slower: %s'
                          % str(err).strip(), stacklevel=2)
    return op_name(variant) if _loaded[variant] else None


def status() -> Dict[str, Any]:
    """What :func:`load` would use, without building or loading anything:
    mode, instruction set, variant, library path and whether it is cached
    intact, or why there is none."""
    info: Dict[str, Any] = {'mode': None, 'instruction_set': instruction_set(), 'variant': None,
                            'library': None, 'cached': False, 'problem': None}
    try:
        info['mode'] = mode()
        info['variant'] = best_variant()
    except ValueError as err:
        info['problem'] = str(err)
        return info
    if info['variant'] is None:
        info['problem'] = 'this CPU has no AVX2 and FMA: MXNet\'s layers run'
        return info
    if _compiler() is None:
        info['problem'] = 'no C++ compiler (install g++ or set CXX): MXNet\'s layers run'
    include, lib_api = _mxnet_sources()
    if not include.joinpath('mxnet', 'lib_api.h').is_file():
        info['problem'] = 'this MXNet has no extension headers'
    lib = library_path(info['variant'])
    info['library'] = str(lib)
    info['cached'] = intact(lib)
    info['choices'] = _read_record(lib).get('choices', {}) if info['cached'] else {}
    return info


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


def _find_chains(graph: Dict[str, Any], fusable_params: Optional[set], inputs: Tuple[str, ...]
                 ) -> List[Tuple[int, int, int, Dict[str, str]]]:
    """(pooling, activation, convolution) node indices and the fused operator's
    attributes of each fusable chain."""
    nodes = graph['nodes']
    readers: Dict[int, int] = {}
    for node in nodes:
        for src, _, _ in node['inputs']:
            readers[src] = readers.get(src, 0) + 1
    for src, _, _ in graph['heads']:
        readers[src] = readers.get(src, 0) + 2  # a graph output is never fused away
    chains = []
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
        chains.append((i, act, conv, attrs))
    return chains


def fusable_chains(graph: Dict[str, Any], fusable_params: Optional[set] = None,
                   inputs: Tuple[str, ...] = ('data',)) -> List[Dict[str, Any]]:
    """The chains :func:`fuse_graph` would fuse: per chain, the convolution's
    name, the fused operator's attributes and the name of the chain's input
    as :meth:`mx.sym.Symbol.get_internals` lists it."""
    nodes = graph['nodes']
    out = []
    for _, _, conv, attrs in _find_chains(graph, fusable_params, inputs):
        src, index, _ = nodes[conv]['inputs'][0]
        data = nodes[src]['name'] if nodes[src]['op'] == 'null' else '%s_output%s' % (
            nodes[src]['name'], '' if index == 0 else index)
        out.append({'name': nodes[conv]['name'], 'attrs': dict(attrs), 'input': data})
    return out


def fuse_graph(graph: Dict[str, Any], fusable_params: Optional[set] = None, inputs: Tuple[str, ...] = ('data',),
               op: str = OP_NAME, only: Optional[set] = None, train: bool = True) -> int:
    """Rewrite a symbol's JSON graph in place: each Convolution -> sigmoid ->
    2x2/2 average Pooling chain whose inner results nothing else reads becomes
    one ``op`` node (a variant's operator, see :func:`op_name`).
    ``fusable_params``: the parameter names the operator may compute gradients
    for (None: all); ``inputs``: the graph's inputs, which need no gradient;
    ``only``: the convolution names of the chains to fuse (None: all);
    ``train``: False for a forward-only graph (the operator saves nothing for
    a backward). Returns the number of chains fused."""
    nodes = graph['nodes']
    replace: Dict[int, Dict[str, Any]] = {}
    drop = set()
    for i, act, conv, attrs in _find_chains(graph, fusable_params, inputs):
        if only is not None and nodes[conv]['name'] not in only:
            continue
        if not train:
            attrs = dict(attrs, need_data_grad='0', training='0')
        replace[i] = {'op': op, 'name': nodes[conv]['name'], 'attrs': attrs, 'inputs': nodes[conv]['inputs']}
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


def _chain_symbols(attrs: Dict[str, str], op: str, train: bool = True) -> Tuple[mx.sym.Symbol, mx.sym.Symbol]:
    """One chain as MXNet's layers and as the fused operator, on the same inputs."""
    x, w, b = mx.sym.var('data'), mx.sym.var('weight'), mx.sym.var('bias')
    k, p, co = int(attrs['kernel']), int(attrs['pad']), int(attrs['num_filter'])
    extra = {} if train else {'training': 0}
    z = mx.sym.Convolution(x, w, b, kernel=(k, k), pad=(p, p), num_filter=co)
    layers = mx.sym.Pooling(mx.sym.Activation(z, act_type='sigmoid'), kernel=(2, 2), stride=(2, 2),
                            pool_type='avg')
    return layers, getattr(mx.sym, op)(x, w, b, kernel=k, pad=p, num_filter=co, **extra)


def time_chain(attrs: Dict[str, str], shape: Tuple[int, ...], op: str, train: bool, ctx: mx.Context,
               repeats: int = 5) -> Tuple[float, float]:
    """Milliseconds of one chain on an input of ``shape`` through MXNet's
    layers and through ``op``: the fastest of ``repeats`` passes (forward, and
    backward when ``train``), the two alternating so that other load on the
    machine falls on both."""
    rng = np.random.RandomState(0)
    k, co = int(attrs['kernel']), int(attrs['num_filter'])
    need_dx = train and attrs.get('need_data_grad', '1') != '0'
    arrays = [mx.nd.array(rng.uniform(-0.5, 0.5, s), ctx=ctx) for s in (shape, (co, shape[1], k, k), (co,))]
    for i, a in enumerate(arrays):
        if train and (i > 0 or need_dx):
            a.attach_grad()
    blocks = []
    for sym in _chain_symbols(attrs, op, train):
        # As the training loop runs them: a hybridized block with static memory (no executor log line).
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            block = mx.gluon.SymbolBlock(sym, [mx.sym.var(n) for n in ('data', 'weight', 'bias')])
        block.hybridize(static_alloc=True, static_shape=True)
        blocks.append(block)
    best = [float('inf')] * 2
    for rep in range(repeats + 1):
        for j, block in enumerate(blocks):
            start = time.perf_counter()
            if train:
                with mx.autograd.record():
                    y = block(*arrays)
                y.backward()
            else:
                y = block(*arrays)
            mx.nd.waitall()
            if rep > 0:  # the first pass allocates and warms the caches
                best[j] = min(best[j], (time.perf_counter() - start) * 1e3)
    return best[0], best[1]


def _choice_key(chain: Dict[str, Any], shape: Tuple[int, ...], train: bool) -> str:
    a = chain['attrs']
    return '%s k%s p%s co%s x%s dx%s threads%s %s' % (
        'train' if train else 'infer', a['kernel'], a['pad'], a['num_filter'], 'x'.join(map(str, shape)),
        a['need_data_grad'] if train else '0', os.environ.get('OMP_NUM_THREADS', os.cpu_count()), cpu_model())


def choose(chains: List[Dict[str, Any]], shapes: Dict[str, Tuple[int, ...]], op: str, train: bool,
           ctx: mx.Context, library: Optional[Path] = None,
           timer: Optional[Callable[..., Tuple[float, float]]] = None) -> List[Dict[str, Any]]:
    """Per chain, whether the fused operator ``op`` is faster than MXNet's
    layers on its input shape (``shapes[chain['input']]``): measured with
    ``timer`` (default :func:`time_chain`), or read from the choices cached in
    ``library``'s record. Returns the chains with ``fused`` (bool),
    ``mxnet_ms`` and ``fused_ms``."""
    timer = timer or time_chain
    record = _read_record(library) if library is not None and intact(library) else {}
    cached = record.get('choices', {})
    decided, new = [], False
    for chain in chains:
        shape = tuple(shapes[chain['input']])
        key = _choice_key(chain, shape, train)
        if key not in cached:
            mxnet_ms, fused_ms = timer(chain['attrs'], shape, op, train, ctx)
            cached[key] = {'mxnet_ms': round(mxnet_ms, 3), 'fused_ms': round(fused_ms, 3),
                           'fused': fused_ms < mxnet_ms}
            new = True
        decided.append(dict(chain, **cached[key]))
    if new and record:
        try:
            _write_record(library, dict(record, choices=cached))
        except OSError:
            pass  # an unwritable cache measures again next time
    return decided


def _input_shapes(sym: mx.sym.Symbol, names: List[str], shape: Tuple[int, ...]) -> Dict[str, Tuple[int, ...]]:
    internals = sym.get_internals()
    outputs = internals.list_outputs()
    found = {}
    for name in names:
        if name == 'data':
            found[name] = tuple(shape)
            continue
        _, out, _ = internals[outputs.index(name)].infer_shape(data=shape)
        found[name] = tuple(out[0])
    return found


def fused_block(net: mx.gluon.HybridBlock, train: bool = True, shape: Optional[Tuple[int, ...]] = None,
                ctx: Optional[mx.Context] = None) -> Optional[mx.gluon.SymbolBlock]:
    """A block computing ``net`` with its conv-sigmoid-pool chains fused,
    sharing ``net``'s parameters, or None when nothing is fused: no chain, the
    operator cannot be loaded (see :func:`load`), ``D2LNETS_FUSED=0``, or (in
    ``auto`` mode, given the input ``shape``) MXNet's layers were faster for
    every chain. The parameters must be initialized, their shapes known. The
    chains and the choice per chain are in the block's ``fused_chains``."""
    chosen = mode()
    if chosen == '0':
        return None
    params = net.collect_params()
    fusable = {name for name, p in params.items()
               if np.dtype(p.dtype) == np.float32 and (p.grad_req == 'write' or not train)}
    sym = net(mx.sym.var('data'))
    graph = json.loads(sym.tojson())
    chains = fusable_chains(graph, fusable)
    if not chains:
        return None
    op = load()
    if op is None:
        return None
    if chosen == 'auto' and shape is not None:
        shapes = _input_shapes(sym, [c['input'] for c in chains], shape)
        chains = choose(chains, shapes, op, train, ctx or mx.cpu(), library_path())
    else:
        chains = [dict(c, fused=True) for c in chains]
    only = {c['name'] for c in chains if c['fused']}
    if not only or fuse_graph(graph, fusable, op=op, only=only, train=train) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # SymbolBlock warns about unused inputs in some versions
        block = mx.gluon.SymbolBlock(mx.sym.load_json(json.dumps(graph)), mx.sym.var('data'), params=params)
    block.fused_chains = chains
    return block


class FusedNet:
    """What a training loop (``train=True``) or an evaluation calls: ``net``,
    or, on CPUs, its fused copy (built at the first batch, once deferred shapes
    are known, and only where it is faster; see the module's docstring)."""

    def __init__(self, net: mx.gluon.Block, ctxs: List[mx.Context], train: bool = True):
        self.net = net
        self.train = train
        self.chains: List[Dict[str, Any]] = []  # per fusable chain: name, fused, mxnet_ms, fused_ms
        self.variant: Optional[str] = None
        self._ctx = ctxs[0] if ctxs else mx.cpu()
        self._fast: Optional[mx.gluon.Block] = None
        self._decided = not (enabled() and isinstance(net, mx.gluon.HybridBlock)
                             and all(c.device_type == 'cpu' for c in ctxs))
        # Seconds the first call spent deciding (the kernels' first build, about
        # 10 s, and the timed choice): once per process, kept out of timings.
        self.setup_seconds = 0.0

    @property
    def fused(self) -> bool:
        """Whether the fused graph is in use (decided at the first call)."""
        return self._fast is not None

    def describe(self) -> str:
        """Which code ran each chain, e.g. ``conv0: avx2, conv1: MXNet's layers``."""
        if not self._decided:
            return 'not decided yet'
        if not self.chains:
            return "MXNet's layers" + ('' if enabled() else ' (D2LNETS_FUSED=0)')
        return ', '.join('%s: %s' % (c['name'].replace('_fwd', ''), self.variant if c['fused'] else "MXNet's layers")
                         for c in self.chains)

    def __call__(self, x: mx.nd.NDArray) -> mx.nd.NDArray:
        if not self._decided:
            self._decided = True
            start = time.perf_counter()
            if any(p._deferred_init for p in self.net.collect_params().values()):
                # Finishes deferred initialization. In training mode: a predict-mode
                # forward lets oneDNN keep the weights in its own layout, which
                # kvstores cannot read.
                with mx.autograd.pause(train_mode=True):
                    self.net(x[:1])
            self._fast = fused_block(self.net, self.train, x.shape, self._ctx)
            if self._fast is not None:
                self.chains = self._fast.fused_chains
                self.variant = best_variant()
                self._fast.hybridize(static_alloc=True, static_shape=True)
            self.setup_seconds = time.perf_counter() - start
        return (self._fast or self.net)(x)


def for_training(net: mx.gluon.Block, ctxs: List[mx.Context]) -> FusedNet:
    """``net`` for a training loop on ``ctxs``: see the module's docstring."""
    return FusedNet(net, ctxs, train=True)


def for_inference(net: Any, ctxs: List[mx.Context]) -> Any:
    """``net`` for evaluation and prediction on ``ctxs`` (forward only, fused
    where faster); ``net`` itself if it is one already, or not a Gluon block."""
    if isinstance(net, FusedNet) and not net.train:
        return net
    if isinstance(net, FusedNet):
        net = net.net
    if not isinstance(net, mx.gluon.Block):
        return net
    return FusedNet(net, ctxs, train=False)


if __name__ == '__main__':  # python -m d2lnets.perf.fused: build now (make setup does), say where or why not
    from ..runtime import start_engine_quietly
    start_engine_quietly()  # else MXNet logs its engine type when the process exits
    try:
        # the best variant, then the others this CPU runs (the tests run each)
        best = build()
        print('d2lnets fused CPU kernels: %s' % best)
        for other in runnable_variants()[1:]:
            print('d2lnets fused CPU kernels (%s, for the tests): %s' % (other, build(other)))
    except (BuildError, ValueError) as err:
        print('note: %s; LeNet will train without them, 2-3x slower (docs/performance.md)' % err, file=sys.stderr)
        sys.exit(1)
