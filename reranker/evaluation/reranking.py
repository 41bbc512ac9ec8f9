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

from reranker.core.outputs import atomic_output
from reranker.evaluation.baselines import BASELINES
from reranker.evaluation.candidates import dev_reranking_set, judged_relevant, read_set
from reranker.evaluation.measures import JUDGED, judged, per_query
from reranker.evaluation.significance import compare_paired, significant
from reranker.training.metric_names import primary_metric


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
    """One score per candidate row, each (query, document) of a set being distinct; a score per class
    (num_labels > 1) ranks by the last class. `show_progress_bar` shows the model's bar, on a terminal only."""
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
    first = next(iter(values.values()), {})
    judged_name = next((measure for measure in first if measure.startswith("judged@")), None)
    if judged_name is None:
        return values, {}
    entry = {"measure": judged_name}
    for run, by_measure in values.items():
        entry[run] = round(float(np.mean(list(by_measure[judged_name].values()) or [0.0])), 4)
    rest = {run: {m: v for m, v in by_measure.items() if m != judged_name} for run, by_measure in values.items()}
    return rest, entry


def report(kind: str, values: dict, significance, first_stage_weight: float | None = None) -> dict:
    """A reranking set's metrics entry: each run's means, and for each measure the trained model's paired
    comparison with the first stage (`vs_first_stage`) and with each baseline scored (`vs_embedding_model`,
    `vs_teacher`, `vs_base_model`): delta, confidence interval, p-value, and how many queries got better, worse
    or stayed the same (as PyTerrier's pt.Experiment counts them). `significance` is params.evaluate.significance.
    A `fused` run (the trained model fused with the first stage at `first_stage_weight`, evaluate.fusion) gets an
    entry of its own, `fused`, with the same comparisons and one with the trained model (`vs_trained`); the trained
    model's entry is the same with or without it.

    Example: ``report("collection", measure_runs(runs, qrels, 10), params.evaluate.significance)["vs_first_stage"]``.
    """
    values, judged_entry = split_judged(values)
    values = dict(values)
    fused = values.pop("fused", None)
    fused_judged = judged_entry.pop("fused", None)
    entry = {"kind": kind, "trained": means(values["trained"]), "first_stage": means(values["first_stage"]),
             **{name: means(values[name]) for name in BASELINES if name in values}}
    if judged_entry:
        entry["judged"] = judged_entry
    if "base_model" in values:
        entry["delta"] = {measure: round(entry["trained"][measure] - entry["base_model"][measure], 4)
                          for measure in entry["trained"]}
    compared = ["first_stage", *(name for name in BASELINES if name in values)]
    for run in compared:
        entry[f"vs_{run}"], entry["test"] = versus(values["trained"], values[run], significance)
    if fused is not None:
        entry["fused"] = {"first_stage_weight": first_stage_weight, "means": means(fused)}
        if fused_judged is not None:
            entry["fused"]["judged"] = fused_judged
        for run in [*compared, "trained"]:
            entry["fused"][f"vs_{run}"], _ = versus(fused, values[run], significance)
    return entry


def versus(ours: dict, theirs: dict, significance, counts: bool = True) -> tuple[dict, str]:
    """Per measure of `ours`, its paired comparison with `theirs` (measure -> query id -> value, both): delta,
    interval and p-value (`compare_paired`), and with `counts` the queries better/worse/same; and the tests in
    words, the same for every comparison."""
    compared, test = {}, ""
    for measure in ours:
        result = compare_paired(ours[measure], theirs[measure], confidence=significance.confidence,
                                resamples=significance.resamples, seed=significance.seed)
        test = result.pop("test")
        compared[measure] = {**result, **(win_loss(ours[measure], theirs[measure]) if counts else {})}
    return compared, test


def win_loss(ours: dict[str, float], theirs: dict[str, float]) -> dict[str, int]:
    """Queries whose value went up, down or stayed the same, paired by query id.

    Example: ``win_loss({"q1": 0.5, "q2": 1.0}, {"q1": 0.2, "q2": 1.0})`` is
    ``{"better": 1, "worse": 0, "same": 1}``.
    """
    deltas = np.array([ours[query] - theirs[query] for query in ours])
    return {"better": int((deltas > 1e-12).sum()), "worse": int((deltas < -1e-12).sum()),
            "same": int((np.abs(deltas) <= 1e-12).sum())}


