"""A parameter-server worker for the launcher's tests: pushes and pulls a
key for STEPS rounds (sleeping between), then prints what it holds.

Environment: D2LNETS_TEST_PIDS (a folder: each worker writes a file named by its pid
there, holding 'worker' and, once it joined, its kvstore rank),
D2LNETS_TEST_STEPS, D2LNETS_TEST_SLEEP.
"""
import os
import time

import d2lnets  # noqa: F401  (first: MXNet's settings, and what MXNet needs on numpy>=1.24)
import mxnet as mx

pids = os.environ.get('D2LNETS_TEST_PIDS')
if pids:
    with open(os.path.join(pids, str(os.getpid())), 'w') as f:
        f.write('worker')
kv = mx.kv.create('dist_sync')
if pids:
    with open(os.path.join(pids, str(os.getpid())), 'w') as f:
        f.write(str(kv.rank))
kv.init(0, mx.nd.zeros((4,)))
out = mx.nd.zeros((4,))
for step in range(int(os.environ.get('D2LNETS_TEST_STEPS', '3'))):
    kv.push(0, mx.nd.ones((4,)) * (kv.rank + 1))
    kv.pull(0, out=out)
    time.sleep(float(os.environ.get('D2LNETS_TEST_SLEEP', '0')))
print('rank %d of %d holds %s' % (kv.rank, kv.num_workers, out.asnumpy().tolist()), flush=True)
