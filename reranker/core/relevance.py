"""The one relevance rule: a label (0/1, a graded judgment or a score in [0, 1]) counts as relevant from 0.5 up.
Mining, dev reranking, classification, the score plot and the collections' qrels all use it, so a scored pair
of 0.3 is a negative everywhere, and a graded judgment of 1 or more is relevant everywhere."""

from __future__ import annotations

import numpy as np

RELEVANT_FROM = 0.5


def is_relevant(labels) -> np.ndarray | bool:
    """Example: ``is_relevant([0, 0.3, 0.5, 2])`` is ``array([False, False, True, True])``."""
    if np.isscalar(labels):
        return bool(labels >= RELEVANT_FROM)
    return np.asarray(labels, dtype=float) >= RELEVANT_FROM
