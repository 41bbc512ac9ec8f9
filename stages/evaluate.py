"""Step 5b, evaluate: rerank the dev set and each evaluation collection's first-stage candidates with a model,
and run the classification and NanoBEIR evaluators. Run once for the untrained base model (a stage of its own,
cached while only training params change) and once for the trained model, which writes the TREC runs of the first
stage, the base model and the trained model, their per-query metrics, and the trained model's gains with their
confidence intervals and paired-test p-values."""

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
from reranker.evaluation.candidates import first_stage_run, scores_to_run
from reranker.evaluation.evaluators import run_evaluators
from reranker.evaluation.first_stage import write_trec_run
from reranker.evaluation.measures import write_per_query
from reranker.evaluation.reranking import (
    headline,
    means,
    measure_runs,
    report,
    reranking_sets,
    score_candidates,
    split_judged,
)
from reranker.evaluation.score_distribution import score_distribution
from reranker.evaluation.unjudged import unjudged_report, unjudged_top
from reranker.outputs import atomic_output, write_json
from reranker.params import load_sections

# The library's evaluators the evaluate stages still run; the dev reranking is one of the reranking sets
LIBRARY_EVALUATORS = ("classification", "nanobeir")


def evaluate_base(params, paths, started: float) -> None:
    """The base model exactly as training starts from it (same seed, same fresh score head): its scores of every
    reranking set, for the evaluate stage to compare with, and its metrics."""
    set_seed(params.train.args.get("seed", 42))
    model = load_cross_encoder(params.train, params.tokenize.max_length)
    sets = reranking_sets(params.evaluate, paths.mine_dir, paths.retrieve_dir)
    results = {}
    with track_emissions(params.emissions, paths.emissions, "evaluate_base"), atomic_output(paths.scores) as partial:
        partial.mkdir()
        for name, reranking_set in sets.items():
            candidates = reranking_set["candidates"]
            print(f"evaluate_base: scoring {name}, {len(candidates)} pairs", flush=True)
            scores = score_candidates(model, candidates, params.evaluate.batch_size, show_progress_bar=True)
            pd.DataFrame({"score": scores}).to_parquet(partial / f"{name}.parquet", index=False)
            runs = {"base_model": scores_to_run(candidates, scores), "first_stage": first_stage_run(candidates)}
            values, judged = split_judged(measure_runs(runs, reranking_set["qrels"], reranking_set["at_k"]))
            results[name] = {"kind": reranking_set["kind"], "base_model": means(values["base_model"]),
                             "retrieval": means(values["first_stage"]), "judged": judged}
        results.update(run_evaluators(model, params.evaluate, paths.mine_dir, "base_model", LIBRARY_EVALUATORS))
    write_json(paths.metrics, {**results, "seconds": round(time.perf_counter() - started, 1)})


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, help="a trained model folder; without it, the untrained base model")
    parser.add_argument("--base", type=Path, help="the evaluate_base stage's scores folder and metrics file",
                        nargs=2, metavar=("SCORES", "METRICS"))
    parser.add_argument("--scores", type=Path, help="(base model) where to write its scores of every set")
    parser.add_argument("--runs", type=Path, help="(trained model) where to write the TREC runs")
    parser.add_argument("--per-query", type=Path, help="(trained model) where to write the per-query metrics")
    parser.add_argument("--unjudged", type=Path, help="(trained model) where to write the unjudged top documents")
    parser.add_argument("--score-plot", type=Path, help="(trained model) where to write the dev score distribution")
    parser.add_argument("--emissions", type=Path, required=True)
    parser.add_argument("--summary", type=Path, help="(trained model) where to write the metrics' headline")
    parser.add_argument("mine_dir", type=Path, help="the mine stage's folder: dev.parquet and dev_pairs.parquet")
    parser.add_argument("retrieve_dir", type=Path, help="the retrieve stage's folder: one set per collection")
    parser.add_argument("metrics", type=Path)
    paths = parser.parse_args()
    params = load_sections("train", "tokenize", "evaluate", "emissions")
    started = time.perf_counter()
    if paths.model is None:
        evaluate_base(params, paths, started)
        return

    # 1. The trained model's scores of every reranking set, beside the first stage's and the base model's
    model = CrossEncoder(str(paths.model), trust_remote_code=params.train.trust_remote_code)
    base_scores, base_metrics = paths.base
    sets = reranking_sets(params.evaluate, paths.mine_dir, paths.retrieve_dir)
    results, dev_scores, unjudged = {}, {}, {}
    with track_emissions(params.emissions, paths.emissions, "evaluate"):
        with atomic_output(paths.runs) as runs_dir, atomic_output(paths.per_query) as per_query_dir:
            runs_dir.mkdir()  # empty when nothing is reranked (classification alone)
            per_query_dir.mkdir()
            for name, reranking_set in sets.items():
                candidates = reranking_set["candidates"]
                print(f"evaluate: scoring {name}, {len(candidates)} pairs", flush=True)
                scores = score_candidates(model, candidates, params.evaluate.batch_size, show_progress_bar=True)
                runs = {"first_stage": first_stage_run(candidates),
                        "base_model": scores_to_run(candidates, pd.read_parquet(base_scores / f"{name}.parquet")
                                                    ["score"].to_numpy()),
                        "trained": scores_to_run(candidates, scores)}
                # 2. The runs as TREC files and their per-query metrics: small, kept in git
                for run_name, run in runs.items():
                    write_trec_run(run, str(runs_dir / name / f"{run_name}.trec"), tag=run_name)
                values = measure_runs(runs, reranking_set["qrels"], reranking_set["at_k"])
                write_per_query(per_query_dir / f"{name}.csv", values)
                # 3. Means, the gain over each, its interval and p-value
                results[name] = report(reranking_set["kind"], values, params.evaluate.significance)
                if paths.unjudged:
                    holes = unjudged_top(candidates, scores, reranking_set["qrels"], reranking_set["at_k"])
                    unjudged[name] = unjudged_report(name, holes, results[name].get("judged", {}))
                if reranking_set["kind"] == "reranking":
                    dev_scores = dict(zip(zip(candidates["query"], candidates["document"]), scores))
        results.update(run_evaluators(model, params.evaluate, paths.mine_dir, "trained", LIBRARY_EVALUATORS,
                                      base=json.loads(base_metrics.read_text())))

    if paths.unjudged:  # a review list per set: what the measures count as misses without a judgment
        with atomic_output(paths.unjudged) as partial:
            partial.mkdir()
            for name, page in unjudged.items():
                (partial / f"{name}.md").write_text(page)

    # 4. The dev score distribution, from the scores above; pairs no set scored (labelled data) are scored here
    if paths.score_plot:
        pairs = pd.read_parquet(paths.mine_dir / "dev_pairs.parquet")
        keys = list(zip(pairs["query"], pairs["document"]))
        if missing := [key for key in dict.fromkeys(keys) if key not in dev_scores]:
            missing_frame = pd.DataFrame(missing, columns=["query", "document"])
            dev_scores.update(zip(missing, score_candidates(model, missing_frame, params.evaluate.batch_size)))
        with atomic_output(paths.score_plot) as partial:
            scores = np.array([dev_scores[key] for key in keys])
            score_distribution(scores, pairs["label"]).to_csv(partial, index=False)
    write_json(paths.metrics, {**results, "seconds": round(time.perf_counter() - started, 1)})
    if paths.summary:
        write_json(paths.summary, headline(results, alpha=1 - params.evaluate.significance.confidence))
    for name, entry in results.items():
        print(f"evaluate: {name} " + ", ".join(f"{metric} {value:.4f} ({entry['delta'].get(metric, 0):+.4f})"
                                               for metric, value in entry["trained"].items()))


if __name__ == "__main__":
    main()
