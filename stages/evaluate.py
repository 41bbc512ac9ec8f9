"""Step 5, evaluate: rerank the dev set and NanoBEIR with a model. Run once for the untrained base model
(a stage of its own, cached while only training params change) and once for the trained model, whose
metrics JSON holds both and their difference."""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import pandas as pd
from sentence_transformers.cross_encoder import CrossEncoder
from sentence_transformers.cross_encoder.evaluation import (
    CrossEncoderNanoBEIREvaluator, CrossEncoderRerankingEvaluator,
)
from transformers import set_seed

from stages.common import PipelineError, entrypoint, load_params, track_emissions, write_json
from stages.train import load_model

# "<evaluator>_<metric>" is the model's ranking, "<evaluator>_base_<metric>" the candidates' given order
# (the embedding model's retrieval for the dev set, BM25 for NanoBEIR).
METRIC_KEY = re.compile(r"^(?P<name>.+?)_(?P<base>base_)?(?P<metric>map|mrr@\d+|ndcg@\d+)$")


def evaluate(model: CrossEncoder, params, dev: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    e = params.evaluate
    evaluators = [CrossEncoderRerankingEvaluator(
        samples=[{"query": q, "positive": list(pos), "documents": list(docs)}
                 for q, pos, docs in zip(dev["query"], dev["positives"], dev["documents"])],
        name=e.reranking.name, at_k=e.reranking.at_k, always_rerank_positives=e.reranking.always_rerank_positives,
        batch_size=e.batch_size, write_csv=False,
    )]
    if e.nanobeir is not None:
        n = e.nanobeir
        if n.dataset_id.startswith((".", "/")) and not Path(n.dataset_id).is_dir():
            raise PipelineError(f"evaluate.nanobeir.dataset_id '{n.dataset_id}' does not exist; give a NanoBEIR-layout "
                                "folder, a hub id such as sentence-transformers/NanoBEIR-en, or set nanobeir: null")
        evaluators.append(CrossEncoderNanoBEIREvaluator(
            dataset_names=n.dataset_names, dataset_id=n.dataset_id, rerank_k=n.rerank_k, at_k=n.at_k,
            always_rerank_positives=n.always_rerank_positives, batch_size=e.batch_size, write_csv=False,
        ))
    results: dict[str, dict[str, dict[str, float]]] = {}
    for evaluator in evaluators:
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
    parser.add_argument("dev_samples", type=Path)
    parser.add_argument("metrics", type=Path)
    a = parser.parse_args()
    params = load_params()
    dev = pd.read_parquet(a.dev_samples)
    started = time.perf_counter()

    if a.model is None:
        # 1. The base model exactly as training starts from it: same seed, same fresh score head
        set_seed(params.train.args.get("seed", 42))
        model = load_model(params.train.base_model, params.train.activation_fn, params.tokenize.max_length)
        with track_emissions(params.emissions, a.emissions, "evaluate_base"):
            results = evaluate(model, params, dev)
        write_json(a.metrics, {**results, "seconds": round(time.perf_counter() - started, 1)})
        return

    # 2. The trained model beside the base model's cached metrics, with the difference
    with track_emissions(params.emissions, a.emissions, "evaluate"):
        trained = evaluate(CrossEncoder(str(a.model)), params, dev)
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
