"""The lecture's training loop: Xavier initialization, SGD, softmax cross-entropy.

``train(net, train_iter, test_iter, num_epochs, lr)`` prints, as the lecture's
``train_ch5``::

    epoch 1, loss 2.3181, train acc 0.101, test acc 0.100, time 16.7 sec
    ...
    12345.6 examples/sec on cpu(0)

The loop never waits for the device per batch: loss and accuracy are summed on
the device and read every ``check_every`` batches (to stop on a non-finite
loss) and at the end of each epoch. With a ``checkpoint_dir`` every epoch ends
in an atomic checkpoint, and every epoch reseeds MXNet's and NumPy's generators
from ``(seed, epoch)``, so a resumed run ends where an uninterrupted one does.
"""
import math
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from .. import data, limits
from ..context import as_context_list, describe, split_batch
from ..models.params import initialize_missing
from ..perf import fused
from ..types import CtxOrText
from . import checkpoint
from .distributed import Job, is_distributed, join
from .metrics import evaluate_accuracy

__all__ = ['History', 'NonFiniteLoss', 'TrainingInterrupted', 'train', 'train_step', 'make_trainer',
           'epoch_seed', 'evaluate_accuracy']


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


def train(net: mx.gluon.Block, train_iter: Iterable, test_iter: Iterable, num_epochs: int, lr: float,
          ctx: CtxOrText = None, verbose: bool = True, *, seed: Optional[int] = None,
          checkpoint_dir: Optional[Union[str, Path]] = None, resume: bool = False,
          trainer: Optional[gluon.Trainer] = None, kvstore: Union[str, Any] = 'device',
          loss: Optional[gluon.loss.Loss] = None, init: Optional[mx.init.Initializer] = None,
          hybridize: bool = True, progress: Optional[bool] = None, check_every: int = 20,
          run_info: Optional[Dict[str, Any]] = None,
          on_epoch: Optional[Callable[[History], None]] = None) -> History:
    """Train ``net`` with the lecture's recipe and return its :class:`History`.

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
        Print the lecture's line per epoch and the examples/sec at the end.
    seed : int, optional
        Each epoch reseeds MXNet and NumPy from ``(seed, epoch)``. Default: a
        random seed (recorded in the checkpoint).
    checkpoint_dir : path, optional
        Write an atomic checkpoint there after every epoch.
    resume : bool
        Continue from the checkpoint in ``checkpoint_dir`` (parameters,
        trainer state, history) if there is one. The trainer state holds the
        optimizer, so the learning rate is the checkpoint's.
    trainer : gluon.Trainer, optional
        A trainer of your own (a distributed kvstore, another optimizer);
        with Gluon's default kvstore it needs initialized parameters.
    kvstore : str or KVStore
        ``'device'`` (default) or ``'local'`` sum the gradients of several
        contexts; ``'dist_sync'`` or ``'dist_async'`` join MXNet's parameter
        server (start the job with ``d2lnets launch``): each worker trains on its
        shard of ``train_iter``, steps with the global batch, and only worker 0
        writes checkpoints and calls ``on_epoch``.
        Passed to the trainer that is built when ``trainer`` is not given.
    loss : gluon.loss.Loss, optional
        Default softmax cross-entropy.
    hybridize : bool
        Compile the network into one graph first (default). On CPUs, chains of
        convolution, sigmoid and 2x2 average pooling (LeNet's) then train
        through d2lnets' fused operator; see :mod:`d2lnets.perf.fused`.
    progress : bool, optional
        A progress bar over batches; default: when verbose and stderr is a terminal.
    check_every : int
        Read the loss every that many batches to stop early on NaN.
    run_info : dict, optional
        Stored in the checkpoint (what is needed to rebuild the run).
    on_epoch : callable, optional
        Called with the history after each epoch (and its checkpoint).

    Raises
    ------
    NonFiniteLoss
        When the loss becomes NaN or infinite; the last checkpoint is kept.
    TrainingInterrupted
        On Ctrl-C; the last complete epoch's checkpoint is kept.
    """
    check_arguments(num_epochs, lr)
    ctxs = as_context_list(ctx)
    job = join(kvstore, seed)
    # On the parameter server, only worker 0 writes checkpoints and reports epochs.
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None and job.rank == 0 else None
    state = _restore(net, ckpt, resume, job, ctxs)
    history = History.from_dict(state['history']) if state else History()
    seed = state['run'].get('seed', job.seed) if state else job.seed
    _shard(train_iter, job)
    on_epoch = on_epoch if job.rank == 0 else None
    run_info = dict(run_info or {}, seed=seed)
    check_labels(net, train_iter, test_iter)
    step_net = _prepare_step_net(net, train_iter, seed, init, ctxs, hybridize)
    test_net = fused.for_inference(net, ctxs)  # the test pass: forward only, fused where faster
    trainer = trainer or make_trainer(net, lr, job.kvstore)
    if state and state['trainer'] is not None and not is_distributed(job.kvstore):
        checkpoint.restore_trainer(trainer, state['trainer'])
    loop = _EpochLoop(step_net, test_net, trainer, loss or gluon.loss.SoftmaxCrossEntropyLoss(), train_iter,
                      test_iter, ctxs, seed, lr, (verbose and sys.stderr.isatty()) if progress is None else progress,
                      check_every, ckpt, job.num_workers)
    try:
        for epoch in range(len(history) + 1, num_epochs + 1):
            row = loop.run(epoch)
            if not _params_finite(net):
                raise _nonfinite('the parameters', epoch, lr, ckpt)
            history.append(**row)
            if ckpt is not None:
                # On the parameter server the servers hold the trainer's state (plain SGD has none).
                checkpoint.save_checkpoint(ckpt, epoch, net, None if is_distributed(job.kvstore) else trainer,
                                           history.to_dict(), run_info)
            if verbose:
                print('epoch %d, loss %.4f, train acc %.3f, test acc %.3f, time %.1f sec'
                      % (epoch, row['loss'], row['train_acc'], row['test_acc'], row['seconds']), flush=True)
            if on_epoch is not None:
                on_epoch(history)
    except KeyboardInterrupt:
        done = _kept(ckpt)
        raise TrainingInterrupted(done, ckpt if done else None) from None
    if verbose and loop.examples:
        print('%.1f examples/sec on %s' % (loop.examples / loop.train_seconds, describe(ctxs)), flush=True)
    return history


