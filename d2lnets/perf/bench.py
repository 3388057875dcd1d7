"""Throughput of the lecture's networks on this machine.

:func:`bench` times training steps (forward, backward, SGD update) or
inference on synthetic data of the lecture's input shape, after warm-up, and
reports the median of several runs; :func:`matmul_peak` measures this
machine's fp32 matrix-multiply rate, the yardstick for the achieved GFLOP/s.

The timed loop is the one a training loop must keep to stay this fast: no
synchronisation per batch (no ``asscalar()``, ``asnumpy()`` or metric
update that reads values back), one ``trainer.step`` per batch, and the
network hybridized with static memory (``static_alloc``, ``static_shape``).
Training steps go through :func:`d2lnets.perf.fused.for_training`, inference
through :func:`d2lnets.perf.fused.for_inference`, as :func:`d2lnets.training.loop.train`
and :func:`d2lnets.training.metrics.evaluate_accuracy` do (LeNet's blocks fused on
CPUs where faster); the result says which code ran each block.
"""
import os
import resource
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import mxnet as mx
from mxnet import autograd, gluon

from .. import limits
from ..io import cpu_model
from . import fused
from .kernels_build import instruction_set
from ..models import get_model
from ..models.summary import complexity, infer_block_shapes
from ..registry import entry
from .timing import time_steps

MODES = ('train', 'infer')



