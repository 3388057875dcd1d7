"""A parameter-server worker for the tests: trains LeNet with d2lnets.train on
its shard of the first LIMIT Fashion-MNIST examples, then saves its initial and
final parameters as OUT/rank<r>-init.params and OUT/rank<r>.params.
Usage: dist_train_worker.py OUT BATCH LIMIT SEED"""
import sys

import d2lnets  # noqa: F401  (first: MXNet's settings)
import mxnet as mx


class RecordingXavier(mx.init.Xavier):
    """``Xavier()`` (train's default) that keeps a copy of every value it gives:
    the initial parameters, drawn where train() draws them."""

    def __init__(self):
        super().__init__()
        self.values = {}

    def __call__(self, desc, arr):
        super().__call__(desc, arr)
        self.values[str(desc)] = arr.copy()


if __name__ == '__main__':
    from d2lnets.data import load_fashion_mnist
    from d2lnets.training.loop import train

    out, batch, limit, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    kv = mx.kv.create('dist_sync')
    net = d2lnets.get_model('lenet')
    train_iter, test_iter = load_fashion_mnist(batch, limit=limit, seed=seed)
    init = RecordingXavier()
    history = train(net, train_iter, test_iter, 1, 0.9, ctx=mx.cpu(), seed=seed, verbose=False, kvstore=kv,
                    init=init)
    mx.nd.save('%s/rank%d-init.params' % (out, kv.rank), init.values)
    # Keyed by the parameters' full names (conv0_weight), as the initializer sees them.
    net.collect_params().save('%s/rank%d.params' % (out, kv.rank))
    print('rank %d: %d steps, loss %.6f' % (kv.rank, len(train_iter), history.loss[0]), flush=True)
