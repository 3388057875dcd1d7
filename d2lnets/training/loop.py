"""The lecture's training loop: Xavier initialization, SGD, softmax cross-entropy.

``train(net, train_iter, test_iter, num_epochs, lr)`` prints, as the lecture's
``train_ch5``::

    epoch 1, loss 2.3181, train acc 0.101, test acc 0.100, time 16.7 sec
    ...
    12345.6 examples/sec on cpu(0)

The loop never waits for the device per batch: loss and accuracy are summed on
the device and read every ``check_every`` batches (to stop on a non-finite
loss) and at the end of each epoch. With a :class:`Checkpoints` hook every epoch
ends in an atomic checkpoint, and every epoch reseeds MXNet's and NumPy's
generators from ``(seed, epoch)``, so a resumed run ends where an uninterrupted
one does.

``train`` turns its options into one :class:`~d2lnets.training.config.RunConfig`
(the numbers), :class:`Parts` (the objects) and hooks (what happens around
the epochs: printing, a progress bar, checkpoints, a callback), and calls
:func:`fit` with them; ``d2lnets.training.runs`` calls :func:`fit` directly.
"""
import contextlib
import math
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from .. import data
from ..context import as_context_list, describe, split_batch
from ..models.params import initialize_missing
from ..perf import fused
from ..types import Ctx, CtxOrText
from . import checkpoint
from .config import RunConfig
from .distributed import Job, is_distributed, join
from .metrics import evaluate_accuracy

__all__ = ['History', 'NonFiniteLoss', 'TrainingInterrupted', 'train', 'fit', 'Parts', 'Hook', 'Checkpoints',
           'PrintEpochs', 'ProgressBar', 'OnEpoch', 'default_hooks', 'train_step', 'make_trainer', 'epoch_seed',
           'evaluate_accuracy']


@dataclass
class History:
    """Per-epoch record of a training run (epoch numbers count from 1)."""
    epoch: List[int] = field(default_factory=list)
    loss: List[float] = field(default_factory=list)
    train_acc: List[float] = field(default_factory=list)
    test_acc: List[float] = field(default_factory=list)
    seconds: List[float] = field(default_factory=list)         # the whole epoch, evaluation included
    examples_per_sec: List[float] = field(default_factory=list)  # training steps only

    def __len__(self) -> int:
        return len(self.epoch)

    def append(self, **row: float) -> None:
        for f in fields(self):
            getattr(self, f.name).append(row[f.name])

    def to_dict(self) -> Dict[str, list]:
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Dict[str, list]) -> 'History':
        return cls(**{f.name: list(d[f.name]) for f in fields(cls)})

    def to_csv(self) -> str:
        names = [f.name for f in fields(self)]
        lines = [','.join(names)]
        for i in range(len(self)):
            lines.append(','.join(repr(getattr(self, n)[i]) for n in names))
        return '\n'.join(lines) + '\n'


