"""Step 9, evaluate: rerank the dev set and each evaluation collection's first-stage candidates with the trained model,
and run the classification and NanoBEIR evaluators on it. It writes the TREC runs of the first stage, the baselines
(scored by evaluate_base) and the trained model, their per-query metrics, and the trained model's gains over each
with their confidence intervals, paired-test p-values and the queries that got better, worse or stayed the same;
with evaluate.fusion, the same for the trained model's scores fused with the first stage's, beside the trained
model's own."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
from sentence_transformers.cross_encoder import CrossEncoder

from reranker.core.errors import entrypoint
from reranker.core.outputs import atomic_output, write_json
from reranker.evaluation.baselines import BASELINES
from reranker.evaluation.candidates import first_stage_run, scores_to_run
from reranker.evaluation.first_stage import write_trec_run
from reranker.evaluation.fusion import first_stage_scores, fuse
from reranker.evaluation.measures import write_per_query
from reranker.evaluation.reranking import (
    headline,
    measure_runs,
    report,
    reranking_sets,
    result_lines,
    score_candidates,
    sorted_gains,
    write_gains,
)
from reranker.evaluation.score_distribution import write_score_distribution
from reranker.evaluation.unjudged import unjudged_report, unjudged_top, write_unjudged
from reranker.params import load_sections
from reranker.training.emissions import track_emissions
from reranker.training.evaluators import LIBRARY_EVALUATORS, run_evaluators


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="the trained model folder")
    parser.add_argument("--base", type=Path, help="the evaluate_base stage's scores folder and metrics file",
                        nargs=2, metavar=("SCORES", "METRICS"), required=True)
    parser.add_argument("--runs", type=Path, help="where to write the TREC runs")
    parser.add_argument("--per-query", type=Path, help="where to write the per-query metrics")
    parser.add_argument("--unjudged", type=Path, help="where to write the unjudged top documents")
    parser.add_argument("--score-plot", type=Path, help="where to write the dev score distribution")
    parser.add_argument("--gains", type=Path, help="where to write each set's sorted per-query gains")
    parser.add_argument("--emissions", type=Path, required=True)
    parser.add_argument("--summary", type=Path, help="where to write the metrics' headline")
    parser.add_argument("mine_dir", type=Path, help="the mine stage's folder: dev.parquet and dev_pairs.parquet")
    parser.add_argument("retrieve_dir", type=Path, help="the retrieve stage's folder: one set per collection")
    parser.add_argument("metrics", type=Path)
    paths = parser.parse_args()
    params = load_sections("train", "evaluate", "emissions")
    started = time.perf_counter()

    # 1. The trained model's scores of every reranking set, beside the first stage's and the baselines'
    #    (evaluate_base: the embedding model, the teacher, the base model when it is already a reranker)
    model = CrossEncoder(str(paths.model), trust_remote_code=params.train.trust_remote_code)
    base_scores, base_metrics = paths.base
    sets = reranking_sets(params.evaluate, paths.mine_dir, paths.retrieve_dir)
    results, dev_scores, gains, unjudged = {}, {}, {}, {}
    fusion = params.evaluate.fusion
    with track_emissions(params.emissions, paths.emissions, "evaluate"):
        with atomic_output(paths.runs) as runs_dir, atomic_output(paths.per_query) as per_query_dir:
            runs_dir.mkdir()  # empty when nothing is reranked (classification alone)
            per_query_dir.mkdir()
            for name, reranking_set in sets.items():
                candidates = reranking_set["candidates"]
                print(f"evaluate: scoring {name}, {len(candidates)} pairs", flush=True)
                scores = score_candidates(model, candidates, params.evaluate.batch_size, show_progress_bar=True)
                baselines = pd.read_parquet(base_scores / f"{name}.parquet")
                runs = {"first_stage": first_stage_run(candidates),
                        **{run: scores_to_run(candidates, baselines[run].to_numpy()) for run in BASELINES
                           if run in baselines},
                        "trained": scores_to_run(candidates, scores)}
                if fusion is not None:  # beside the trained model's ranking, never instead of it
                    first_stage = first_stage_scores(reranking_set["kind"], candidates, baselines)
                    runs["fused"] = scores_to_run(candidates, fuse(candidates["query_id"], first_stage, scores,
                                                                   fusion.first_stage_weight))
                # 2. The runs as TREC files and their per-query metrics: small, kept in git
                for run_name, run in runs.items():
                    write_trec_run(run, str(runs_dir / name / f"{run_name}.trec"), tag=run_name)
                values = measure_runs(runs, reranking_set["qrels"], reranking_set["at_k"])
                write_per_query(per_query_dir / f"{name}.csv", values)
                # 3. Means, the gain over each, its interval, p-value and queries better/worse/same; the sorted
                #    per-query gains over the first stage, for the per-query delta plot
                results[name] = report(reranking_set["kind"], values, params.evaluate.significance,
                                       fusion.first_stage_weight if fusion is not None else None)
                if paths.gains:
                    primary = next(measure for measure in values["trained"] if measure.startswith("ndcg@"))
                    gains[name] = sorted_gains(values["trained"][primary], values["first_stage"][primary])
                if paths.unjudged:
                    holes = unjudged_top(candidates, scores, reranking_set["qrels"], reranking_set["at_k"])
                    unjudged[name] = unjudged_report(name, holes, results[name].get("judged", {}))
                if reranking_set["kind"] == "reranking":
                    dev_scores = dict(zip(zip(candidates["query"], candidates["document"]), scores))
        results.update(run_evaluators(model, params.evaluate, paths.mine_dir, "trained", LIBRARY_EVALUATORS,
                                      base=json.loads(base_metrics.read_text())))

    # 4. The side outputs: a review list per set of what the measures count as misses without a judgment; the dev
    #    score distribution (pairs no set scored, labelled data, are scored here); the sorted per-query gains
    if paths.unjudged:
        write_unjudged(paths.unjudged, unjudged)
    if paths.score_plot:
        write_score_distribution(paths.score_plot, pd.read_parquet(paths.mine_dir / "dev_pairs.parquet"), dev_scores,
                                 lambda pairs: score_candidates(model, pairs, params.evaluate.batch_size))
    if paths.gains:
        write_gains(paths.gains, gains)

    # 5. The metrics, and their headline for `dvc exp show`
    write_json(paths.metrics, {**results, "seconds": round(time.perf_counter() - started, 1)})
    if paths.summary:
        write_json(paths.summary, headline(results, alpha=1 - params.evaluate.significance.confidence))
    print("\n".join(result_lines(results)))


if __name__ == "__main__":
    main()
