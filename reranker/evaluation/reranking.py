"""Reranking evaluation: score every candidate of a reranking set once, and measure the runs (first stage, base
model, trained model) per query, with the paired significance of the trained model's gains.

sentence-transformers' CrossEncoderRerankingEvaluator reports means only; per-query values (ir-measures) are what a
paired test and an interval need, so the evaluate stages score the sets themselves. On the same ranking the
measures agree with the evaluator's (tests/test_significance.py), apart from TREC's rule that a relevant document
the first stage missed counts as a miss (see reranker.evaluation.measures)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from reranker.evaluation.candidates import dev_reranking_set, judged_relevant, read_set
from reranker.evaluation.measures import JUDGED, judged, per_query
from reranker.evaluation.metric_names import primary_metric
from reranker.evaluation.significance import compare_paired, significant

# The trained model is compared with these runs, each under its name in the metrics
COMPARED_WITH = {"retrieval": "first_stage", "base_model": "base_model"}


def reranking_sets(evaluate, mine_dir: Path, retrieve_dir: Path) -> dict[str, dict]:
    """Name -> {"kind", "at_k", "candidates", "qrels"} for the dev set (when evaluate.reranking is set) and each
    of evaluate.collections (the retrieve stage's output); `evaluate` is params.evaluate."""
    sets = {}
    if evaluate.reranking is not None:
        candidates, qrels = dev_reranking_set(pd.read_parquet(mine_dir / "dev.parquet"))
        sets[evaluate.reranking.name] = {"kind": "reranking", "at_k": evaluate.reranking.at_k,
                                         "candidates": candidates, "qrels": qrels}
    for collection in evaluate.collections:
        candidates, qrels = read_set(retrieve_dir / collection.name)
        sets[collection.name] = {"kind": "collection", "at_k": collection.at_k, "candidates": candidates,
                                 "qrels": qrels}
    return sets


def score_candidates(model, candidates: pd.DataFrame, batch_size: int, show_progress_bar: bool = False) -> np.ndarray:
    """One score per candidate row. Each (query, document) of a set is distinct, so each pair is scored once;
    the model batches them by length. A score per class (num_labels > 1) ranks by the last class.
    `show_progress_bar` shows the model's bar over the batches, on a terminal only."""
    pairs = list(zip(candidates["query"], candidates["document"]))
    # the library draws its bar whenever asked (tqdm's disable=False): ask only on a terminal
    progress = show_progress_bar and sys.stderr.isatty()
    scores = model.predict(pairs, batch_size=batch_size, show_progress_bar=progress) if pairs else np.zeros(0)
    return np.asarray(scores, dtype=float).reshape(len(pairs), -1)[:, -1]


def measure_runs(runs: dict, qrels: dict, at_k: int) -> dict[str, dict[str, dict[str, float]]]:
    """Run name -> measure -> query id -> value, every judged query counted; judged@k last, from every judgment
    (relevant or not), the other measures from the relevant ones."""
    relevant = judged_relevant(qrels)
    return {name: {**per_query(relevant, run, at_k), JUDGED.format(at_k=at_k): judged(qrels, run, at_k)}
            for name, run in runs.items()}


def means(values: dict[str, dict[str, float]]) -> dict[str, float]:
    return {measure: round(float(np.mean(list(by_query.values()))), 4) for measure, by_query in values.items()}


def split_judged(values: dict) -> tuple[dict, dict]:
    """(`values` without judged@k, the `judged` entry of the metrics: the measure's name and each run's mean, runs
    named as in the metrics). Judged@k describes the judgments, not the ranking's quality: it is reported beside
    the measures, never tested. Example: ``split_judged(measure_runs(runs, qrels, 10))[1]["trained"]``."""
    names = {"first_stage": "retrieval", "base_model": "base_model", "trained": "trained"}
    first = next(iter(values.values()), {})
    judged_name = next((measure for measure in first if measure.startswith("judged@")), None)
    if judged_name is None:
        return values, {}
    entry = {"measure": judged_name}
    for run, by_measure in values.items():
        entry[names.get(run, run)] = round(float(np.mean(list(by_measure[judged_name].values()) or [0.0])), 4)
    rest = {run: {m: v for m, v in by_measure.items() if m != judged_name} for run, by_measure in values.items()}
    return rest, entry


def report(kind: str, values: dict, significance) -> dict:
    """A reranking set's metrics entry: each run's means, the trained model's delta to the base model, and for
    each measure its paired comparison with the first stage (`vs_retrieval`) and the base model
    (`vs_base_model`): delta, confidence interval and p-value. `significance` is params.evaluate.significance."""
    values, judged_entry = split_judged(values)
    entry = {"kind": kind, "trained": means(values["trained"]), "base_model": means(values["base_model"]),
             "retrieval": means(values["first_stage"])}
    if judged_entry:
        entry["judged"] = judged_entry
    entry["delta"] = {measure: round(entry["trained"][measure] - entry["base_model"][measure], 4)
                      for measure in entry["trained"]}
    for name, run in COMPARED_WITH.items():
        entry[f"vs_{name}"] = {}
        for measure in values["trained"]:
            result = compare_paired(values["trained"][measure], values[run][measure],
                                    confidence=significance.confidence, resamples=significance.resamples,
                                    seed=significance.seed)
            entry["test"] = result.pop("test")  # the same words for every comparison: said once
            entry[f"vs_{name}"][measure] = result
    return entry


def headline(results: dict, alpha: float = 0.05) -> dict:
    """The few numbers of the trained model's metrics that `dvc exp show` shows (the full `results` stay in their
    own file, for the card and the tests): per reranking set, its primary measure (ndcg@k), its gain over the first
    stage (`vs_first_stage`), whether that gain is `significant` (its interval excludes 0 and its p-value is under
    `alpha`, the card's rule) and the p-value; per other evaluator (classification, the NanoBEIR mean), its primary
    metric and its gain over the base model (`vs_base_model`). Each NanoBEIR dataset's own entry is left out.

    Example: ``headline(results, alpha=0.05)["dev"]`` is
    ``{"ndcg@10": 0.61, "vs_first_stage": 0.05, "significant": True, "p_value": 0.003}``.
    """
    summary = {}
    for name, entry in results.items():
        if not isinstance(entry, dict) or entry["kind"] == "nanobeir":
            continue
        trained = entry["trained"]
        if entry["kind"] == "classification":  # threshold metrics are reported for one score per pair
            metric = primary_metric("classification", 0, 1 if "average_precision" in trained else 2)
        else:
            metric = next(measure for measure in trained if measure.startswith("ndcg@"))
        if "vs_retrieval" in entry:
            comparison = entry["vs_retrieval"][metric]
            summary[name] = {metric: trained[metric], "vs_first_stage": comparison["delta"],
                             "significant": significant(comparison, alpha), "p_value": comparison["p_value"]}
        else:
            summary[name] = {metric: trained[metric], "vs_base_model": entry["delta"].get(metric)}
    return summary
