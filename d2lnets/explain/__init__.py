"""What the networks compute, as numpy arrays (issue 21): every layer's output
(:mod:`.activations`), where a network looks (:mod:`.saliency`), its filters and
weight statistics (:mod:`.filters`), and what it gets wrong (:mod:`.mistakes`).

These four import no matplotlib; :mod:`.figures` beside them draws their arrays,
and :mod:`.show` gives the arrays with their figure (the notebooks' API,
``d2lnets explain``). None of them changes a network or its parameters.
"""
from .show import Subject, load_subject, show_activations, show_filters, show_gradcam, show_mistakes, show_saliency

__all__ = ['Subject', 'load_subject', 'show_activations', 'show_filters', 'show_saliency', 'show_gradcam',
           'show_mistakes']
