"""The fused CPU kernels' build and cache: the switches, the variant this CPU
runs, the compiler, the cached library with its record, and loading it.

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

Switches: ``D2LNETS_FUSED=0`` runs MXNet's layers, ``1`` the fused operator
wherever it applies, ``auto`` (the default) measures (:mod:`d2lnets.perf.choice`).
``D2LNETS_FUSED_VARIANT=avx2`` forces a variant (to measure the AVX2 build on
an AVX-512 machine).

Cache: ``$D2LNETS_CACHE`` or ``$XDG_CACHE_HOME/d2lnets`` (``~/.cache/d2lnets``),
one library per source, MXNet version, compiler and variant, with a
``.json`` beside it recording its size and sha256 (a damaged library is
rebuilt, not loaded) and the timing choices.

``python -m d2lnets.perf.kernels_build`` builds now (``make setup`` does).
The graph rewrite onto the operator is :mod:`d2lnets.perf.rewrite`, what
training and inference call is :mod:`d2lnets.perf.fused`.
"""
import functools
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import mxnet as mx

from ..io import atomic_write, read_json, cpu_flags

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


def _stages(variant: str, scratch: str = 'SCRATCH', out: str = 'OUT') -> List[List[List[str]]]:
    """The build of the ``variant`` library into ``out``, as stages of commands: the operator's source
    and MXNet's extension API source each compiled into ``scratch`` at once (7 s each on one core), then linked.
    One ``g++`` given both sources compiled them one after the other."""
    include, lib_api = _mxnet_sources()
    cxx = _compiler() or 'g++'
    # Each variant registers its operator under its own name, so several load into one process.
    flags = ['-std=c++17', '-O3', '-march=' + VARIANTS[variant][0], '-fopenmp', '-fPIC',
             '-DD2L_OP_NAME=' + op_name(variant), '-I', str(include)]
    objects = [os.path.join(scratch, 'operator.o'), os.path.join(scratch, 'lib_api.o')]
    return [[[cxx] + flags + ['-c', str(SOURCE), '-o', objects[0]],
             [cxx] + flags + ['-c', str(lib_api), '-o', objects[1]]],
            [[cxx, '-shared', '-fopenmp'] + objects + ['-o', out]]]


def _text(stages: List[List[List[str]]]) -> str:
    """The stages as one line: ``&`` between commands run at once, ``;`` between stages."""
    return ' ; '.join(' & '.join(' '.join(cmd) for cmd in stage) for stage in stages)


def _file_identity(path: str) -> Tuple[int, int, int]:
    """(inode, size, mtime) of the file ``path`` names, zeros if there is none: a compiler
    replaced in place (an upgrade) is another compiler."""
    try:
        info = os.stat(path)
    except OSError:
        return 0, 0, 0
    return info.st_ino, info.st_size, info.st_mtime_ns


@functools.lru_cache(maxsize=None)
def _compiler_version(cxx: str, identity: Tuple[int, int, int]) -> str:
    """What ``cxx --version`` prints ('' if it cannot run), asked once per process per compiler:
    ``cxx`` is the path CXX and PATH resolved to (:func:`_compiler`), ``identity`` its file's
    (:func:`_file_identity`). LC_ALL=C: a translated banner would name another cache file."""
    try:
        return subprocess.run([cxx, '--version'], capture_output=True, text=True, timeout=30,
                              env=dict(os.environ, LC_ALL='C')).stdout
    except (OSError, subprocess.SubprocessError):
        return ''


def library_path(variant: Optional[str] = None) -> Path:
    """Where the ``variant`` library (default: :func:`best_variant`) for this
    source, MXNet and compiler is cached."""
    variant = variant or best_variant() or 'avx2'
    cxx = _compiler()
    version = _compiler_version(cxx, _file_identity(cxx)) if cxx else ''
    cxx = cxx or 'none'
    key = hashlib.sha1()
    # The source by its bytes and its name, not where this checkout is: a clone or a moved folder
    # with the same source uses the same library (MXNet's own paths stay: they name its install).
    command = _text(_stages(variant)).replace(str(SOURCE), SOURCE.name)
    for part in (SOURCE.read_bytes(), mx.__version__.encode(), cxx.encode(), version.encode(), command.encode()):
        key.update(part)
        key.update(b'\0')
    return cache_dir() / ('libd2lnets_fused-%s-%s.so' % (variant, key.hexdigest()[:16]))


