"""WiSE-FT for a trained reranker, at several alphas without retraining: interpolate its encoder with the weights
it started from (reranker/training/wise_ft.py, what `train.wise_ft_alpha` does at the end of training), keep its
trained score head, and rerank every set of the pipeline's evaluation beside the plain trained model, in one process.

Robust fine-tuning (Wortsman et al., "Robust fine-tuning of zero-shot models", 2022) interpolates a fine-tuned model
with its starting point, theta = (1 - alpha) * start + alpha * fine-tuned, and often keeps more of what the start knew
off-domain. Here the start is the base model as training loads it (a new score head on the embedding model's
encoder), so the head always comes from the trained model. alpha = 1 is the trained model itself.

Run it in a checkout whose pipeline has run (`dvc repro`): it reads params.yaml, data/model, data/mine,
data/retrieve and data/evaluate_base, and prints, per set and alpha, ndcg@k and its paired difference (interval,
p-value) from the trained model, the first stage and the embedding model. Choose alpha on the dev set only.

    python bench/wise_ft.py --alphas 0.5 0.7 0.85
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from sentence_transformers.cross_encoder import CrossEncoder

from reranker.evaluation.baselines import BASELINES
from reranker.evaluation.candidates import first_stage_run, scores_to_run
from reranker.evaluation.reranking import means, measure_runs, reranking_sets, score_candidates, split_judged, versus
from reranker.params import load_sections
from reranker.training.cross_encoder import load_cross_encoder
from reranker.training.wise_ft import interpolate_with_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 0.7, 0.85])
    parser.add_argument("--model", type=Path, default=Path("data/model"))
    args = parser.parse_args()
    params = load_sections("train", "tokenize", "evaluate")
    sets = reranking_sets(params.evaluate, Path("data/mine"), Path("data/retrieve"))
    start = load_cross_encoder(params.train, params.tokenize.max_length)
    significance = params.evaluate.significance
    runs = {name: {"first_stage": first_stage_run(s["candidates"])} for name, s in sets.items()}
    for name, reranking_set in sets.items():
        baselines = pd.read_parquet(Path("data/evaluate_base") / f"{name}.parquet")
        runs[name].update({run: scores_to_run(reranking_set["candidates"], baselines[run].to_numpy())
                           for run in BASELINES if run in baselines})
    for alpha in [1.0, *args.alphas]:
        model = CrossEncoder(str(args.model), trust_remote_code=params.train.trust_remote_code)
        if alpha != 1.0:
            model = interpolate_with_start(model, start, alpha)
        for name, reranking_set in sets.items():
            scores = score_candidates(model, reranking_set["candidates"], params.evaluate.batch_size)
            runs[name]["trained" if alpha == 1.0 else f"alpha={alpha}"] = scores_to_run(reranking_set["candidates"],
                                                                                       scores)
    print("| set | ranking | ndcg@k | vs trained | vs first stage | vs embedding model |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, reranking_set in sets.items():
        values, _ = split_judged(measure_runs(runs[name], reranking_set["qrels"], reranking_set["at_k"]))
        primary = next(measure for measure in values["trained"] if measure.startswith("ndcg@"))
        for run in [run for run in values if run == "trained" or run.startswith("alpha=")]:
            cells = [f"{means(values[run])[primary]:.3f}"]
            for other in ("trained", "first_stage", "embedding_model"):
                if other == run or other not in values:
                    cells.append("")
                    continue
                compared, _ = versus({primary: values[run][primary]}, {primary: values[other][primary]}, significance)
                result = compared[primary]
                cells.append(f"{result['delta']:+.3f} [{result['ci_low']:+.3f}, {result['ci_high']:+.3f}] "
                             f"p={result['p_value']:.3g}")
            print(f"| {name} | {run} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
