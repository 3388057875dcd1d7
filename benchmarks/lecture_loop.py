"""The lecture's own LeNet code, run on the same Fashion-MNIST files, to
compare its accuracy with d2lnets' (benchmarks/accuracy.py) seed for seed.

    python -m benchmarks.lecture_loop --seeds 0 1 2     # ~3 min per seed on 2 cores

What runs is the notebook's code (berkeley-stat-157 ``slides/2_28/lenet.ipynb``
with d2l's ``load_data_fashion_mnist`` and ``train_ch5``): Gluon's
``DataLoader`` over ``transform_first(ToTensor())``, ``shuffle=True``, a
``SoftmaxCrossEntropyLoss`` summed per batch, ``trainer.step(batch_size)``,
Xavier, SGD at lr 0.9, imperative (not hybridized). Only the files are read
with d2lnets (Gluon's ``FashionMNIST`` would insist on the original gz files'
sha1, which Debian's recompressed copies do not have). Seeds go to
``random``, ``np.random`` and ``mx.random``, as a student would set them.
Results are appended to benchmarks/results/lecture_loop.jsonl.
"""
import argparse
import json
import random
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

import d2lnets  # noqa: E402,F401  (first: sets the thread defaults)
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd, gluon, init  # noqa: E402
from mxnet.gluon import loss as gloss, nn  # noqa: E402
from mxnet.gluon.data.vision import transforms  # noqa: E402

from d2lnets.data import load_arrays  # noqa: E402


def load_data_fashion_mnist(batch_size):
    trans = transforms.ToTensor()
    sets = []
    for train in (True, False):
        images, labels = load_arrays('fashion-mnist', train)
        # Gluon's FashionMNIST holds (N, 28, 28, 1) uint8 NDArrays and int32 labels.
        sets.append(gluon.data.ArrayDataset(mx.nd.array(images[..., None], dtype='uint8'),
                                            labels.astype('int32')).transform_first(trans))
    return (gluon.data.DataLoader(sets[0], batch_size, shuffle=True),
            gluon.data.DataLoader(sets[1], batch_size, shuffle=False))


def evaluate_accuracy(data_iter, net):
    acc_sum, n = mx.nd.array([0]), 0
    for X, y in data_iter:
        y = y.astype('float32')
        acc_sum += (net(X).argmax(axis=1) == y).sum()
        n += y.size
    return acc_sum.asscalar() / n


def train_ch5(net, train_iter, test_iter, batch_size, trainer, num_epochs):
    loss = gloss.SoftmaxCrossEntropyLoss()
    accs = []
    for epoch in range(num_epochs):
        train_l_sum, train_acc_sum, n, start = 0.0, 0.0, 0, time.time()
        for X, y in train_iter:
            with autograd.record():
                y_hat = net(X)
                l = loss(y_hat, y).sum()
            l.backward()
            trainer.step(batch_size)
            y = y.astype('float32')
            train_l_sum += l.asscalar()
            train_acc_sum += (y_hat.argmax(axis=1) == y).sum().asscalar()
            n += y.size
        test_acc = evaluate_accuracy(test_iter, net)
        accs.append(test_acc)
        print('epoch %d, loss %.4f, train acc %.3f, test acc %.3f, time %.1f sec'
              % (epoch + 1, train_l_sum / n, train_acc_sum / n, test_acc, time.time() - start), flush=True)
    return accs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--epochs', type=int, default=10)
    args = p.parse_args()
    batch_size, lr = 256, 0.9
    train_iter, test_iter = load_data_fashion_mnist(batch_size)
    for seed in args.seeds:
        random.seed(seed)
        np.random.seed(seed)
        mx.random.seed(seed)
        net = nn.Sequential()
        net.add(nn.Conv2D(channels=6, kernel_size=5, padding=2, activation='sigmoid'),
                nn.AvgPool2D(pool_size=2, strides=2),
                nn.Conv2D(channels=16, kernel_size=5, activation='sigmoid'),
                nn.AvgPool2D(pool_size=2, strides=2),
                nn.Dense(120, activation='sigmoid'),
                nn.Dense(84, activation='sigmoid'),
                nn.Dense(10))
        net.initialize(force_reinit=True, init=init.Xavier())
        trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': lr})
        accs = train_ch5(net, train_iter, test_iter, batch_size, trainer, args.epochs)
        record = {'code': 'lecture notebook (train_ch5, DataLoader, imperative)', 'seed': seed,
                  'epochs': args.epochs, 'test_acc': accs, 'mxnet_version': mx.__version__,
                  'date': time.strftime('%Y-%m-%d')}
        (HERE / 'results').mkdir(exist_ok=True)
        with open(HERE / 'results' / 'lecture_loop.jsonl', 'a') as f:
            f.write(json.dumps(record) + '\n')


if __name__ == '__main__':
    main()