def check_arguments(num_epochs: int, lr: float) -> None:
    """``ValueError`` unless ``num_epochs`` and ``lr`` are within :data:`d2lnets.limits.BOUNDS`."""
    limits.check('num_epochs', num_epochs)
    limits.check('lr', lr)


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
                                         'parameters: %s); start a new run with another --out'
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

    def __init__(self, net, test_net, trainer, loss_fn, train_iter, test_iter, ctxs, seed, lr, progress,
                 check_every, ckpt, workers):
        self.net, self.test_net, self.trainer, self.loss_fn = net, test_net, trainer, loss_fn
        self.train_iter, self.test_iter, self.ctxs = train_iter, test_iter, ctxs
        self.seed, self.lr, self.progress, self.check_every, self.ckpt = seed, lr, progress, check_every, ckpt
        # As the lecture's trainer.step(batch_size): the nominal batch size, also
        # for a smaller last batch. The servers sum the workers' gradients, so each
        # worker divides by the global batch.
        batch_size = getattr(train_iter, 'batch_size', None)
        self.batch_size = batch_size * workers if batch_size else None
        self.examples, self.train_seconds = 0, 0.0   # over the epochs run, for examples/sec

    def run(self, epoch: int) -> Dict[str, float]:
        _reseed(self.seed, epoch, self.train_iter)
        start, setup = time.time(), _setup_seconds(self.net, self.test_net)
        loss_sum = [mx.nd.zeros(1, ctx=c) for c in self.ctxs]
        correct = [mx.nd.zeros(1, ctx=c) for c in self.ctxs]
        n = 0
        with _progress(self.train_iter, epoch, self.progress) as batches:
            for i, (X, y) in enumerate(batches, 1):
                ls, cs = train_step(self.net, self.trainer, self.loss_fn, X, y, self.ctxs, self.batch_size)
                for acc, v in zip(loss_sum + correct, ls + cs):
                    acc += v
                n += X.shape[0]
                if i % self.check_every == 0 and not math.isfinite(_total(loss_sum)):
                    raise _nonfinite('the training loss', epoch, self.lr, self.ckpt)
        if n == 0:
            raise ValueError('the training data iterator gave no examples')
        loss = _total(loss_sum) / n  # waits for the epoch's last step
        train_seconds = time.time() - start - (_setup_seconds(self.net, self.test_net) - setup)
        self.examples, self.train_seconds = self.examples + n, self.train_seconds + train_seconds
        if not math.isfinite(loss):
            raise _nonfinite('the training loss', epoch, self.lr, self.ckpt)
        test_acc = evaluate_accuracy(self.test_net, self.test_iter, self.ctxs)
        return dict(epoch=epoch, loss=loss, train_acc=_total(correct) / n, test_acc=test_acc,
                    seconds=time.time() - start - (_setup_seconds(self.net, self.test_net) - setup),
                    examples_per_sec=n / train_seconds)