def sorted_gains(ours: dict[str, float], theirs: dict[str, float]) -> pd.DataFrame:
    """The per-query gains of `ours` over `theirs`, sorted, one row per query (`rank`, `query_id`, `gain`): the
    per-query delta plot."""
    gains = sorted(((ours[query] - theirs[query], query) for query in ours), key=lambda item: (item[0], item[1]))
    return pd.DataFrame({"rank": range(1, len(gains) + 1), "query_id": [q for _, q in gains],
                         "gain": [round(g, 6) for g, _ in gains]})


def write_gains(folder, gains: dict[str, pd.DataFrame]) -> None:
    """Each set's sorted per-query gains (`sorted_gains`) as `<set>.csv` in `folder`, for `dvc plots`."""
    with atomic_output(folder) as partial:
        partial.mkdir()
        for name, frame in gains.items():
            frame.to_csv(partial / f"{name}.csv", index=False)


def result_lines(results: dict) -> list[str]:
    """The evaluate stage's log: per set the trained model's measures with their gain over the first stage, and the
    fused ranking's with its gain over the trained model."""
    lines = []
    for name, entry in results.items():
        versus = entry.get("vs_first_stage") or {}
        lines.append(f"evaluate: {name} " + ", ".join(
            f"{metric} {value:.4f}" + (f" ({versus[metric]['delta']:+.4f} vs first stage)" if metric in versus else "")
            for metric, value in entry["trained"].items()))
        if "fused" in entry:
            fused = entry["fused"]
            lines.append(f"evaluate: {name} fused with the first stage at weight {fused['first_stage_weight']}: "
                         + ", ".join(f"{metric} {value:.4f} ({fused['vs_trained'][metric]['delta']:+.4f} vs trained)"
                                     for metric, value in fused["means"].items()))
    return lines


def direction(comparison: dict, alpha: float) -> str:
    """A paired comparison in words, by the card's rule at `alpha`: "better", "worse" or "no significant
    difference". Example: ``direction({"delta": -0.1, "ci_low": -0.16, "ci_high": -0.05, "p_value": 0.0004}, 0.05)``
    is "worse"."""
    if not significant(comparison, alpha):
        return "no significant difference"
    return "better" if comparison["delta"] > 0 else "worse"


def headline(results: dict, alpha: float = 0.05) -> dict:
    """The few numbers of the trained model's metrics that `dvc exp show` shows (the full `results` stay in their
    own file): per reranking set its ndcg@k; its gain over the first stage, in words (`than_first_stage`: better,
    worse or no significant difference, the card's rule at `alpha`) and its p-value; the same over the embedding
    model and the teacher; and the fused ranking's (`fused`); per other evaluator, its primary metric and its gain
    over the base model. Each NanoBEIR dataset's own entry is left out.

    Example: ``headline(results, alpha=0.05)["dev"]`` is ``{"ndcg@10": 0.61, "vs_first_stage": 0.05,
    "than_first_stage": "better", "p_value": 0.003, "vs_embedding_model": -0.01,
    "than_embedding_model": "no significant difference"}``.
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
        if "vs_first_stage" in entry:
            comparison = entry["vs_first_stage"][metric]
            summary[name] = {metric: trained[metric], "vs_first_stage": comparison["delta"],
                             "than_first_stage": direction(comparison, alpha), "p_value": comparison["p_value"]}
            for baseline in ("embedding_model", "teacher"):
                if f"vs_{baseline}" in entry:
                    summary[name][f"vs_{baseline}"] = entry[f"vs_{baseline}"][metric]["delta"]
                    summary[name][f"than_{baseline}"] = direction(entry[f"vs_{baseline}"][metric], alpha)
            if "fused" in entry:
                summary[name]["fused"] = {metric: entry["fused"]["means"][metric],
                                          "vs_first_stage": entry["fused"]["vs_first_stage"][metric]["delta"]}
        else:
            summary[name] = {metric: trained[metric], "vs_base_model": entry["delta"].get(metric)}
    return summary
