"""Timing a step function: warm up, size the runs to a length, take the median.

The one timing loop of d2lnets' benchmark (:func:`d2lnets.perf.bench.bench`)
and of its PyTorch side (``benchmarks/pytorch_nets.py``), so both are timed
alike. Standard library only: the PyTorch side loads this file by its path, as
importing d2lnets would change OpenMP's settings for PyTorch too.
"""
import statistics
import time
from typing import Callable, List, Tuple


def time_steps(steps: Callable[[int], None], batch_size: int, runs: int, seconds_per_run: float,
               warmup: int) -> Tuple[float, List[float], int]:
    """``(median images/s, images/s of each run, steps per run)`` of
    ``steps(n)``, which must run ``n`` steps of ``batch_size`` images and wait
    for them (no synchronisation per step): ``warmup`` untimed steps (at least
    one), then ``runs`` timed runs of as many steps as fill ``seconds_per_run``."""
    steps(max(warmup, 1))
    t = time.perf_counter()
    steps(1)
    n = max(1, int(seconds_per_run / max(time.perf_counter() - t, 1e-6)))
    rates = []
    for _ in range(runs):
        t = time.perf_counter()
        steps(n)
        rates.append(n * batch_size / (time.perf_counter() - t))
    return statistics.median(rates), rates, n
