"""Step 5, evaluate: rerank the dev set and NanoBEIR, and classify the dev pairs, with a model. Run once for
the untrained base model (a stage of its own, cached while only training params change) and once for the
trained model, whose metrics JSON holds both and their difference."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sentence_transformers.cross_encoder import CrossEncoder
from transformers import set_seed

from reranker.cross_encoder import load_cross_encoder
from reranker.emissions import track_emissions
from reranker.errors import entrypoint
from reranker.evaluation.evaluators import run_evaluators
from reranker.evaluation.score_distribution import score_distribution
from reranker.outputs import atomic_output, write_json
from reranker.params import load_params


def with_deltas(trained: dict, base: dict) -> dict:
    """The trained results beside the base model's (the evaluate_base stage's file), with their difference."""
    report = {}
    for name, entry in trained.items():
        base_model = base.get(name, {}).get("base_model", {})
        report[name] = {
            "kind": entry["kind"],
            "trained": entry["trained"],
            "base_model": base_model,
            "delta": {metric: round(value - base_model[metric], 4)
                      for metric, value in entry["trained"].items() if metric in base_model},
            "retrieval": entry["retrieval"],
        }
    return report


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, help="a trained model folder; without it, the untrained base model")
    parser.add_argument("--base-metrics", type=Path, help="the base model's metrics, to compare against")
    parser.add_argument("--emissions", type=Path, required=True)
    parser.add_argument("--score-plot", type=Path, help="where to write the dev score distribution (trained model)")
    parser.add_argument("mine_dir", type=Path, help="the mine stage's folder: dev.parquet and dev_pairs.parquet")
    parser.add_argument("metrics", type=Path)
    paths = parser.parse_args()
    params = load_params()
    started = time.perf_counter()

    if paths.model is None:
        # 1. The base model exactly as training starts from it: same seed, same fresh score head
        set_seed(params.train.args.get("seed", 42))
        model = load_cross_encoder(params.train, params.tokenize.max_length)
        with track_emissions(params.emissions, paths.emissions, "evaluate_base"):
            results = run_evaluators(model, params.evaluate, paths.mine_dir, "base_model")
        write_json(paths.metrics, {**results, "seconds": round(time.perf_counter() - started, 1)})
        return

    # 2. The trained model beside the base model's cached metrics, with the difference
    model = CrossEncoder(str(paths.model), trust_remote_code=params.train.trust_remote_code)
    with track_emissions(params.emissions, paths.emissions, "evaluate"):
        trained = run_evaluators(model, params.evaluate, paths.mine_dir, "trained")
    if paths.score_plot:
        pairs = pd.read_parquet(paths.mine_dir / "dev_pairs.parquet")
        scores = model.predict(list(zip(pairs["query"], pairs["document"])), batch_size=params.evaluate.batch_size,
                               show_progress_bar=False)
        scores = np.asarray(scores).reshape(len(pairs), -1)[:, -1]  # a score per class: the last class's
        with atomic_output(paths.score_plot) as partial:
            score_distribution(scores, pairs["label"]).to_csv(partial, index=False)
    report = with_deltas(trained, json.loads(paths.base_metrics.read_text()))
    write_json(paths.metrics, {**report, "seconds": round(time.perf_counter() - started, 1)})
    for name, entry in report.items():
        print(f"evaluate: {name} " + ", ".join(f"{metric} {value:.4f} ({entry['delta'].get(metric, 0):+.4f})"
                                               for metric, value in entry["trained"].items()))


if __name__ == "__main__":
    main()
