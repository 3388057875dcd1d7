"""Speed and cost: complexity tables, throughput, and the fused CPU kernels.

- :mod:`.complexity_report`: the slide "Complexity" and the per-layer tables.
- :mod:`.bench`: images per second, GFLOP/s against the measured peak.
- :mod:`.fused`: LeNet's conv-sigmoid-avgpool blocks as one C++ operator
  (``csrc/``), built, cached and loaded on CPUs.

Rule: this package uses models and the registry; training uses ``fused``.
"""
