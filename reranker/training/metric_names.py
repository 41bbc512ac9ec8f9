"""The one place that knows metric names: what each evaluator reports, how the trainer logs it, and how its
keys split into evaluator, side and metric."""

from __future__ import annotations

import re

# What CrossEncoderRerankingEvaluator and CrossEncoderNanoBEIREvaluator report, and the pipeline's own reranking
# measures (reranker.evaluation.measures maps each to ir-measures), templated on the cut-off
RERANKING_METRICS = ("ndcg@{at_k}", "mrr@{at_k}", "map")


def reranking_metrics(at_k: int) -> tuple[str, ...]:
    """Example: ``reranking_metrics(10)`` is ``("ndcg@10", "mrr@10", "map")``."""
    return tuple(template.format(at_k=at_k) for template in RERANKING_METRICS)


def classification_metrics(num_labels: int) -> tuple[str, ...]:
    """What CrossEncoderClassificationEvaluator reports: threshold metrics for one score per pair, F1 averages
    for a score per class."""
    if num_labels == 1:
        return ("accuracy", "accuracy_threshold", "f1", "f1_threshold", "precision", "recall", "average_precision")
    return ("f1_macro", "f1_micro", "f1_weighted")


def primary_metric(kind: str, at_k: int, num_labels: int) -> str:
    """The metric a card puts first (and bold) for an evaluator of this kind."""
    if kind == "classification":  # a score per class (CrossEntropyLoss) has no threshold metrics
        return "average_precision" if num_labels == 1 else "f1_macro"
    return f"ndcg@{at_k}"


def nanobeir_mean_name(rerank_k: int) -> str:
    return f"NanoBEIR_R{rerank_k}_mean"


# "<evaluator>_<metric>" is the model's ranking, "<evaluator>_base_<metric>" the candidates' given order
# (the embedding model's retrieval for the dev set, BM25 for NanoBEIR).
EVALUATOR_KEY = re.compile(
    r"^(?P<name>.+?)_(?P<base>base_)?(?P<metric>map|mrr@\d+|ndcg@\d+|"
    + "|".join(dict.fromkeys([*classification_metrics(1), *classification_metrics(2)])) + ")$"
)


def split_evaluator_key(key: str) -> tuple[str, bool, str] | None:
    """An evaluator's result key as (evaluator name, is the candidates' own order, metric), or None.

    Example: ``split_evaluator_key("dev_base_ndcg@10")`` is ``("dev", True, "ndcg@10")``.
    """
    match = EVALUATOR_KEY.match(key)
    return (match["name"], bool(match["base"]), match["metric"]) if match else None
