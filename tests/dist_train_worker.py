"""A parameter-server worker for the tests: trains LeNet with d2lnets.train on
its shard of the first LIMIT Fashion-MNIST examples, then saves its parameters
as OUT/rank<r>.params. Usage: dist_train_worker.py OUT BATCH LIMIT SEED"""
import sys

import d2lnets  # noqa: F401  (first: MXNet's settings)
import mxnet as mx

from d2lnets.data import load_fashion_mnist
from d2lnets.training.loop import train

out, batch, limit, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
kv = mx.kv.create('dist_sync')
net = d2lnets.get_model('lenet')
train_iter, test_iter = load_fashion_mnist(batch, limit=limit, seed=seed)
history = train(net, train_iter, test_iter, 1, 0.9, ctx=mx.cpu(), seed=seed, verbose=False, kvstore=kv)
net.save_parameters('%s/rank%d.params' % (out, kv.rank))
print('rank %d: %d steps, loss %.6f' % (kv.rank, len(train_iter), history.loss[0]), flush=True)
