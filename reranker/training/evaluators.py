"""The sentence-transformers evaluators that params.evaluate configures, built the same way for training (at
each evaluation step) and for the evaluate stages, and their results in the pipeline's one metrics schema."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sentence_transformers.cross_encoder.evaluation import (
    CrossEncoderClassificationEvaluator,
    CrossEncoderNanoBEIREvaluator,
    CrossEncoderRerankingEvaluator,
)

from reranker.core.errors import PipelineError
from reranker.core.paths import outside_path
from reranker.core.relevance import is_relevant
from reranker.training.metric_names import nanobeir_mean_name, split_evaluator_key

EVALUATOR_ORDER = ("reranking", "classification", "nanobeir")
# The evaluators the evaluate stages run through the library; the dev reranking is one of the pipeline's reranking sets
LIBRARY_EVALUATORS = ("classification", "nanobeir")


def build_evaluators(evaluate, mine_dir: Path, names=EVALUATOR_ORDER) -> dict[str, object]:
    """Kind -> evaluator, for the kinds of `evaluate` (params.evaluate) that are configured and named: dev
    reranking (the mined candidates), classification (the labelled dev pairs, relevant by the one relevance
    rule) and NanoBEIR.

    Example: ``build_evaluators(params.evaluate, Path("data/mine"), names=params.train.evaluators)``.
    """
    evaluators = {}
    if "reranking" in names and evaluate.reranking is not None:  # the mine stage's candidates, in retrieval order
        dev, reranking = pd.read_parquet(mine_dir / "dev.parquet"), evaluate.reranking
        evaluators["reranking"] = CrossEncoderRerankingEvaluator(
            samples=[{"query": query, "positive": list(positives), "documents": list(documents)}
                     for query, positives, documents in zip(dev["query"], dev["positives"], dev["documents"])],
            name=reranking.name, at_k=reranking.at_k, always_rerank_positives=reranking.always_rerank_positives,
            batch_size=evaluate.batch_size, write_csv=False,
        )
    if "classification" in names and evaluate.classification is not None:
        pairs = pd.read_parquet(mine_dir / "dev_pairs.parquet")
        evaluators["classification"] = CrossEncoderClassificationEvaluator(
            sentence_pairs=list(zip(pairs["query"], pairs["document"])),
            labels=is_relevant(pairs["label"]).astype(int).tolist(),
            name=evaluate.classification.name, batch_size=evaluate.batch_size, write_csv=False,
        )
    if "nanobeir" in names and evaluate.nanobeir is not None:
        nanobeir = evaluate.nanobeir
        dataset_id = outside_path(nanobeir.dataset_id)
        if dataset_id.startswith((".", "/")) and not Path(dataset_id).is_dir():
            raise PipelineError(f"evaluate.nanobeir.dataset_id '{nanobeir.dataset_id}' does not exist; give a "
                                "NanoBEIR-layout folder, a hub id such as sentence-transformers/NanoBEIR-en, or set "
                                "nanobeir: null")
        evaluators["nanobeir"] = CrossEncoderNanoBEIREvaluator(
            dataset_names=nanobeir.dataset_names, dataset_id=dataset_id, rerank_k=nanobeir.rerank_k,
            at_k=nanobeir.at_k, always_rerank_positives=nanobeir.always_rerank_positives,
            batch_size=evaluate.batch_size, write_csv=False,
        )
    return evaluators


def run_evaluators(model, evaluate, mine_dir: Path, side: str, names=EVALUATOR_ORDER,
                   base: dict | None = None) -> dict:
    """The configured evaluators among `names` on `model`, in the one metrics schema: evaluator name ->
    {"kind": ..., side: {metric: value}, "first_stage": {metric: value}} where `side` is "base_model" or "trained"
    and "first_stage" is the candidates' own order (BM25 for NanoBEIR; none for classification). With `base` (the
    evaluate_base stage's metrics), each entry also holds the base model's values and the trained model's delta.

    Example: ``run_evaluators(model, params.evaluate, Path("data/mine"), "trained")["dev"]["trained"]["ndcg@10"]``.
    """
    results: dict[str, dict] = {}
    for kind, evaluator in build_evaluators(evaluate, mine_dir, names).items():
        for key, value in evaluator(model).items():
            if (parts := split_evaluator_key(key)) is None:
                continue
            name, is_retrieval, metric = parts
            is_mean = kind == "nanobeir" and name == nanobeir_mean_name(evaluate.nanobeir.rerank_k)
            entry = results.setdefault(name, {"kind": "nanobeir_mean" if is_mean else kind, side: {},
                                              "first_stage": {}})
            entry["first_stage" if is_retrieval else side][metric] = round(float(value), 4)
    for name, entry in results.items() if base is not None else ():
        base_model = base.get(name, {}).get("base_model", {})
        results[name] = {"kind": entry["kind"], "trained": entry["trained"], "base_model": base_model,
                         "delta": {metric: round(value - base_model[metric], 4)
                                   for metric, value in entry["trained"].items() if metric in base_model},
                         "first_stage": entry["first_stage"]}
    return results
