"""Data-parallel training across processes through MXNet's parameter server.

A kvstore named ``dist_sync`` (or ``dist_async``, ``dist_device_sync``) joins
the job that ``d2lnets launch`` (or MXNet's DMLC_* environment) describes.
Every worker reads its own shard of the data, and each SGD step averages over
the global batch: Gluon's ``Trainer.step(n)`` divides by ``n`` and the servers
sum the workers' gradients, so each worker steps with ``batch x num_workers``.
"""
from typing import Any, NamedTuple, Optional, Union

import mxnet as mx
import numpy as np

# Key used once, before training, to share worker 0's seed with the others: an
# integer, as the trainer's keys are (MXNet does not mix string and integer keys),
# far above any parameter's index.
_SEED_KEY = 1 << 30


def is_distributed(kvstore: Union[str, Any, None]) -> bool:
    """Whether ``kvstore`` (a name or a KVStore) is MXNet's parameter server."""
    kind = kvstore if isinstance(kvstore, str) else getattr(kvstore, 'type', '')
    return bool(kind) and kind.startswith('dist')


def create_kvstore(kvstore: Union[str, Any]) -> Any:
    """The KVStore named ``kvstore`` (joining the parameter-server job for the
    ``dist_*`` names); a KVStore or another value is returned as it is."""
    if not isinstance(kvstore, str) or not is_distributed(kvstore):
        return kvstore
    import os
    if not os.environ.get('DMLC_ROLE'):
        raise ValueError('`kvstore=%s` needs a parameter-server job: start it with `d2lnets launch -n WORKERS '
                         '-- d2lnets train ... --kvstore %s` (or set MXNet\'s DMLC_* variables)'
                         % (kvstore, kvstore))
    return mx.kv.create(kvstore)


def num_workers(kvstore: Any) -> int:
    """How many workers share each step (1 outside a parameter-server job)."""
    return kvstore.num_workers if is_distributed(kvstore) else 1


def rank(kvstore: Any) -> int:
    """This worker's rank (0 outside a parameter-server job)."""
    return kvstore.rank if is_distributed(kvstore) else 0


class Job(NamedTuple):
    """Where this process stands in a training job: decided once per run (:func:`join`)."""
    kvstore: Any        # a KVStore, or a kvstore name for the trainer ('device', 'local')
    rank: int           # 0 outside a parameter-server job
    num_workers: int    # 1 outside a parameter-server job
    seed: int           # worker 0's, on every worker


def join(kvstore: Union[str, Any] = 'device', seed: Optional[int] = None) -> Job:
    """Join the job ``kvstore`` names (see :func:`create_kvstore`) and agree on
    a seed: ``seed``, or a random one, worker 0's on every worker."""
    kv = create_kvstore(kvstore)
    if seed is None:
        seed = int(np.random.randint(0, 2 ** 31 - 1))
    return Job(kv, rank(kv), num_workers(kv), agree_seed(kv, seed))


def agree_seed(kvstore: Any, seed: Optional[int]) -> Optional[int]:
    """Worker 0's ``seed``, on every worker: the data order and the
    initialization must be the same everywhere. A job agrees once; later calls
    return the seed agreed then."""
    if not is_distributed(kvstore) or seed is None:
        return seed
    agreed = getattr(kvstore, '_d2lnets_seed', None)
    if agreed is None:
        # The servers keep worker 0's value of an initialized key. float64 holds
        # every seed below 2**53 exactly; the servers take floating point only.
        value = mx.nd.array([seed], dtype='float64')
        kvstore.init(_SEED_KEY, value)
        kvstore.pull(_SEED_KEY, out=value)
        agreed = kvstore._d2lnets_seed = int(value.asscalar())
    return agreed
