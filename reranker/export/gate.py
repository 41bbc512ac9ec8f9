"""The quality gate of an export variant: it reranks the same candidates as the torch model, on the dev set and
every collection, and is compared with it query by query with the evaluate stage's own measures and paired test.

Example::

    entry = compare_with_torch(reranking_set, torch_scores, variant_scores, params.evaluate.significance)
    # {"ndcg@10": {"delta": -0.0012, "ci_low": -0.004, "ci_high": 0.0011, "p_value": 0.41}, ...,
    #  "top_k_changed": 0.05, "queries": 60, "primary": "ndcg@10", "test": "..."}
    verdict({"dev": entry}, max_loss=0.01)  # -> [] (passed), or the reasons it failed
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reranker.evaluation.candidates import scores_to_run
from reranker.evaluation.reranking import means, measure_runs, versus


def top_k_changed(candidates: pd.DataFrame, scores: np.ndarray, reference: np.ndarray, k: int) -> float:
    """The share of queries whose top k documents, in order, differ between two score vectors of the candidates."""
    frame = pd.DataFrame({"query_id": candidates["query_id"].to_numpy(), "doc_id": candidates["doc_id"].to_numpy(),
                          "a": scores, "b": reference})
    def top(group: pd.DataFrame, column: str) -> list:
        return list(group.nlargest(k, column, keep="first")["doc_id"])

    changed = [top(group, "a") != top(group, "b") for _, group in frame.groupby("query_id", sort=False)]
    return round(float(np.mean(changed)), 4) if changed else 0.0


def compare_with_torch(reranking_set: dict, torch_scores: np.ndarray, scores: np.ndarray, significance) -> dict:
    """One reranking set's comparison of a variant with the torch model: each measure's paired delta, interval and
    p-value (`versus`), the variant's means, and the share of queries whose top at_k changed.
    `reranking_set` is one entry of `reranking_sets`; `significance` is params.evaluate.significance."""
    candidates, at_k = reranking_set["candidates"], reranking_set["at_k"]
    runs = {"torch": scores_to_run(candidates, torch_scores), "variant": scores_to_run(candidates, scores)}
    values = measure_runs(runs, reranking_set["qrels"], at_k)
    entry = {"queries": len(next(iter(values["variant"].values()), {})), "primary": f"ndcg@{at_k}",
             "variant": means(values["variant"]), "torch": means(values["torch"])}
    entry["delta"], entry["test"] = versus(values["variant"], values["torch"], significance, counts=False)
    entry["top_k_changed"] = top_k_changed(candidates, scores, torch_scores, at_k)
    # The largest score difference says how far the backend's arithmetic strays, whatever the ranking does
    entry["max_abs_score_diff"] = round(float(np.max(np.abs(scores - torch_scores))), 6) if len(scores) else 0.0
    return entry


def verdict(quality: dict[str, dict], max_loss: float) -> list[str]:
    """Why a variant fails the gate (empty: it passes): on each set, the lower bound of its primary metric's
    interval versus the torch model must not fall below -max_loss. `quality` is set name -> compare_with_torch."""
    reasons = []
    for name, entry in quality.items():
        result = entry["delta"][entry["primary"]]
        if result["ci_low"] < -max_loss:
            reasons.append(f"{name}: {entry['primary']} {result['delta']:+.4f} [{result['ci_low']:+.4f}, "
                           f"{result['ci_high']:+.4f}] reaches below -{max_loss:g}")
    return reasons