class NonFiniteLoss(ValueError):
    """The training loss became NaN or infinite."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; ``epochs_done`` epochs are complete (and
    checkpointed, when training had a checkpoint folder)."""

    def __init__(self, epochs_done: int, checkpoint_dir: Optional[Path]):
        super().__init__(epochs_done, checkpoint_dir)
        self.epochs_done, self.checkpoint_dir = epochs_done, checkpoint_dir


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` (0: initialization) of a run seeded ``seed``."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] % (2 ** 31 - 1))


def _reseed(seed: int, epoch: int, train_iter: Any) -> None:
    s = epoch_seed(seed, epoch)
    mx.random.seed(s)
    np.random.seed(s)
    if hasattr(train_iter, 'set_epoch'):
        train_iter.set_epoch(epoch)


def make_trainer(net: mx.gluon.Block, lr: float, kvstore: Union[str, Any] = 'device') -> gluon.Trainer:
    """The lecture's optimizer: plain SGD at learning rate ``lr``."""
    return gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': lr}, kvstore=kvstore)


def train_step(net: mx.gluon.Block, trainer: gluon.Trainer, loss_fn: gluon.loss.Loss,
               X: mx.nd.NDArray, y: mx.nd.NDArray, ctxs: List[mx.Context], batch_size: Optional[int] = None
               ) -> Tuple[List[mx.nd.NDArray], List[mx.nd.NDArray]]:
    """One SGD step on a batch split over ``ctxs``; the gradients are summed by
    the trainer's kvstore and divided by ``batch_size`` (default: this batch's
    size). Returns, per context, the summed loss and the number of correct
    predictions, as NDArrays on that context (nothing is waited for)."""
    xs, ys = split_batch(X, y, ctxs)
    # A batch smaller than the device count leaves devices idle; the kvstore
    # still sums every device's gradient, so theirs must be fresh zeros: one
    # example at weight 0 (an exact zero gradient, as the trainer requires).
    idle = [(X[:1].as_in_context(c), y[:1].as_in_context(c)) for c in ctxs[len(xs):]]
    with autograd.record():
        outs = [net(x) for x in xs]
        losses = [loss_fn(o, t) for o, t in zip(outs, ys)]
        idle = [loss_fn(net(x), t) * 0 for x, t in idle]
    for l in losses + idle:
        l.backward()
    trainer.step(batch_size or X.shape[0])
    return ([l.sum() for l in losses],
            [(o.argmax(axis=1) == t.astype('float32')).sum() for o, t in zip(outs, ys)])


class Hook:
    """What happens around the epochs, besides training: printing, a progress bar,
    checkpoints, a callback. :func:`fit` calls each method of each hook in order;
    on the parameter server only worker 0's hooks run, unless ``every_worker``."""
    every_worker = False

    def start(self, seed: int) -> None:
        """Before the first epoch, with the run's seed (a resumed run's own)."""

    def batches(self, epoch: int, batches: Iterable) -> Iterable:
        """The batches of epoch ``epoch`` as the loop iterates them (a progress bar wraps them)."""
        return batches

    def epoch_end(self, history: History, net: mx.gluon.Block, trainer: Optional[gluon.Trainer]) -> None:
        """After each epoch, its row appended to ``history``; ``trainer`` is None
        on the parameter server, whose servers hold its state (plain SGD has none)."""

    def end(self, examples: int, train_seconds: float, ctxs: List[mx.Context]) -> None:
        """After the last epoch: the examples trained on and the seconds of their steps."""


class Checkpoints(Hook):
    """An atomic checkpoint in ``folder`` after every epoch; ``resume``: first
    continue from the checkpoint there (parameters, trainer state, history)
    if there is one. ``run_info`` is stored with it (what rebuilds the run)."""

    def __init__(self, folder: Union[str, Path], resume: bool = False, run_info: Optional[Dict[str, Any]] = None):
        self.folder, self.resume, self.run_info = Path(folder), resume, dict(run_info or {})

    def start(self, seed: int) -> None:
        self.run_info['seed'] = seed

    def epoch_end(self, history: History, net: mx.gluon.Block, trainer: gluon.Trainer) -> None:
        checkpoint.save_checkpoint(self.folder, len(history), net, trainer, history.to_dict(), self.run_info)


class PrintEpochs(Hook):
    """The lecture's line per epoch, and the examples/sec at the end (``verbose=True``)."""
    every_worker = True

    def epoch_end(self, history: History, net: mx.gluon.Block, trainer: gluon.Trainer) -> None:
        print('epoch %d, loss %.4f, train acc %.3f, test acc %.3f, time %.1f sec'
              % (history.epoch[-1], history.loss[-1], history.train_acc[-1], history.test_acc[-1],
                 history.seconds[-1]), flush=True)

    def end(self, examples: int, train_seconds: float, ctxs: List[mx.Context]) -> None:
        if examples:
            print('%.1f examples/sec on %s' % (examples / train_seconds, describe(ctxs)), flush=True)


class ProgressBar(Hook):
    """A progress bar over each epoch's batches, on stderr."""
    every_worker = True

    def batches(self, epoch: int, batches: Iterable) -> Iterable:
        return _progress(batches, epoch, True)


class OnEpoch(Hook):
    """``callback(history)`` after each epoch (and its checkpoint), as ``train(on_epoch=...)``."""

    def __init__(self, callback: Callable[[History], None]):
        self.callback = callback

    def epoch_end(self, history: History, net: mx.gluon.Block, trainer: gluon.Trainer) -> None:
        self.callback(history)


class Parts(NamedTuple):
    """What :func:`fit` trains, with and on: objects, where :class:`RunConfig` holds the numbers."""
    net: mx.gluon.Block                         # initialized parameters are kept, the rest get ``init``
    train_iter: Iterable
    test_iter: Iterable
    ctx: Ctx = None                             # default: gpu(0) if there is one, else cpu(0)
    trainer: Optional[gluon.Trainer] = None     # default: make_trainer (the lecture's SGD)
    kvstore: Any = None                         # a KVStore already created; default: config.kvstore's name
    loss: Optional[gluon.loss.Loss] = None      # default: softmax cross-entropy
    init: Optional[mx.init.Initializer] = None  # default: Xavier, as the lecture
    hybridize: bool = True                      # one graph; LeNet's blocks fused on CPUs (d2lnets.perf.fused)
    check_every: int = 20                       # read the loss every that many batches, to stop on NaN


def train(net: mx.gluon.Block, train_iter: Iterable, test_iter: Iterable, num_epochs: int, lr: float,
          ctx: CtxOrText = None, verbose: bool = True, *, seed: Optional[int] = None, kvstore: Union[str, Any] = 'device',
          init: Optional[mx.init.Initializer] = None, on_epoch: Optional[Callable[[History], None]] = None,
          hooks: Sequence[Hook] = ()) -> History:
    """Train ``net`` with the lecture's recipe and return its :class:`History`.

    One of the three public entry points that keep keyword options
    (docs/architecture.md): it turns them into a :class:`RunConfig`, the
    :class:`Parts` and the hooks at once and calls :func:`fit`.

    Parameters
    ----------
    net : Block
        Parameters already initialized (pretrained, resumed) are kept; the rest
        are initialized with ``init`` (default Xavier, as the lecture).
    train_iter, test_iter : iterables of (X, y) batches
        Such as :func:`d2lnets.data.load_fashion_mnist` returns.
    num_epochs : int
        Total number of epochs (counting those done before a resume).
    lr : float
        SGD learning rate.
    ctx : Context, list of Contexts or str, optional
        Where to train; several contexts split each batch (data parallelism).
        Default: ``gpu(0)`` if there is one, else ``cpu(0)``.
    verbose : bool
        Print the lecture's line per epoch and the examples/sec at the end,
        with a progress bar when stderr is a terminal.
    seed : int, optional
        Each epoch reseeds MXNet and NumPy from ``(seed, epoch)``. Default: a
        random seed (recorded in the checkpoint).
    kvstore : str or KVStore
        ``'device'`` (default) or ``'local'`` sum the gradients of several
        contexts; ``'dist_sync'`` or ``'dist_async'`` join MXNet's parameter
        server (start the job with ``d2lnets launch``): each worker trains on its
        shard of ``train_iter``, steps with the global batch, and only worker 0
        writes checkpoints and calls ``on_epoch``.
    init : Initializer, optional
        For the parameters not yet initialized; default Xavier.
    on_epoch : callable, optional
        Called with the history after each epoch (and its checkpoint).
    hooks : sequence of Hook
        Run before the printing and ``on_epoch``: ``Checkpoints(folder)`` writes
        an atomic checkpoint after every epoch, ``Checkpoints(folder, resume=True)``
        first continues from the one there (the trainer state holds the
        optimizer, so the learning rate is the checkpoint's); ``ProgressBar()``.
        Another loss, trainer or ``hybridize=False``: call :func:`fit` with :class:`Parts`.

    Raises
    ------
    NonFiniteLoss
        When the loss becomes NaN or infinite; the last checkpoint is kept.
    TrainingInterrupted
        On Ctrl-C; the last complete epoch's checkpoint is kept.
    """
    name = kvstore if isinstance(kvstore, str) else getattr(kvstore, 'type', 'device')
    config = RunConfig(epochs=num_epochs, lr=lr, seed=seed, kvstore=name)
    parts = Parts(net, train_iter, test_iter, ctx, kvstore=None if isinstance(kvstore, str) else kvstore, init=init)
    return fit(config, parts, tuple(hooks) + default_hooks(verbose, None, on_epoch))


def default_hooks(verbose: bool, progress: Optional[bool] = None,
                  on_epoch: Optional[Callable[[History], None]] = None) -> Tuple[Hook, ...]:
    """The hooks of ``train(verbose=..., on_epoch=...)``: a progress bar (``progress``
    None: when verbose and stderr is a terminal), the printed lines, the callback."""
    progress = (verbose and sys.stderr.isatty()) if progress is None else progress
    return (((ProgressBar(),) if progress else ()) + ((PrintEpochs(),) if verbose else ())
            + ((OnEpoch(on_epoch),) if on_epoch is not None else ()))


def fit(config: RunConfig, parts: Parts, hooks: Sequence[Hook] = ()) -> History:
    """Train ``parts.net`` for ``config.epochs`` epochs at ``config.lr`` (seeded
    ``config.seed``), calling ``hooks`` in order; see :func:`train`."""
    ctxs = as_context_list(parts.ctx)
    job = join(parts.kvstore if parts.kvstore is not None else config.kvstore, config.seed)
    # On the parameter server, only worker 0 writes checkpoints and reports epochs.
    hooks = [h for h in hooks if job.rank == 0 or h.every_worker]
    saver = next((h for h in hooks if isinstance(h, Checkpoints)), None)
    ckpt = saver.folder if saver is not None else None
    state = _restore(parts.net, ckpt, saver is not None and saver.resume, job, ctxs)
    history = History.from_dict(state['history']) if state else History()
    seed = state['run'].get('seed', job.seed) if state else job.seed
    _shard(parts.train_iter, job)
    check_labels(parts.net, parts.train_iter, parts.test_iter)
    for hook in hooks:
        hook.start(seed)
    step_net = _prepare_step_net(parts.net, parts.train_iter, seed, parts.init, ctxs, parts.hybridize)
    test_net = fused.for_inference(parts.net, ctxs)  # the test pass: forward only, fused where faster
    trainer = parts.trainer or make_trainer(parts.net, config.lr, job.kvstore)
    if state and state['trainer'] is not None and not is_distributed(job.kvstore):
        checkpoint.restore_trainer(trainer, state['trainer'])
    loop = _EpochLoop(parts._replace(trainer=trainer, ctx=ctxs), (step_net, test_net), seed, config.lr,
                      hooks, ckpt, job.num_workers)
    try:
        for epoch in range(len(history) + 1, config.epochs + 1):
            row = loop.run(epoch)
            if not _params_finite(parts.net):
                raise _nonfinite('the parameters', epoch, config.lr, ckpt)
            history.append(**row)
            for hook in hooks:
                hook.epoch_end(history, parts.net, None if is_distributed(job.kvstore) else trainer)
    except KeyboardInterrupt:
        done = _kept(ckpt)
        raise TrainingInterrupted(done, ckpt if done else None) from None
    for hook in hooks:
        hook.end(loop.examples, loop.train_seconds, ctxs)
    return history


def _classes(net: mx.gluon.Block, example_shape: Sequence[int]) -> Optional[int]:
    # The network's outputs for one example, by shape inference: nothing is initialized or run.
    if not isinstance(net, gluon.HybridBlock):
        return None
    try:
        _, shapes, _ = net(mx.sym.var('data')).infer_shape(data=(1,) + tuple(example_shape))
    except mx.base.MXNetError:
        return None        # the shapes do not fit: the first step says so, as MXNet does
    return shapes[0][1] if shapes and len(shapes[0]) == 2 else None


def check_labels(net: mx.gluon.Block, train_iter: Iterable, test_iter: Iterable) -> None:
    """Step 0: ``ValueError`` naming the label and its count if a label of the data
    (``.labels`` of :class:`d2lnets.data.ArrayIter`) is outside ``[0, classes)``, the network's outputs."""
    shape = getattr(train_iter, 'example_shape', None)
    classes = _classes(net, shape) if shape else None
    if classes is None:
        return
    for what, it in (('training', train_iter), ('test', test_iter)):
        labels = getattr(it, 'labels', None)
        bad = data.out_of_range(labels, classes) if labels is not None else None
        if bad:
            raise ValueError('the %s data holds %s, but the network has %d classes, labels 0 to %d: give labels '
                             'in that range, or a network with more classes (classes=N)'
                             % (what, bad, classes, classes - 1))


def _restore(net: mx.gluon.Block, ckpt: Optional[Path], resume: bool, job: Job,
             ctxs: List[mx.Context]) -> Optional[Dict[str, Any]]:
    """Step 1: the validated checkpoint to continue from (``None``: start
    afresh), with its parameters loaded into ``net``."""
    if resume and job.num_workers > 1:
        raise ValueError('resuming a run on the parameter server is not supported: resume it in one process')
    if not (resume and ckpt is not None and checkpoint.is_checkpoint(ckpt)):
        return None
    state = checkpoint.load_checkpoint(ckpt)
    try:
        net.load_parameters(str(state['params']), ctx=ctxs)
    except (AssertionError, mx.base.MXNetError) as err:
        raise checkpoint.CheckpointError('the checkpoint in %s is damaged (%s does not hold this network\'s '
                                         'parameters: %s); start a new run with another `out`'
                                         % (ckpt, state['params'].name, str(err).strip().splitlines()[0])) from None
    return state


def _shard(train_iter: Iterable, job: Job) -> None:
    """Step 2: on the parameter server, this worker's shard of the data."""
    if job.num_workers == 1:
        return
    if not hasattr(train_iter, 'shard'):
        raise ValueError('training on %d workers needs a data iterator with a shard() method, such as '
                         'd2lnets.data.load_data gives' % job.num_workers)
    train_iter.shard(job.rank, job.num_workers)


def _prepare_step_net(net: mx.gluon.Block, train_iter: Iterable, seed: int, init, ctxs: List[mx.Context],
                      hybridize: bool) -> mx.gluon.Block:
    """Step 3: initialize what is not (seeded), hybridize, and return the
    network the steps go through (LeNet's blocks fused on CPUs)."""
    _reseed(seed, 0, train_iter)
    initialize_missing(net, init or mx.init.Xavier(), ctx=ctxs)
    if not (hybridize and isinstance(net, mx.gluon.HybridBlock)):
        return net
    # static_alloc: MXNet plans the memory once (about 10% of a LeNet step, docs/performance.md)
    net.hybridize(static_alloc=True, static_shape=True)
    # On CPUs, LeNet's conv-sigmoid-pool blocks run as one fused operator
    # (2-3x faster steps); net itself keeps Gluon's layers.
    return fused.for_training(net, ctxs)


def _setup_seconds(*nets) -> float:
    """What the fused networks among ``nets`` spent once on their first call
    (the kernels' build): not a step's time, so kept out of the epoch's."""
    return sum(getattr(net, 'setup_seconds', 0.0) for net in nets)


def _total(arrays: List[mx.nd.NDArray]) -> float:
    return sum(float(a.asscalar()) for a in arrays)


def _params_finite(net: mx.gluon.Block) -> bool:
    total = 0.0
    for p in net.collect_params().values():
        total += float(p.data().abs().sum().asscalar())  # one value per parameter, at epoch end only
    return math.isfinite(total)


def _progress(data_iter: Iterable, epoch: int, enabled: bool):
    from tqdm import tqdm
    total = len(data_iter) if hasattr(data_iter, '__len__') else None
    return tqdm(data_iter, total=total, desc='epoch %d' % epoch, unit='batch', leave=False,
                disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def _kept(ckpt: Optional[Path]) -> int:
    """The epoch of the checkpoint in ``ckpt`` (0: none). Checkpoints are
    atomic: whatever latest.json names is one complete epoch."""
    return checkpoint.load_checkpoint(ckpt)['epoch'] if ckpt is not None and checkpoint.is_checkpoint(ckpt) else 0


def _nonfinite(what: str, epoch: int, lr: float, ckpt: Optional[Path]) -> NonFiniteLoss:
    done = _kept(ckpt)
    kept = (' The checkpoint of epoch %d is kept in %s.' % (done, ckpt)) if done else ''
    return NonFiniteLoss('%s became NaN or infinite in epoch %d: the learning rate %g is probably too high; '
                         'try a lower one, such as %g.%s' % (what, epoch, lr, lr / 2, kept))


class _EpochLoop:
    """Steps 4-5: one epoch of SGD steps, then the test pass."""

    def __init__(self, parts: Parts, nets: Tuple[mx.gluon.Block, mx.gluon.Block], seed: int, lr: float,
                 hooks: Sequence[Hook], ckpt: Optional[Path], workers: int):
        # parts: its trainer and ctx (a list) decided; nets: (the step network, the test network)
        self.parts, (self.net, self.test_net), self.hooks = parts, nets, hooks
        self.seed, self.lr, self.ckpt = seed, lr, ckpt
        # As the lecture's trainer.step(batch_size): the nominal batch size, also
        # for a smaller last batch. The servers sum the workers' gradients, so each
        # worker divides by the global batch.
        batch_size = getattr(parts.train_iter, 'batch_size', None)
        self.batch_size = batch_size * workers if batch_size else None
        self.loss_fn = parts.loss or gluon.loss.SoftmaxCrossEntropyLoss()
        self.examples, self.train_seconds = 0, 0.0   # over the epochs run, for examples/sec

    def _batches(self, epoch: int, stack: contextlib.ExitStack) -> Iterable:
        batches = self.parts.train_iter
        for hook in self.hooks:
            wrapped = hook.batches(epoch, batches)
            if wrapped is not batches and hasattr(wrapped, 'close'):
                stack.callback(wrapped.close)     # a progress bar leaves no line behind
            batches = wrapped
        return batches

    def run(self, epoch: int) -> Dict[str, float]:
        parts, ctxs = self.parts, self.parts.ctx
        _reseed(self.seed, epoch, parts.train_iter)
        start, setup = time.time(), _setup_seconds(self.net, self.test_net)
        loss_sum = [mx.nd.zeros(1, ctx=c) for c in ctxs]
        correct = [mx.nd.zeros(1, ctx=c) for c in ctxs]
        n = 0
        with contextlib.ExitStack() as stack:
            for i, (X, y) in enumerate(self._batches(epoch, stack), 1):
                ls, cs = train_step(self.net, parts.trainer, self.loss_fn, X, y, ctxs, self.batch_size)
                for acc, v in zip(loss_sum + correct, ls + cs):
                    acc += v
                n += X.shape[0]
                if i % parts.check_every == 0 and not math.isfinite(_total(loss_sum)):
                    raise _nonfinite('the training loss', epoch, self.lr, self.ckpt)
        if n == 0:
            raise ValueError('the training data iterator gave no examples')
        loss = _total(loss_sum) / n  # waits for the epoch's last step
        train_seconds = time.time() - start - (_setup_seconds(self.net, self.test_net) - setup)
        self.examples, self.train_seconds = self.examples + n, self.train_seconds + train_seconds
        if not math.isfinite(loss):
            raise _nonfinite('the training loss', epoch, self.lr, self.ckpt)
        test_acc = evaluate_accuracy(self.test_net, parts.test_iter, ctxs)
        return dict(epoch=epoch, loss=loss, train_acc=_total(correct) / n, test_acc=test_acc,
                    seconds=time.time() - start - (_setup_seconds(self.net, self.test_net) - setup),
                    examples_per_sec=n / train_seconds)
