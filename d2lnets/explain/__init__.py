"""What the networks compute, as numpy arrays (issue 21): every layer's output
(:mod:`.activations`), where a network looks (:mod:`.saliency`), its filters and
weight statistics (:mod:`.filters`), and what it gets wrong (:mod:`.mistakes`).

Nothing here draws (the figures are built on these arrays elsewhere) and
nothing here changes a network or its parameters.
"""
