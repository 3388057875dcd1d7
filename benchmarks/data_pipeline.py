"""What fraction of a training step the input pipeline takes.

For LeNet (batches of 256 at 28x28) and AlexNet (batches of 128 resized to
224x224, the lecture's recipes), time on the real Fashion-MNIST:

- data: producing a batch (index slice, copy to an NDArray, batched resize),
  waited for;
- step: a whole training step (data + forward + backward + SGD update), waited for.

    python -m benchmarks.data_pipeline            # writes benchmarks/results/data_pipeline.json
"""
import json
import os
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

import d2lnets  # noqa: E402  (first: sets OMP_NUM_THREADS before mxnet is imported)
import mxnet as mx  # noqa: E402
from mxnet import gluon  # noqa: E402

from d2lnets import data  # noqa: E402
from d2lnets.models.params import initialize_missing  # noqa: E402
from d2lnets.training.loop import make_trainer, train_step  # noqa: E402
from d2lnets.training.runs import run_config  # noqa: E402


def measure(name: str, steps: int, warmup: int = 3) -> dict:
    config = run_config(name)       # the lecture's recipe, as `d2lnets train NAME` runs it
    train_iter, _ = data.load_fashion_mnist(config.batch_size, config.resize, seed=0)
    batches = iter(train_iter)

    start = time.perf_counter()
    for _ in range(steps):
        X, y = next(batches)
        X.wait_to_read()
        y.wait_to_read()
    data_s = (time.perf_counter() - start) / steps

    net = d2lnets.get_model(name)
    ctx = [mx.cpu()]
    initialize_missing(net, mx.init.Xavier(), ctx=ctx)
    net.hybridize()
    trainer = make_trainer(net, config.lr)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    for _ in range(warmup):
        X, y = next(batches)
        train_step(net, trainer, loss, X, y, ctx)[0][0].wait_to_read()
    start = time.perf_counter()
    for _ in range(steps):
        X, y = next(batches)
        train_step(net, trainer, loss, X, y, ctx)[0][0].wait_to_read()
    step_s = (time.perf_counter() - start) / steps
    return {'model': name, 'batch_size': config.batch_size, 'resize': config.resize, 'steps': steps,
            'data_ms_per_batch': round(data_s * 1e3, 2), 'step_ms': round(step_s * 1e3, 1),
            'data_fraction': round(data_s / step_s, 4), 'examples_per_sec': round(config.batch_size / step_s, 1)}


def main() -> None:
    results = [measure('lenet', 40), measure('alexnet', 8)]
    record = {'results': results, 'machine': '%d cores, OMP_NUM_THREADS=%s' % (
        len(os.sched_getaffinity(0)), os.environ.get('OMP_NUM_THREADS')), 'date': time.strftime('%Y-%m-%d %H:%M')}
    out = HERE / 'results' / 'data_pipeline.json'
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + '\n')
    for r in results:
        print('%s: data %.2f ms of a %.1f ms step (%.1f%%)' % (r['model'], r['data_ms_per_batch'], r['step_ms'], 100 * r['data_fraction']))


if __name__ == '__main__':
    main()