def _record_path(lib: Path) -> Path:
    return lib.with_suffix('.json')


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_record(lib: Path) -> Dict[str, Any]:
    # A missing or damaged record is an empty one: the library is then not intact, and rebuilt.
    try:
        record = read_json(_record_path(lib), 'the record of the fused kernels', 'rebuilding them',
                           max_bytes=MAX_RECORD)
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def intact_record(lib: Path) -> Dict[str, Any]:
    """The record of the cached library ``lib`` if the library has the size and
    sha256 recorded when it was built (a truncated library would crash the
    process at load), else an empty one."""
    record = read_record(lib)
    try:
        ok = lib.is_file() and record.get('size') == lib.stat().st_size and record.get('sha256') == _sha256(lib)
    except OSError:
        ok = False
    return record if ok else {}


def intact(lib: Path) -> bool:
    """Whether the cached library ``lib`` is as its record says (:func:`intact_record`)."""
    return bool(intact_record(lib))


def write_record(lib: Path, record: Dict[str, Any]) -> None:
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


def _compile(variant: str, out: str, cache: Path, timeout: float = 600) -> Tuple[int, str, str]:
    """Run the build of the ``variant`` library into ``out`` (:func:`_stages`); return its status,
    the output of the command that failed (or of the last), and that command.

    Its compilers run in one process group of their own, with their temporaries and object files
    in a folder of their own inside ``cache``: Ctrl-C, SIGTERM, the timeout or a failed command
    end the whole group (every g++ and the cc1plus, as and ld they started) and remove that folder.
    """
    import tempfile
    previous = None
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL and _main_thread():
        def terminated(signum, frame):
            raise _Terminated
        previous = signal.signal(signal.SIGTERM, terminated)
    deadline = time.monotonic() + timeout
    try:
        with tempfile.TemporaryDirectory(prefix='.build-', dir=cache) as scratch:
            env = dict(os.environ, TMPDIR=scratch)
            for stage in _stages(variant, scratch, out):
                group: Optional[int] = None
                procs = []
                try:
                    for n, cmd in enumerate(stage):
                        log = open(os.path.join(scratch, 'output-%d.txt' % n), 'w+')
                        # The first starts a group of its own (out of the terminal's, which Ctrl-C
                        # reaches); the others join it, so one killpg ends them all.
                        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                                       process_group=0 if group is None else group),
                                      log, cmd))
                        group = procs[0][0].pid
                    failed = _wait_all(procs, deadline)
                except BaseException:
                    if group is not None:
                        try:
                            os.killpg(group, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    for proc, _, _ in procs:
                        proc.wait()
                    raise
                finally:
                    for _, log, _ in procs:
                        log.close()
                if failed is not None:
                    try:
                        os.killpg(group, signal.SIGKILL)    # the other compiler: its result is not needed
                    except ProcessLookupError:
                        pass
                    for proc, _, _ in procs:
                        proc.wait()
                proc, log, cmd = failed if failed is not None else procs[-1]
                with open(log.name) as f:
                    output = f.read()
                if failed is not None:
                    return proc.returncode, output, ' '.join(cmd)
            return 0, output, ' '.join(cmd)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _wait_all(procs, deadline: float):
    """Wait for every process of ``procs`` ((Popen, log, command) each); the first that failed, else
    None. ``subprocess.TimeoutExpired`` past ``deadline`` (``time.monotonic()``)."""
    pending = list(procs)
    while pending:
        for item in list(pending):
            code = item[0].poll()
            if code is not None:
                pending.remove(item)
                if code != 0:
                    return item
        if pending:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(' '.join(pending[0][2]), 0)
            time.sleep(0.02)
    return None


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
    _check_writable(out.parent)

    def compile_to(tmp: str) -> None:
        try:
            code, output, cmd = _compile(variant, tmp, out.parent)
        except subprocess.TimeoutExpired:
            raise BuildError('building the fused kernels took over 10 minutes: %s'
                             % _text(_stages(variant))) from None
        except OSError as err:
            raise BuildError('could not run %s: %s' % (cxx, err.strerror or err)) from None
        if code != 0:
            tail = '\n'.join(output.strip().splitlines()[-15:])
            raise BuildError('building the fused kernels failed:\n%s\n%s' % (cmd, tail))

    print("building d2lnets' fused CPU kernels (%s, once, ~10 s)..." % variant, file=sys.stderr, flush=True)
    # Another process building the same file at once replaces it with the same bytes.
    try:
        try:
            atomic_write(out, compile_to)
        except _Terminated:
            # The handler is SIG_DFL again (_compile restored it) and atomic_write has removed its
            # temporary on the way out: the signal now ends the process, as it would have.
            os.kill(os.getpid(), signal.SIGTERM)
            raise
        write_record(out, {'size': out.stat().st_size, 'sha256': _sha256(out), 'variant': variant,
                            'command': _text(_stages(variant, out=out.name)), 'choices': {}})
    except OSError as err:
        raise BuildError('cannot write the fused kernels to %s (%s); set D2LNETS_CACHE to a writable folder'
                         % (out.parent, err.strerror or err)) from None
    except ValueError as err:   # a record that is a link or a FIFO: io writes no such file
        raise BuildError(str(err)) from None
    return out


@dataclass(frozen=True)
class Kernels:
    """The fused kernels one network uses, asked for once (:func:`ready`):
    what :mod:`.fused` passes down to :mod:`.choice` and :mod:`.rewrite`."""
    op: str                  # the operator's name, op_name(variant)
    variant: str
    library: Path            # the cached library loaded
    record: Dict[str, Any]   # its record as read when loaded ({} if the library is not intact), with the choices


def ready() -> Optional[Kernels]:
    """Load the best variant (:func:`load`) and read its library's record, once.

    Returns None, after one warning that says why, when it cannot be used.
    """
    variant = _loaded_variant(None)
    if variant is None:
        return None
    lib = library_path(variant)
    return Kernels(op_name(variant), variant, lib, intact_record(lib))


def load(variant: Optional[str] = None) -> Optional[str]:
    """Build (once, cached) and load the ``variant`` library (default:
    :func:`best_variant`) into this process; returns its operator name.

    Returns None, after one warning that says why, when it cannot be used.
    """
    variant = _loaded_variant(variant)
    return op_name(variant) if variant else None


def _loaded_variant(variant: Optional[str]) -> Optional[str]:
    """:func:`load`'s work: the variant once loaded, or None after its one warning."""
    global _warned_no_variant
    if variant is None:
        variant = best_variant()
        if variant is None:
            if not _warned_no_variant:
                _warned_no_variant = True
                warnings.warn('d2lnets runs LeNet-style blocks through MXNet\'s layers: this CPU (%s) has no '
                              'AVX2 and FMA, which its fused kernels need' % instruction_set(), stacklevel=3)
            return None
    if variant not in _loaded:
        try:
            mx.library.load(str(build(variant)), verbose=False)
            _loaded[variant] = True
        except (BuildError, OSError, mx.base.MXNetError) as err:
            _loaded[variant] = False
            warnings.warn('d2lnets runs LeNet-style blocks without its fused CPU kernels, 2-3x slower: %s'
                          % str(err).strip(), stacklevel=3)
    return variant if _loaded[variant] else None


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
    record = intact_record(lib)
    info['cached'] = bool(record)
    info['choices'] = record.get('choices', {})
    return info



if __name__ == '__main__':  # python -m d2lnets.perf.kernels_build: build now (make setup does), say where or why not
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
