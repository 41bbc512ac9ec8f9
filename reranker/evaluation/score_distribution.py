"""How well a model's scores separate relevant from other dev pairs: the share of each per score bin, for
`dvc plots`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reranker.core.outputs import atomic_output
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


def write_score_distribution(path: str | Path, dev_pairs: pd.DataFrame, scored: dict, score) -> None:
    """The dev pairs' score distribution as CSV at `path`: `scored` maps (query, document) to a score the evaluation
    already computed; `score(frame)` scores the pairs it lacks (labelled dev pairs no reranking set holds)."""
    keys = list(zip(dev_pairs["query"], dev_pairs["document"]))
    if missing := [key for key in dict.fromkeys(keys) if key not in scored]:
        scored = {**scored, **dict(zip(missing, score(pd.DataFrame(missing, columns=["query", "document"]))))}
    with atomic_output(path) as partial:
        scores = np.array([scored[key] for key in keys])
        score_distribution(scores, dev_pairs["label"]).to_csv(partial, index=False)
