"""LeNet's costly operators and the reformulations tried for them (MXNet 1.9.1, CPU),
and LeNet's two blocks (convolution, sigmoid, 2x2 average pooling) as MXNet's
layers and as d2lnets' fused operator (built by d2lnets/perf/kernels_build.py).

For each candidate: forward and forward+backward CPU time per batch of 256
(process time on one OpenMP thread, the median of 7 runs, so that other work
on a shared machine disturbs it little), and its largest relative difference
from the standard operator (output and gradients). Results: docs/performance.md.

    .venv/bin/python -m benchmarks.lenet_operators             # everything
    .venv/bin/python -m benchmarks.lenet_operators --blocks    # the two blocks only

The fused blocks run once per kernel variant this CPU can execute (on an
AVX-512 machine: avx512 and avx2), each named after it.
"""
import os

os.environ.setdefault('OMP_NUM_THREADS', '1')
from d2lnets import nn  # noqa: E402,F401  (sets the engine before mxnet is imported, and starts it)
import time  # noqa: E402

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd, nd  # noqa: E402

from d2lnets.io import cpu_model  # noqa: E402
from d2lnets.perf import kernels_build  # noqa: E402

N = 256


def cpu_ms(f, n=20):
    f()
    nd.waitall()
    times = []
    for _ in range(7):
        start = time.process_time()
        for _ in range(n):
            f()
        nd.waitall()
        times.append((time.process_time() - start) / n)
    return sorted(times)[3] * 1e3


def conv0(x, w, b):       # (256, 1, 28, 28) -> (256, 6, 28, 28)
    return nd.Convolution(x, w, b, kernel=(5, 5), pad=(2, 2), num_filter=6)


def conv0_im2col_slices(x, w, b):   # 25 shifted slices as channels, then a 1x1 convolution
    xp = nd.pad(x, mode='constant', pad_width=(0, 0, 0, 0, 2, 2, 2, 2))
    cols = nd.concat(*[nd.slice(xp, begin=(None, None, i, j), end=(None, None, i + 28, j + 28))
                       for i in range(5) for j in range(5)], dim=1)
    return nd.Convolution(cols, w.reshape((6, 25, 1, 1)), b, kernel=(1, 1), num_filter=6)


def conv0_row_stack(x, w, b):       # 5 row-shifted copies as channels, then a 1x5 convolution
    xp = nd.pad(x, mode='constant', pad_width=(0, 0, 0, 0, 2, 2, 2, 2))
    rows = nd.concat(*[nd.slice(xp, begin=(None, None, i, None), end=(None, None, i + 28, None))
                       for i in range(5)], dim=1)
    return nd.Convolution(rows, w.reshape((6, 5, 1, 5)), b, kernel=(1, 5), num_filter=6)


def conv0_batch_as_groups(x, w, b):  # one image per group, the weight tiled per group
    y = nd.Convolution(x.reshape((1, N, 28, 28)), nd.tile(w, reps=(N, 1, 1, 1)), nd.tile(b, reps=(N,)),
                       kernel=(5, 5), pad=(2, 2), num_filter=6 * N, num_group=N)
    return y.reshape((N, 6, 28, 28))


def conv0_im2col_dot(x, w, b):      # MXNet's im2col operator and one matrix product
    cols = nd.im2col(x, kernel=(5, 5), pad=(2, 2))                     # (256, 25, 784)
    y = nd.dot(w.reshape((6, 25)), cols.transpose((1, 0, 2)).reshape((25, -1)))
    return y.reshape((6, N, 28, 28)).transpose((1, 0, 2, 3)) + b.reshape((1, 6, 1, 1))


def conv0_out_channels_8(x, w, b):  # 2 zero filters more (oneDNN prefers multiples of 8/16)
    wz = nd.concat(w, nd.zeros((2, 1, 5, 5)), dim=0)
    bz = nd.concat(b, nd.zeros((2,)), dim=0)
    y = nd.Convolution(x, wz, bz, kernel=(5, 5), pad=(2, 2), num_filter=8)
    return nd.slice_axis(y, axis=1, begin=0, end=6)


def sigmoid(x):
    return nd.Activation(x, act_type='sigmoid')


def sigmoid_tanh(x):
    return 0.5 * nd.Activation(0.5 * x, act_type='tanh') + 0.5


def sigmoid_exp(x):
    return 1 / (1 + nd.exp(-x))


