"""Step 5, evaluate: rerank the dev set and NanoBEIR, and classify the dev pairs, with a model. Run once for the untrained base model
(a stage of its own, cached while only training params change) and once for the trained model, whose
metrics JSON holds both and their difference."""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sentence_transformers.cross_encoder import CrossEncoder
from sentence_transformers.cross_encoder.evaluation import (
    CrossEncoderClassificationEvaluator, CrossEncoderNanoBEIREvaluator, CrossEncoderRerankingEvaluator,
)
from transformers import set_seed

from stages.common import (
    PipelineError, atomic_output, classification_metrics, entrypoint, load_model, load_params, outside_path,
    track_emissions, write_json,
)

# "<evaluator>_<metric>" is the model's ranking, "<evaluator>_base_<metric>" the candidates' given order
# (the embedding model's retrieval for the dev set, BM25 for NanoBEIR).
# The classification names are those common.classification_metrics lists, for one score or a score per class.
METRIC_KEY = re.compile(r"^(?P<name>.+?)_(?P<base>base_)?(?P<metric>map|mrr@\d+|ndcg@\d+|"
                        + "|".join(dict.fromkeys([*classification_metrics(1), *classification_metrics(2)])) + ")$")
EVALUATOR_ORDER = ["reranking", "classification", "nanobeir"]


def relevant(labels: pd.Series) -> np.ndarray:
    """Which labelled dev pairs count as relevant: float labels from 0.5 up."""
    return (labels >= 0.5).to_numpy()


def record_predictions(model: CrossEncoder) -> dict[tuple[str, str], float]:
    """Keep every pair score the evaluators compute, so that the score distribution costs no second pass
    over the dev pairs an evaluator already scored."""
    scored, predict = {}, model.predict

    def predict_and_record(inputs, *args, **kwargs):
        scores = predict(inputs, *args, **kwargs)
        if isinstance(inputs, list) and inputs and not isinstance(inputs[0], str):
            scored.update(zip(map(tuple, inputs), np.asarray(scores).reshape(len(inputs), -1)[:, -1]))
        return scores

    model.predict = predict_and_record
    return scored


def score_distribution(model: CrossEncoder, scored: dict, pairs: pd.DataFrame, batch_size: int,
                       bins: int = 20) -> pd.DataFrame:
    """Share of positive and of negative dev pairs per score bin, for `dvc plots`; only pairs that no
    evaluator scored (all of them when only NanoBEIR ran) are predicted here."""
    keys = list(zip(pairs["query"], pairs["document"]))
    if missing := list(dict.fromkeys(key for key in keys if key not in scored)):
        model.predict(missing, batch_size=batch_size, show_progress_bar=False)  # recorded into `scored`
    scores = np.array([scored[key] for key in keys])
    relevant_pairs = relevant(pairs["label"])
    edges = np.histogram_bin_edges(scores, bins=bins)
    shares = {name: np.histogram(scores[mask], bins=edges)[0] / max(mask.sum(), 1)
              for name, mask in (("positive", relevant_pairs), ("negative", ~relevant_pairs))}
    return pd.DataFrame({"score": ((edges[:-1] + edges[1:]) / 2).round(4), **shares})


def reranking_evaluator(params, dev: pd.DataFrame) -> CrossEncoderRerankingEvaluator:
    """The dev reranking set (the mine stage's candidates, in retrieval order), as training and evaluate see it."""
    r = params.evaluate.reranking
    return CrossEncoderRerankingEvaluator(
        samples=[{"query": q, "positive": list(pos), "documents": list(docs)}
                 for q, pos, docs in zip(dev["query"], dev["positives"], dev["documents"])],
        name=r.name, at_k=r.at_k, always_rerank_positives=r.always_rerank_positives,
        batch_size=params.evaluate.batch_size, write_csv=False,
    )


