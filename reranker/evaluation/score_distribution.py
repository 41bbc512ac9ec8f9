"""How well a model's scores separate relevant from other dev pairs: the share of each per score bin, for
`dvc plots`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reranker.core.relevance import is_relevant


def score_distribution(scores: np.ndarray, labels, bins: int = 20) -> pd.DataFrame:
    """Columns score (bin centre), positive and negative (share of those pairs in the bin).

    Example: ``score_distribution(model.predict(pairs), dev_pairs["label"])``.
    """
    scores = np.asarray(scores, dtype=float)
    relevant = is_relevant(labels)
    edges = np.histogram_bin_edges(scores, bins=bins)
    shares = {name: np.histogram(scores[mask], bins=edges)[0] / max(mask.sum(), 1)
              for name, mask in (("positive", relevant), ("negative", ~relevant))}
    return pd.DataFrame({"score": ((edges[:-1] + edges[1:]) / 2).round(4), **shares})
