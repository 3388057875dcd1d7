"""The lecture's networks in PyTorch (eager), for the side-by-side benchmark.

Same layers, shapes and parameter counts as d2lnets' MXNet networks (checked
by ``check_counts``); timed by the same loop as ``d2lnets.perf.bench``
(``d2lnets/perf/timing.py``, loaded by its path): synthetic data, warm-up, then
the median of several runs of training steps (forward, backward, SGD update)
or inference, without synchronising per batch. The recipe (batch size,
learning rate, input shape) comes from the caller, benchmarks/compare_pytorch.py,
which reads d2lnets' registry; this process imports neither d2lnets nor MXNet.

    python -m benchmarks.pytorch_nets lenet --mode train --batch-size 256 --lr 0.9 --input-shape 1,28,28
"""
import argparse
import importlib.util
import json
import resource
from pathlib import Path

import torch
from torch import nn

VGG11 = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


def lenet(classes=10):
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2, 2), nn.Flatten(),
        nn.Linear(400, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, classes))


def alexnet(classes=10, in_channels=1):
    return nn.Sequential(
        nn.Conv2d(in_channels, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Flatten(),
        nn.Linear(256 * 5 * 5, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, classes))


def vgg(arch=VGG11, classes=10, in_channels=1):
    layers, c = [], in_channels
    for num_convs, channels in arch:
        for _ in range(num_convs):
            layers += [nn.Conv2d(c, channels, 3, padding=1), nn.ReLU()]
            c = channels
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers, nn.Flatten(),
                         nn.Linear(c * 7 * 7, 4096), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, classes))


def nin_block(cin, cout, k, s, p):
    return [nn.Conv2d(cin, cout, k, s, p), nn.ReLU(), nn.Conv2d(cout, cout, 1), nn.ReLU(),
            nn.Conv2d(cout, cout, 1), nn.ReLU()]


def nin(classes=10, in_channels=1):
    return nn.Sequential(
        *nin_block(in_channels, 96, 11, 4, 0), nn.MaxPool2d(3, 2),
        *nin_block(96, 256, 5, 1, 2), nn.MaxPool2d(3, 2),
        *nin_block(256, 384, 3, 1, 1), nn.MaxPool2d(3, 2), nn.Dropout(0.5),
        *nin_block(384, classes, 3, 1, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())


MODELS = {'lenet': lenet, 'alexnet': alexnet, 'vgg11': vgg,
          'vgg11_small': lambda: vgg([(n, c // 4) for n, c in VGG11]), 'nin': nin}

# Parameter counts of d2lnets' networks for this input (d2lnets.complexity(...).parameters):
# the twins must match them.
COUNTS = {'lenet': 61706, 'alexnet': 46764746, 'vgg11': 128806154, 'vgg11_small': 43093322,
          'nin': 1992166}


def _timing():
    # d2lnets' timing loop, by its path: importing the d2lnets package would set
    # OpenMP's variables for this process too.
    path = Path(__file__).resolve().parent.parent / 'd2lnets' / 'perf' / 'timing.py'
    spec = importlib.util.spec_from_file_location('d2lnets_timing', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench(name, mode, batch, lr, image_shape, runs=5, seconds_per_run=1.0, warmup=3):
    """Median images/s of ``name`` in ``mode`` on batches of ``batch`` images of
    ``image_shape`` (C, H, W), training with SGD at ``lr``."""
    net = MODELS[name]()
    count = sum(p.numel() for p in net.parameters())
    assert count == COUNTS[name], (name, count, COUNTS[name])
    X = torch.rand((batch,) + tuple(image_shape))
    y = torch.arange(batch) % 10
    loss = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    net.train(mode == 'train')

    def steps(n):
        for _ in range(n):
            if mode == 'train':
                opt.zero_grad(set_to_none=True)
                loss(net(X), y).backward()
                opt.step()
            else:
                with torch.inference_mode():
                    net(X)

    rate, rates, n = _timing().time_steps(steps, batch, runs, seconds_per_run, warmup)
    return dict(name=name, mode=mode, batch_size=batch, images_per_sec=rate,
                runs=rates, steps_per_run=n, threads=torch.get_num_threads(),
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                torch=torch.__version__)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('name', choices=sorted(MODELS))
    p.add_argument('--mode', choices=('train', 'infer'), default='train')
    p.add_argument('--batch-size', type=int, required=True)
    p.add_argument('--lr', type=float, required=True, help="SGD's learning rate (the lecture's recipe)")
    p.add_argument('--input-shape', required=True, metavar='C,H,W', help='one image, e.g. 1,28,28')
    p.add_argument('--runs', type=int, default=5)
    p.add_argument('--seconds', type=float, default=1.0)
    p.add_argument('--warmup', type=int, default=3)
    args = p.parse_args()
    shape = tuple(int(d) for d in args.input_shape.split(','))
    print(json.dumps(bench(args.name, args.mode, args.batch_size, args.lr, shape, args.runs, args.seconds,
                           args.warmup)))


if __name__ == '__main__':
    main()