def build_evaluators(params, mine_dir: Path, names=EVALUATOR_ORDER) -> list:
    """The evaluators of params.evaluate that are configured and named: dev reranking (the mined candidates),
    classification (the labelled dev pairs; labels from 0.5 count as relevant) and NanoBEIR."""
    e = params.evaluate
    evaluators = []
    if "reranking" in names and e.reranking is not None:
        evaluators.append(reranking_evaluator(params, pd.read_parquet(mine_dir / "dev.parquet")))
    if "classification" in names and e.classification is not None:
        pairs = pd.read_parquet(mine_dir / "dev_pairs.parquet")
        evaluators.append(CrossEncoderClassificationEvaluator(
            sentence_pairs=list(zip(pairs["query"], pairs["document"])), labels=relevant(pairs["label"]).astype(int).tolist(),
            name=e.classification.name, batch_size=e.batch_size, write_csv=False,
        ))
    if "nanobeir" in names and e.nanobeir is not None:
        n = e.nanobeir
        dataset_id = outside_path(n.dataset_id)
        if dataset_id.startswith((".", "/")) and not Path(dataset_id).is_dir():
            raise PipelineError(f"evaluate.nanobeir.dataset_id '{n.dataset_id}' does not exist; give a NanoBEIR-layout "
                                "folder, a hub id such as sentence-transformers/NanoBEIR-en, or set nanobeir: null")
        evaluators.append(CrossEncoderNanoBEIREvaluator(
            dataset_names=n.dataset_names, dataset_id=dataset_id, rerank_k=n.rerank_k, at_k=n.at_k,
            always_rerank_positives=n.always_rerank_positives, batch_size=e.batch_size, write_csv=False,
        ))
    return evaluators


def evaluate(model: CrossEncoder, params, mine_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    results: dict[str, dict[str, dict[str, float]]] = {}
    for evaluator in build_evaluators(params, mine_dir):
        for key, value in evaluator(model).items():
            if match := METRIC_KEY.match(key):
                side = "retrieval" if match["base"] else "model"
                results.setdefault(match["name"], {}).setdefault(side, {})[match["metric"]] = round(float(value), 4)
    return results


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, help="a trained model folder; without it, the untrained base model")
    parser.add_argument("--base-metrics", type=Path, help="the base model's metrics, to compare against")
    parser.add_argument("--emissions", type=Path, required=True)
    parser.add_argument("--score-plot", type=Path, help="where to write the dev score distribution (trained model)")
    parser.add_argument("mine_dir", type=Path, help="the mine stage's folder: dev.parquet and dev_pairs.parquet")
    parser.add_argument("metrics", type=Path)
    a = parser.parse_args()
    params = load_params()
    started = time.perf_counter()

    if a.model is None:
        # 1. The base model exactly as training starts from it: same seed, same fresh score head
        set_seed(params.train.args.get("seed", 42))
        model = load_model(params)
        with track_emissions(params.emissions, a.emissions, "evaluate_base"):
            results = evaluate(model, params, a.mine_dir)
        write_json(a.metrics, {**results, "seconds": round(time.perf_counter() - started, 1)})
        return

    # 2. The trained model beside the base model's cached metrics, with the difference
    model = CrossEncoder(str(a.model), trust_remote_code=params.train.trust_remote_code)
    scored = record_predictions(model)
    with track_emissions(params.emissions, a.emissions, "evaluate"):
        trained = evaluate(model, params, a.mine_dir)
    if a.score_plot:
        distribution = score_distribution(model, scored, pd.read_parquet(a.mine_dir / "dev_pairs.parquet"),
                                          params.evaluate.batch_size)
        with atomic_output(a.score_plot) as partial:
            distribution.to_csv(partial, index=False)
    base = json.loads(a.base_metrics.read_text())
    report = {}
    for name, sides in trained.items():
        base_model = base.get(name, {}).get("model", {})
        report[name] = {
            "trained": sides["model"],
            "base_model": base_model,
            "delta": {m: round(v - base_model[m], 4) for m, v in sides["model"].items() if m in base_model},
            "retrieval": sides.get("retrieval", {}),
        }
    write_json(a.metrics, {**report, "seconds": round(time.perf_counter() - started, 1)})
    for name, r in report.items():
        print(f"evaluate: {name} " + ", ".join(f"{m} {v:.4f} ({r['delta'].get(m, 0):+.4f})" for m, v in r["trained"].items()))


if __name__ == "__main__":
    main()