def avg_pool(x):
    return nd.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type='avg')


def avg_pool_reshape_mean(x):
    return x.reshape((N, 6, 14, 2, 14, 2)).mean(axis=(3, 5))


def avg_pool_depthwise_conv(x):     # a fixed 2x2 kernel of 0.25 per channel, stride 2
    return nd.Convolution(x, nd.full((6, 1, 2, 2), 0.25), kernel=(2, 2), stride=(2, 2), num_filter=6,
                          num_group=6, no_bias=True)


def block1(x, w, b):      # LeNet's first block as its layers: (256, 1, 28, 28) -> (256, 6, 14, 14)
    return avg_pool(sigmoid(conv0(x, w, b)))


def block2(x, w, b):      # the second: (256, 6, 14, 14) -> (256, 16, 5, 5)
    return nd.Pooling(sigmoid(nd.Convolution(x, w, b, kernel=(5, 5), num_filter=16)), kernel=(2, 2),
                      stride=(2, 2), pool_type='avg')


def block_fused(variant, block):
    """LeNet's block 1 or 2 through the fused operator's ``variant``. The first
    block's input gradient is never needed (its input is the data)."""
    op = getattr(nd, kernels_build.op_name(variant))
    pad, num_filter = {1: (2, 6), 2: (0, 16)}[block]

    def f(x, w, b):
        return op(x, w, b, kernel=5, pad=pad, num_filter=num_filter, need_data_grad=int(block > 1))
    f.__name__ = 'block%d_fused_%s' % (block, variant)
    return f


def groups(variants):
    return [
        ('conv0', [(N, 1, 28, 28), (6, 1, 5, 5), (6,)], False,
         [conv0, conv0_im2col_slices, conv0_row_stack, conv0_batch_as_groups, conv0_im2col_dot,
          conv0_out_channels_8]),
        ('sigmoid', [(N, 6, 28, 28)], True, [sigmoid, sigmoid_tanh, sigmoid_exp]),
        ('avg pool', [(N, 6, 28, 28)], True, [avg_pool, avg_pool_reshape_mean, avg_pool_depthwise_conv]),
        ('block 1', [(N, 1, 28, 28), (6, 1, 5, 5), (6,)], False, [block1] + [block_fused(v, 1) for v in variants]),
        ('block 2', [(N, 6, 14, 14), (16, 6, 5, 5), (16,)], True, [block2] + [block_fused(v, 2) for v in variants]),
    ]


def main():
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--blocks', action='store_true', help="only LeNet's two blocks")
    opts = parser.parse_args()
    variants = [v for v in kernels_build.runnable_variants() if kernels_build.load(v)]
    if not variants:
        raise SystemExit('no fused kernel variant runs on this CPU (%s), or none built (see the warning above)'
                         % kernels_build.instruction_set())
    print('MXNet %s, OMP_NUM_THREADS=%s, %s; %s (%s); kernel variants: %s; CPU ms per batch of %d'
          % (mx.__version__, os.environ['OMP_NUM_THREADS'], os.environ.get('MXNET_ENGINE_TYPE'),
             cpu_model(), kernels_build.instruction_set(), ', '.join(variants), N))
    for title, shapes, input_grad, fns in groups(variants):
        if opts.blocks and not title.startswith('block'):
            continue
        rng = np.random.RandomState(0)
        args = [nd.array(rng.normal(size=s)) for s in shapes]
        for i, a in enumerate(args):
            if i > 0 or input_grad:
                a.attach_grad()
        head = nd.array(rng.normal(size=fns[0](*args).shape))
        reference = None
        print('\n%-26s %8s %12s %10s' % (title, 'forward', 'fwd+bwd', 'rel. diff'))
        for fn in fns:
            def step(fn=fn):
                with autograd.record():
                    y = fn(*args)
                y.backward(head)
                return y
            y = step()
            got = [y.asnumpy()] + [a.grad.asnumpy().copy() for a in args if a.grad is not None]
            reference = reference or got
            diff = max(float(np.abs(g - r).max() / np.abs(r).max()) for g, r in zip(got, reference))
            print('%-26s %8.2f %12.2f %10.1e' % (fn.__name__, cpu_ms(lambda fn=fn: fn(*args)), cpu_ms(step), diff),
                  flush=True)


if __name__ == '__main__':
    main()
