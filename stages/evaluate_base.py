"""Step 8, evaluate_base: score the dev set and each evaluation collection's first-stage candidates with the
baselines the trained model is compared with: the embedding model, the teacher when a cross-encoder labelled the
data, and the base model exactly as training starts from it only when it is already a reranker
(reranker/evaluation/baselines.py); and run the classification and NanoBEIR evaluators on the base model. A stage
of its own, so that it stays cached while only training params change."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
from sentence_transformers import SentenceTransformer
from sentence_transformers.cross_encoder import CrossEncoder
from transformers import AutoConfig, set_seed

from reranker.core.errors import entrypoint
from reranker.core.outputs import atomic_output, write_json
from reranker.core.paths import loading_model, resolve_model
from reranker.evaluation.baselines import embedding_scores, has_score_head
from reranker.evaluation.candidates import first_stage_run, scores_to_run
from reranker.evaluation.reranking import means, measure_runs, reranking_sets, score_candidates, split_judged
from reranker.params import load_sections
from reranker.training.cross_encoder import activation, load_cross_encoder
from reranker.training.emissions import track_emissions
from reranker.training.evaluators import LIBRARY_EVALUATORS, run_evaluators


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mine_dir", type=Path, help="the mine stage's folder: dev.parquet and dev_pairs.parquet")
    parser.add_argument("retrieve_dir", type=Path, help="the retrieve stage's folder: one set per collection")
    parser.add_argument("scores", type=Path, help="where to write the baselines' scores of every set")
    parser.add_argument("metrics", type=Path)
    parser.add_argument("emissions", type=Path)
    paths = parser.parse_args()
    params = load_sections("train", "tokenize", "evaluate", "emissions", "embed", "mine")
    started = time.perf_counter()

    # 1. The baselines: the embedding model, the teacher, the base model when it already has a score head
    set_seed(params.train.args.get("seed", 42))
    with loading_model("embed.model", params.embed.model):
        embedder = SentenceTransformer(resolve_model(params.embed.model))
    teacher, teacher_model = params.mine.teacher, None
    if teacher is not None and teacher.kind == "cross_encoder":
        with loading_model("mine.teacher.model", teacher.model):
            teacher_model = CrossEncoder(resolve_model(teacher.model), max_length=params.tokenize.max_length,
                                         activation_fn=activation(teacher.activation_fn))
    with loading_model("train.base_model", params.train.base_model):
        architectures = AutoConfig.from_pretrained(resolve_model(params.train.base_model),
                                                   trust_remote_code=params.train.trust_remote_code).architectures
    base_is_reranker = has_score_head(architectures)
    library = [name for name in LIBRARY_EVALUATORS if getattr(params.evaluate, name) is not None]
    model = load_cross_encoder(params.train, params.tokenize.max_length) if base_is_reranker or library else None

    # 2. Each reranking set scored by each baseline, the scores kept for the evaluate stage, and their measures
    sets = reranking_sets(params.evaluate, paths.mine_dir, paths.retrieve_dir)
    results = {"base_model_is_reranker": base_is_reranker}
    with track_emissions(params.emissions, paths.emissions, "evaluate_base"), atomic_output(paths.scores) as partial:
        partial.mkdir()
        for name, reranking_set in sets.items():
            candidates = reranking_set["candidates"]
            print(f"evaluate_base: scoring {name}, {len(candidates)} pairs", flush=True)
            scores = {"embedding_model": embedding_scores(
                embedder, candidates, params.embed.batch_size, params.embed.query_prompt, params.embed.corpus_prompt,
                show_progress_bar=sys.stderr.isatty())}
            if teacher_model is not None:
                scores["teacher"] = score_candidates(teacher_model, candidates, params.evaluate.batch_size,
                                                     show_progress_bar=True)
            if base_is_reranker:
                scores["base_model"] = score_candidates(model, candidates, params.evaluate.batch_size,
                                                        show_progress_bar=True)
            pd.DataFrame(scores).to_parquet(partial / f"{name}.parquet", index=False)
            runs = {"first_stage": first_stage_run(candidates),
                    **{run: scores_to_run(candidates, values) for run, values in scores.items()}}
            values, judged = split_judged(measure_runs(runs, reranking_set["qrels"], reranking_set["at_k"]))
            results[name] = {"kind": reranking_set["kind"], "first_stage": means(values.pop("first_stage")),
                             **{run: means(run_values) for run, run_values in values.items()}, "judged": judged}
        # 3. The library's evaluators on the base model
        if library:
            results.update(run_evaluators(model, params.evaluate, paths.mine_dir, "base_model", LIBRARY_EVALUATORS))
    write_json(paths.metrics, {**results, "seconds": round(time.perf_counter() - started, 1)})


if __name__ == "__main__":
    main()
