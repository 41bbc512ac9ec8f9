"""Score fusion of a reranker with its first stage: per query, both systems' scores of the same candidates are
min-max normalised to [0, 1] and summed with weights, `fused = w * first_stage + (1 - w) * trained`. This is the usual
CombSUM with min-max normalisation (Fox and Shaw, TREC-2; ranx's `fuse(norm="min-max", method="wsum")` computes
the same). It is written by hand because ranx is not a dependency, and ir-measures, which is, has no fusion.

Example::

    fused = fuse(candidates["query_id"], candidates["first_stage_score"], trained_scores, first_stage_weight=0.3)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def first_stage_scores(kind: str, candidates: pd.DataFrame, baselines: pd.DataFrame) -> np.ndarray:
    """The first stage's own scores of a reranking set's candidates (one per row): a collection's are its run's
    (BM25, the dense cosine, or the run file's scores); the dev set's candidates keep only their retrieval order, so
    its scores are the embedding model's cosine that mined them, as the evaluate_base stage wrote them
    (`baselines`, its scores of the set; for labelled data, whose dev lists were not retrieved, the embedding
    model's cosine of them). `kind` is the set's: "reranking" (dev) or "collection"."""
    if kind == "reranking":
        return baselines["embedding_model"].to_numpy(dtype=float)
    return candidates["first_stage_score"].to_numpy(dtype=float)


def min_max_per_query(query_ids: Sequence[str], scores: Sequence[float]) -> np.ndarray:
    """Each score rescaled to [0, 1] within its query: (score - the query's min) / (its max - its min). A query
    whose scores are all equal (one candidate, or ties throughout) carries no order: its scores become 0.

    Example: ``min_max_per_query(["q1", "q1", "q2"], [2.0, 4.0, 7.0])`` is ``[0.0, 1.0, 0.0]``.
    """
    frame = pd.DataFrame({"query": list(query_ids), "score": np.asarray(scores, dtype=float)})
    by_query = frame.groupby("query", sort=False)["score"]
    low, span = by_query.transform("min"), by_query.transform("max") - by_query.transform("min")
    return np.where(span > 0, (frame["score"] - low) / span.where(span > 0, 1.0), 0.0)


def fuse(query_ids: Sequence[str], first_stage: Sequence[float], trained: Sequence[float],
         first_stage_weight: float) -> np.ndarray:
    """One fused score per candidate row: `first_stage_weight` times the first stage's min-max normalised score
    plus the rest times the trained model's, both normalised within the candidate's query.

    Example: ``fuse(["q", "q"], [10.0, 0.0], [0.0, 1.0], 0.3)`` is ``[0.3, 0.7]``.
    """
    return (first_stage_weight * min_max_per_query(query_ids, first_stage)
            + (1.0 - first_stage_weight) * min_max_per_query(query_ids, trained))
