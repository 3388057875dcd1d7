"""One worker of benchmarks/launch_hosts.py: times training steps of NAME on
random data through the kvstore KV (dist_sync, or local for the one-process
baseline) and counts the bytes its host's interface sent and received.

    launch_hosts_worker.py NAME BATCH STEPS KV

Prints one JSON line.
"""
import json
import sys
import time

import d2lnets
import mxnet as mx
from mxnet import autograd, gluon


def interface_bytes(name='eth0'):
    # (sent, received) by this network namespace's interface; (0, 0) without one.
    for line in open('/proc/self/net/dev').read().splitlines()[2:]:
        iface, data = line.split(':', 1)
        if iface.strip() == name:
            cols = data.split()
            return int(cols[8]), int(cols[0])
    return 0, 0


def main():
    name, batch, steps, kvname = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    kv = mx.kv.create(kvname)
    size = {'lenet': 28}.get(name, 224)
    mx.random.seed(0)
    net = d2lnets.get_model(name)
    net.initialize(mx.init.Xavier())
    x = mx.nd.random.uniform(shape=(batch, 1, size, size))
    y = mx.nd.array([i % 10 for i in range(batch)])
    net.hybridize(static_alloc=True, static_shape=True)
    net(x).wait_to_read()
    params = sum(p.data().size for p in net.collect_params().values())
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.01}, kvstore=kv)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    def step():
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(batch * kv.num_workers)
        mx.nd.waitall()
    step()
    step()                       # warm-up: memory plans, first pulls
    sent0, received0 = interface_bytes()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    sent, received = interface_bytes()
    print(json.dumps(dict(rank=kv.rank, workers=kv.num_workers, model=name, batch=batch, steps=steps,
                          seconds_per_step=seconds / steps, examples_per_sec=batch * steps / seconds,
                          params=params, param_bytes=4 * params, sent_per_step=(sent - sent0) / steps,
                          received_per_step=(received - received0) / steps)), flush=True)


if __name__ == '__main__':
    main()
