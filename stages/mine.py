"""Step 2b, mine: hard negatives for training, in the form the loss reads (labelled pairs, n-tuples or
labelled lists), scored by a teacher when the loss learns a teacher's scores, and the dev reranking set (the
top candidates of the whole corpus for each dev query, the positive among them when retrieved), with
sentence-transformers' mine_hard_negatives over the embed stage's cached embeddings. Labelled, scored and
listwise data need no mining and pass through."""

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
from sentence_transformers.cross_encoder import CrossEncoder
from sentence_transformers.util import mine_hard_negatives

from stages.common import (
    TEACHER_LOSSES, PipelineError, activation, atomic_output, entrypoint, load_params, loss_input, resolve_model,
    track_emissions, write_json,
)
from stages.embed import mining_corpora, mining_options

# mine_hard_negatives' output format for each loss input, and the column names the later stages use
OUTPUT_FORMAT = {"pair": "labeled-pair", "tuple": "n-tuple", "list": "labeled-list"}
RENAME = {"pair": {}, "tuple": {"document": "positive"}, "list": {"document": "documents"}}


def dev_samples(dev: pd.DataFrame, candidates: pd.DataFrame | None) -> pd.DataFrame:
    """One row per dev query: its positives and the documents to rerank, in retrieval order."""
    if "documents" in dev:  # listwise rows already are
        samples = pd.DataFrame({"query": dev["query"], "documents": dev["documents"].map(list), "positives": [
            [d for d, label in zip(documents, labels) if label > 0] for documents, labels in zip(dev["documents"], dev["labels"])]})
        return samples[samples["positives"].map(len) > 0].reset_index(drop=True)
    relevant = dev["label"] > 0 if "label" in dev else slice(None)
    positives = dev[relevant].groupby("query", sort=False)["document"].agg(list)
    if candidates is None:  # labelled data: rerank the query's own labelled documents
        documents = dev.groupby("query", sort=False)["document"].agg(list)
    else:
        negative_columns = [c for c in candidates.columns if c.startswith("negative_")]
        documents = candidates.drop_duplicates("query").set_index("query")[negative_columns].apply(list, axis=1)
    samples = pd.DataFrame({"positives": positives, "documents": documents}).dropna()
    return samples.rename_axis("query").reset_index()


def dev_pairs(dev: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Labelled (query, document, label) dev pairs, for the classification evaluator and the dev loss: the
    labelled data itself, else each dev candidate labelled 1 when it is a positive."""
    if "document" in dev and "label" in dev:
        return dev[["query", "document", "label"]]
    rows = [(q, d, float(d in set(p))) for q, p, docs in zip(samples["query"], samples["positives"], samples["documents"])
            for d in docs]
    return pd.DataFrame(rows, columns=["query", "document", "label"])


def teacher_scores(params, train: pd.DataFrame) -> pd.DataFrame:
    """MSELoss learns the teacher's score of each pair, MarginMSELoss its scores of (query, positive) and of
    each (query, negative): the label is then a list, positive first, as the loss reads it."""
    t = params.mine.teacher
    teacher = CrossEncoder(resolve_model(t.model), max_length=params.tokenize.max_length)
    documents = [c for c in train.columns if c == "document" or c == "positive" or c.startswith("negative_")]
    pairs = [(q, d) for column in documents for q, d in zip(train["query"], train[column])]
    scores = teacher.predict(pairs, batch_size=t.batch_size, activation_fn=activation(t.activation_fn),
                             show_progress_bar=False)
    scores = np.asarray(scores, dtype="float32").reshape(len(documents), len(train)).T
    return train.assign(label=list(scores) if len(documents) > 1 else scores[:, 0])


def mine(params, train: Dataset, dev: Dataset, embeddings_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Training pairs and dev candidates; labelled data needs no mining and passes through."""
    shape, form = params.download.shape, loss_input(params)
    if shape != "pairs":
        print(f"mine: shape '{shape}' needs no negatives; passing the data through unmined")
        return train.to_pandas().rename(columns={"score": "label"}), None
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
    # 2. Training data: each positive plus its mined hard negatives, in the form the loss reads
    try:
        mined = mine_hard_negatives(train, corpus=train_corpus, output_format=OUTPUT_FORMAT[form],
                                    **p.train.model_dump(), **common)
    except ValueError as error:  # the library's own check of range_min/range_max/num_negatives
        raise PipelineError(f"mine.train: {error}") from None
    mined = mined.to_pandas().rename(columns=RENAME[form])
    if params.train.loss in TEACHER_LOSSES:
        mined = teacher_scores(params, mined)
    # 3. Dev reranking set: the top candidates of the whole corpus, in retrieval order
    candidates = mine_hard_negatives(dev, corpus=full_corpus, num_negatives=p.dev_candidates,
                                     include_positives=True, output_format="n-tuple", **common)
    return mined, candidates.to_pandas()


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
    for column in {"label", "labels"} & set(train_pairs):
        is_list = train_pairs[column].map(lambda v: hasattr(v, "__len__")).all()
        train_pairs[column] = train_pairs[column].map(lambda v: [float(x) for x in v]) if is_list else \
            train_pairs[column].astype("float32")
    dev_frame = dev.to_pandas().rename(columns={"score": "label"})
    samples = dev_samples(dev_frame, candidates)
    found = samples.apply(lambda row: any(d in row["positives"] for d in row["documents"]), axis=1)

    # 4. Write both sets and the mining metrics
    with atomic_output(args.out_dir) as partial:
        partial.mkdir()
        train_pairs.to_parquet(partial / "train.parquet", index=False)
        samples.to_parquet(partial / "dev.parquet", index=False)
        dev_pairs(dev_frame, samples).to_parquet(partial / "dev_pairs.parquet", index=False)
    write_json(args.metrics, {
        "train_rows": len(train_pairs),
        "dev_queries": len(samples),
        "dev_documents_per_query": round(float(samples["documents"].map(len).mean()), 2),
        "dev_positive_retrieved": round(float(found.mean()), 4),
        "seconds": round(time.perf_counter() - started, 1),
    })
    print(f"mine: {len(train_pairs)} train rows, {len(samples)} dev queries, positive retrieved for "
          f"{found.mean():.0%} of them")


if __name__ == "__main__":
    main()
