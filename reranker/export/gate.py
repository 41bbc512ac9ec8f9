"""The quality gate of an export variant: it scores the same candidates as the torch model, on the dev set and every
collection, and is compared with it on three levels:

- scores: the largest and the mean absolute difference (how far the backend's arithmetic strays);
- rankings, query by query: the share of queries whose top 1 and whose top at_k documents are unchanged, and the mean
  Kendall's tau between the two orderings of each query's candidates;
- quality: the primary metric's paired delta with its interval and p-value, as the evaluate stage reports gains.

The pass rule reads the rankings first, because they decide where an interval cannot: on 60 queries an ndcg
interval is about ±0.02 wide whatever the variant, while a variant that ranks as the torch model does has a tau
near 1 and an unchanged top 1 on nearly every query. A variant passes a set when its mean tau is at least
`min_kendall_tau`, its share of unchanged top 1 at least `min_top1_unchanged`, and its ndcg delta is not a
significant loss of more than `max_loss`; it ships when it passes every set.

Example::

    entry = compare_with_torch(reranking_set, torch_scores, variant_scores, params.evaluate.significance)
    # {"kendall_tau": 0.93, "top1_unchanged": 0.95, "top_k_unchanged": 0.62, "max_abs_score_diff": 0.41, ...,
    #  "delta": {"ndcg@10": {"delta": -0.0012, "ci_low": -0.004, "ci_high": 0.0011, "p_value": 0.41}, ...}}
    verdict({"dev": entry}, params.export.gate)  # -> [] (passed), or the reasons it failed
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reranker.evaluation.candidates import scores_to_run
from reranker.evaluation.reranking import means, measure_runs, versus
from reranker.evaluation.significance import significant


def ranking_agreement(candidates: pd.DataFrame, scores: np.ndarray, reference: np.ndarray, k: int) -> dict:
    """Per query, whether the top document and the set of the top `k` documents are the same under `scores` as
    under `reference`, and Kendall's tau-b between the two orderings of its candidates; each averaged over the
    queries. A query whose scores are constant under either has no ordering to compare and counts as tau 1."""
    from scipy import stats

    frame = pd.DataFrame({"query_id": candidates["query_id"].to_numpy(), "a": scores, "b": reference})
    top1, top_k, taus = [], [], []
    for _, group in frame.groupby("query_id", sort=False):
        a, b = group["a"].to_numpy(), group["b"].to_numpy()
        # stable sorts: ties broken by candidate order, as the runs break them
        order_a, order_b = np.argsort(-a, kind="stable"), np.argsort(-b, kind="stable")
        top1.append(order_a[0] == order_b[0])
        top_k.append(set(order_a[:k]) == set(order_b[:k]))
        tau = stats.kendalltau(a, b).statistic if len(a) > 1 else 1.0
        taus.append(1.0 if np.isnan(tau) else tau)
    return {"top1_unchanged": mean_share(top1), "top_k_unchanged": mean_share(top_k), "kendall_tau": mean_share(taus)}


def mean_share(values: list) -> float:
    return round(float(np.mean(values)), 4) if values else 1.0


def compare_with_torch(reranking_set: dict, torch_scores: np.ndarray, scores: np.ndarray, significance) -> dict:
    """One reranking set's comparison of a variant with the torch model. `reranking_set` is one entry of
    `reranking_sets`; `significance` is params.evaluate.significance."""
    candidates, at_k = reranking_set["candidates"], reranking_set["at_k"]
    runs = {"torch": scores_to_run(candidates, torch_scores), "variant": scores_to_run(candidates, scores)}
    values = measure_runs(runs, reranking_set["qrels"], at_k)
    difference = np.abs(np.asarray(scores, dtype=np.float64) - np.asarray(torch_scores, dtype=np.float64))
    entry = {"queries": len(next(iter(values["variant"].values()), {})), "primary": f"ndcg@{at_k}", "at_k": at_k,
             "max_abs_score_diff": round(float(difference.max()), 6) if len(difference) else 0.0,
             "mean_abs_score_diff": round(float(difference.mean()), 6) if len(difference) else 0.0,
             **ranking_agreement(candidates, scores, torch_scores, at_k),
             "variant": means(values["variant"]), "torch": means(values["torch"])}
    entry["delta"], entry["test"] = versus(values["variant"], values["torch"], significance, counts=False)
    return entry


def verdict(quality: dict[str, dict], gate) -> list[str]:
    """Why a variant fails the gate (empty: it passes). `quality` is set name -> compare_with_torch; `gate` is
    params.export.gate."""
    reasons = []
    for name, entry in quality.items():
        if entry["kendall_tau"] < gate.min_kendall_tau:
            reasons.append(f"{name}: mean Kendall's tau {entry['kendall_tau']:.3f} against the torch ranking is below "
                           f"{gate.min_kendall_tau:g}")
        if entry["top1_unchanged"] < gate.min_top1_unchanged:
            reasons.append(f"{name}: the top document is unchanged on {entry['top1_unchanged']:.0%} of queries, "
                           f"below {gate.min_top1_unchanged:.0%}")
        result = entry["delta"][entry["primary"]]
        if result["delta"] < -gate.max_loss and significant(result):
            reasons.append(f"{name}: {entry['primary']} {result['delta']:+.4f} [{result['ci_low']:+.4f}, "
                           f"{result['ci_high']:+.4f}], p {result['p_value']:g}, a significant loss of more than "
                           f"{gate.max_loss:g}")
    return reasons
