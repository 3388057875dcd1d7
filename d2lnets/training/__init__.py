"""Training on Fashion-MNIST: the loop, runs as folders, checkpoints, metrics,
figures, and data parallelism across processes.

- :mod:`.config`: ``RunConfig``, a run's settings as one frozen value, kept in ``meta.json``.
- :mod:`.loop`: the lecture's ``train`` as one ``fit(config, parts, hooks)`` in named
  steps (restore, shard, prepare the step network, epochs of steps, test pass), with
  hooks for printing, a progress bar, checkpoints and callbacks.
- :mod:`.runs`: ``train_run`` / ``resume_run`` / ``evaluate_saved``: a run as a
  locked folder with its ``meta.json``; what ``d2lnets train`` and ``evaluate`` call.
- :mod:`.checkpoint`: one complete epoch on disk, never a pickle.
- :mod:`.metrics`: accuracy and the confusion matrix; :mod:`.plot`: figures.
- :mod:`.distributed`: MXNet's parameter server; :mod:`.launch`: its processes.

Rule: this package uses models, weights, data and perf; nothing outside the
CLI uses it.
"""
