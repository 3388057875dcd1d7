"""Speed and cost: complexity tables, throughput, and the fused CPU kernels.

- :mod:`.complexity_report`: the slide "Complexity" and the per-layer tables.
- :mod:`.bench`: images per second, GFLOP/s against the measured peak.
- LeNet's conv-sigmoid-avgpool blocks as one C++ operator (``csrc/``) on
  CPUs, one job per module, each using only those below it:
  :mod:`.fused` (what training and inference call: the network or its fused
  copy) uses :mod:`.choice` (the timed choice between the operator and
  MXNet's layers), :mod:`.rewrite` (the symbol graph's chains onto the
  operator) and :mod:`.kernels_build` (the switches, CPU variants, compiler,
  cache and its record); :mod:`.choice` and :mod:`.rewrite` use
  :mod:`.kernels_build` only.

Rule: this package uses models and the registry; training and deploy use
``fused``, ``d2lnets info`` uses ``kernels_build``.
"""