@dataclass
class BenchResult:
    """One network's measured throughput (all rates are medians over ``runs``)."""
    name: str
    mode: str
    batch_size: int
    input_shape: List[int]
    hybridized: bool
    images_per_sec: float
    runs: List[float]
    steps_per_run: int
    gflops_per_image: float       # FLOPs of one image's forward (x3 for a training step), in 1e9
    gflops_per_sec: float
    peak_gflops_per_sec: Optional[float]
    percent_of_peak: Optional[float]
    peak_rss_mb: float
    settings: Dict[str, str] = field(default_factory=dict)
    fused: bool = False           # ran through d2lnets' fused operator (d2lnets.perf.fused)
    cpu: str = ''                 # the CPU's model and instruction set, e.g. 'AMD EPYC ... (avx2)'
    kernels: str = ''             # which code ran each fusable block, e.g. 'conv0: avx2, conv1: avx2'

    def to_dict(self) -> Dict:
        return asdict(self)


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MiB (since the last reset)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_peak(n: int = 2048, seconds: float = 1.0, ctx: Optional[mx.Context] = None) -> float:
    """This machine's fp32 matrix-multiply rate in GFLOP/s: the best of
    several timed ``n x n`` products through MXNet (oneDNN's inner product,
    as ``Dense`` runs)."""
    ctx = ctx or mx.cpu()
    a = mx.nd.random.uniform(shape=(n, n), ctx=ctx)
    b = mx.nd.random.uniform(shape=(n, n), ctx=ctx)
    mx.nd.FullyConnected(a, b, no_bias=True, num_hidden=n).wait_to_read()
    best, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds or best == 0.0:
        t = time.perf_counter()
        for _ in range(4):
            c = mx.nd.FullyConnected(a, b, no_bias=True, num_hidden=n)
        c.wait_to_read()
        best = max(best, 4 * 2 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return best


def _settings() -> Dict[str, str]:
    keys = ('OMP_NUM_THREADS', 'OMP_WAIT_POLICY', 'GOMP_SPINCOUNT', 'MXNET_ENGINE_TYPE', 'MXNET_SUBGRAPH_BACKEND')
    return {k: os.environ[k] for k in keys if k in os.environ}


@dataclass(frozen=True)
class BenchConfig:
    """One measurement's settings, checked: the network ``name`` in ``mode``, the batch
    (``None``: the lecture's, filled in here), how the network runs (``hybridize``; ``static``
    memory; ``fuse``: through d2lnets' fused operator) and how long it is timed (``runs`` of
    ``seconds_per_run`` after ``warmup`` steps). :func:`bench` builds it from its keywords."""
    name: str
    mode: str = 'train'
    batch_size: Optional[int] = None
    hybridize: bool = True
    runs: int = 5
    seconds_per_run: float = 1.0
    warmup: int = 3
    static: bool = True
    fuse: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError('mode must be one of %s, got %r' % (', '.join(MODES), self.mode))
        recipe = entry(self.name).recipe   # the lecture's batch size (and, in _measure, learning rate)
        batch_size = recipe.batch_size if self.batch_size is None else self.batch_size
        for key, value in (('batch_size', batch_size), ('runs', self.runs), ('warmup', self.warmup)):
            object.__setattr__(self, key, limits.check(key, value))
        object.__setattr__(self, 'seconds_per_run', limits.check('seconds', self.seconds_per_run))


def bench(name: str, mode: str = 'train', batch_size: Optional[int] = None, hybridize: bool = True,
          runs: int = 5, seconds_per_run: float = 1.0, warmup: int = 3,
          peak: Optional[float] = None, ctx: Optional[mx.Context] = None,
          static: bool = True, fuse: bool = True) -> BenchResult:
    """Median images/sec of ``name`` in ``mode`` on synthetic data.

    Parameters
    ----------
    name : str
        A registered model (see :func:`d2lnets.list_models`).
    mode : {'train', 'infer'}
        Training steps (forward, backward, SGD update with the lecture's
        learning rate) or inference (forward in predict mode).
    batch_size : int, optional
        Default: the lecture's (256 for LeNet, 128 for the others).
    hybridize : bool
        Run the hybridized graph (the default) or imperatively.
    runs, seconds_per_run, warmup : int, float, int
        ``runs`` timed runs of as many steps as fill ``seconds_per_run``
        (at least one), after ``warmup`` untimed steps.
    peak : float, optional
        The machine's peak GFLOP/s (from :func:`matmul_peak`) to report
        the achieved rate against.
    static : bool
        Hybridize with ``static_alloc`` and ``static_shape`` (the default,
        and faster); ``False`` times a plain ``hybridize()``.
    fuse : bool
        Run a hybridized network through :mod:`d2lnets.perf.fused` where it
        applies, as :func:`d2lnets.training.loop.train` does (the default).
    """
    config = BenchConfig(name, mode, batch_size, hybridize, runs, seconds_per_run, warmup, static, fuse)
    return _measure(config, peak, ctx)


def _measure(config: BenchConfig, peak: Optional[float] = None, ctx: Optional[mx.Context] = None) -> BenchResult:
    """What :func:`bench` measures, from its settings as one value (``peak`` and ``ctx`` as there)."""
    ctx = ctx or mx.cpu()
    name, mode, batch_size, hybridize = config.name, config.mode, config.batch_size, config.hybridize
    shape = (batch_size,) + tuple(entry(name).input_shape[1:])
    _reset_peak_rss()
    net = get_model(name)
    infer_block_shapes(net, shape)    # a batch whose tensors MXNet cannot hold is refused before any is allocated
    flops = complexity(net, (1,) + shape[1:]).flops * (3 if mode == 'train' else 1)
    net.initialize(mx.init.Xavier(), ctx=ctx)
    if hybridize:
        net.hybridize(static_alloc=config.static, static_shape=config.static)
    step_net: object = net
    if hybridize and config.fuse:
        step_net = fused.for_training(net, [ctx]) if mode == 'train' else fused.for_inference(net, [ctx])
    steps = _steps(net, step_net, mode, shape, entry(name).recipe.lr, ctx)
    rate, rates, n = time_steps(steps, batch_size, config.runs, config.seconds_per_run, config.warmup)
    gflops = rate * flops / 1e9
    return BenchResult(name=name, mode=mode, batch_size=batch_size, input_shape=list(shape),
                       hybridized=hybridize, images_per_sec=rate, runs=rates, steps_per_run=n,
                       gflops_per_image=flops / 1e9, gflops_per_sec=gflops, peak_gflops_per_sec=peak,
                       percent_of_peak=100 * gflops / peak if peak else None,
                       peak_rss_mb=peak_rss_mb(), settings=_settings(), fused=getattr(step_net, 'fused', False),
                       cpu='%s (%s)' % (cpu_model(), instruction_set()),
                       kernels=step_net.describe() if isinstance(step_net, fused.FusedNet) else "MXNet's layers")


def _steps(net: mx.gluon.Block, step_net, mode: str, shape: Tuple[int, ...], lr: float,
           ctx: mx.Context) -> Callable[[int], None]:
    """``steps(n)``: ``n`` training steps (forward, backward, SGD update at
    ``lr``) or forward passes on one synthetic batch of ``shape``."""
    X = mx.nd.random.uniform(shape=shape, ctx=ctx)
    y = mx.nd.array([i % 10 for i in range(shape[0])], ctx=ctx)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': lr})

    def steps(n: int) -> None:
        # No synchronisation inside the loop: one wait after n steps.
        for _ in range(n):
            if mode == 'train':
                with autograd.record():
                    l = loss(step_net(X), y)
                l.backward()
                trainer.step(shape[0])
            else:
                step_net(X)
        mx.nd.waitall()
    return steps


def format_results(results: List[BenchResult]) -> str:
    """An aligned text table of ``results``."""
    header = ['network', 'mode', 'batch', 'images/s', 'GFLOP/s', '% of peak', 'peak RSS MiB']
    rows = [[r.name, r.mode + ('' if r.hybridized else ' (imperative)') + (' (fused)' if r.fused else ''),
             str(r.batch_size),
             '%.1f' % r.images_per_sec, '%.1f' % r.gflops_per_sec,
             '' if r.percent_of_peak is None else '%.0f%%' % r.percent_of_peak,
             '%.0f' % r.peak_rss_mb] for r in results]
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    lines = ['  '.join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in [header] + rows]
    if results and results[0].cpu:
        lines.append('CPU: %s' % results[0].cpu)
    lines += ['%s %s blocks: %s' % (r.name, r.mode, r.kernels) for r in results if r.kernels]
    return '\n'.join(lines)
