"""How approximate is `mine.faiss_index`? Recall of an approximate FAISS index against the exact search, on a run's
stored embeddings (the embed stage's `data/embeddings/`), for a sample of training queries, with each search's time.

Recall@k here is the share of the exact top k (the candidates the library's mining would select negatives from)
that the approximate search also returns. A missed candidate is replaced by the next one the index finds, so
mined negatives become slightly less hard; they are never wrong.

    python bench/ann_recall.py data/embeddings --index IVF4096,Flat --nprobe 8 32 128
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reranker.mining.nearest import corpus_index, top_k  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("embeddings", type=Path, help="a data/embeddings folder (corpus.npy, train_queries.npy)")
    parser.add_argument("--index", default="IVF4096,Flat", help="a FAISS index factory string")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--queries", type=int, default=2000, help="training queries sampled")
    parser.add_argument("--k", type=int, default=100, help="depth compared (mine.train.range_max)")
    args = parser.parse_args()

    corpus = np.load(args.embeddings / "corpus.npy", mmap_mode="r")
    queries = np.load(args.embeddings / "train_queries.npy", mmap_mode="r")
    rows = np.sort(np.random.default_rng(0).choice(len(queries), size=min(args.queries, len(queries)), replace=False))
    sample = np.ascontiguousarray(queries[rows], dtype=np.float32)
    started = time.perf_counter()
    _, exact = top_k(sample, corpus, args.k, batch_size=1024, use_faiss=True)
    exact_seconds = time.perf_counter() - started
    print(f"{len(sample)} queries x {len(corpus):,} documents, dim {corpus.shape[1]}, k={args.k}")
    print(f"| search | recall@{args.k} | seconds for {len(sample)} queries | per 1M queries (extrapolated) |")
    print("| --- | --- | --- | --- |")
    print(f"| exact (Flat) | 1.000 | {exact_seconds:.1f} | {exact_seconds / len(sample) * 1e6 / 60:.0f} min |")
    for nprobe in args.nprobe:
        started = time.perf_counter()
        index = corpus_index(corpus, args.index, nprobe)
        built = time.perf_counter() - started
        started = time.perf_counter()
        _, found = top_k(sample, corpus, args.k, batch_size=1024, use_faiss=True, index=index)
        seconds = time.perf_counter() - started
        recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(found, exact)])
        print(f"| {args.index}, nprobe {nprobe} (built in {built:.0f} s) | {recall:.3f} | {seconds:.1f} | "
              f"{seconds / len(sample) * 1e6 / 60:.1f} min |")


if __name__ == "__main__":
    main()
