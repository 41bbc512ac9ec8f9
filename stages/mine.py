"""Step 2b, mine: hard negatives for training (labelled pairs) and the dev reranking set (the top
candidates of the whole corpus for each dev query, the positive among them when retrieved), with
sentence-transformers' mine_hard_negatives over the embed stage's cached embeddings."""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import mine_hard_negatives

from stages.common import (
    PipelineError, atomic_output, entrypoint, load_params, resolve_model, track_emissions, write_json,
)
from stages.embed import mining_corpora, mining_options


def dev_samples(dev: pd.DataFrame, candidates: pd.DataFrame | None) -> pd.DataFrame:
    """One row per dev query: its positives and the documents to rerank, in retrieval order."""
    relevant = dev["label"] > 0 if "label" in dev else slice(None)
    positives = dev[relevant].groupby("query", sort=False)["document"].agg(list)
    if candidates is None:  # labelled data: rerank the query's own labelled documents
        documents = dev.groupby("query", sort=False)["document"].agg(list)
    else:
        negative_columns = [c for c in candidates.columns if c.startswith("negative_")]
        documents = candidates.drop_duplicates("query").set_index("query")[negative_columns].apply(list, axis=1)
    samples = pd.DataFrame({"positives": positives, "documents": documents}).dropna()
    return samples.rename_axis("query").reset_index()


def mine(params, train: Dataset, dev: Dataset, embeddings_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Training pairs and dev candidates; labelled data needs no mining and passes through."""
    if params.download.shape != "pairs":
        print(f"mine: shape '{params.download.shape}' is already labelled; passing the data through unmined")
        return train.to_pandas(), None
    p = params.mine
    # 1. The library samples negatives with Python's `random` and takes no seed: seed it here
    random.seed(p.seed)
    np.random.seed(p.seed)
    torch.manual_seed(p.seed)
    model = SentenceTransformer(resolve_model(params.embed.model))
    train_corpus, full_corpus = mining_corpora(train, dev)
    if p.dev_candidates >= len(full_corpus):
        raise PipelineError(
            f"mine.dev_candidates is {p.dev_candidates} but the corpus has {len(full_corpus)} documents; lower it"
        )
    common = dict(**mining_options(params, model, embeddings_dir), use_faiss=p.use_faiss,
                  faiss_batch_size=p.faiss_batch_size)
    # 2. Training pairs: each positive plus its mined hard negatives, labelled 1/0
    try:
        mined = mine_hard_negatives(train, corpus=train_corpus, output_format="labeled-pair",
                                    **p.train.model_dump(), **common)
    except ValueError as error:  # the library's own check of range_min/range_max/num_negatives
        raise PipelineError(f"mine.train: {error}") from None
    # 3. Dev reranking set: the top candidates of the whole corpus, in retrieval order
    candidates = mine_hard_negatives(dev, corpus=full_corpus, num_negatives=p.dev_candidates,
                                     include_positives=True, output_format="n-tuple", **common)
    return mined.to_pandas(), candidates.to_pandas()


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("split_dir", "embeddings_dir", "out_dir", "metrics", "emissions"):
        parser.add_argument(name, type=Path)
    args = parser.parse_args()
    params = load_params()
    started = time.perf_counter()
    train = Dataset.from_parquet(str(args.split_dir / "train.parquet"))
    dev = Dataset.from_parquet(str(args.split_dir / "dev.parquet"))
    with track_emissions(params.emissions, args.emissions, "mine"):
        train_pairs, candidates = mine(params, train, dev, args.embeddings_dir)
    train_pairs["label"] = train_pairs["label"].astype("float32")
    samples = dev_samples(dev.to_pandas(), candidates)
    found = samples.apply(lambda row: any(d in row["positives"] for d in row["documents"]), axis=1)

    # 4. Write both sets and the mining metrics
    with atomic_output(args.out_dir) as partial:
        partial.mkdir()
        train_pairs.to_parquet(partial / "train.parquet", index=False)
        samples.to_parquet(partial / "dev.parquet", index=False)
    write_json(args.metrics, {
        "train_pairs": len(train_pairs),
        "train_positive_share": round(float((train_pairs["label"] > 0).mean()), 4),
        "dev_queries": len(samples),
        "dev_documents_per_query": round(float(samples["documents"].map(len).mean()), 2),
        "dev_positive_retrieved": round(float(found.mean()), 4),
        "seconds": round(time.perf_counter() - started, 1),
    })
    print(f"mine: {len(train_pairs)} train pairs, {len(samples)} dev queries, positive retrieved for "
          f"{found.mean():.0%} of them")


if __name__ == "__main__":
    main()
