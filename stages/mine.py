"""Step 2b, mine: hard negatives for training, in the form the loss reads (labelled pairs, n-tuples or
labelled lists), scored by a teacher when the loss learns a teacher's scores, and the dev reranking set (the
top candidates of the whole corpus for each dev query, the positive among them when retrieved), mined as
sentence-transformers' mine_hard_negatives mines them, from the embed stage's stored embeddings and in bounded
memory (reranker.chunked_mining). Labelled, scored and listwise data need no mining and pass through."""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import pandas as pd
from sentence_transformers.cross_encoder import CrossEncoder

from reranker.chunked_mining import mine_hard_negatives_in_blocks
from reranker.cross_encoder import activation
from reranker.emissions import track_emissions
from reranker.errors import PipelineError, entrypoint
from reranker.loss_inputs import LOSS_INPUT, TEACHER_LOSSES
from reranker.mining import (
    OUTPUT_FORMAT,
    RENAME,
    cross_encoder_scores,
    dev_pairs,
    dev_samples,
    embedded_texts,
    embedding_scores,
    float_labels,
    mining_corpora,
    stored_embeddings,
    teacher_pairs,
    with_teacher_labels,
)
from reranker.model_checks import loading_model
from reranker.model_paths import resolve_model
from reranker.outputs import atomic_output, write_json
from reranker.params import load_params


def mine(params, train: pd.DataFrame, dev: pd.DataFrame,
         embeddings_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(training data in the form the loss reads, dev candidates); labelled data passes through unmined."""
    shape, form = params.download.shape, LOSS_INPUT[params.train.loss]
    if shape != "pairs":
        print(f"mine: shape '{shape}' needs no negatives; passing the data through unmined")
        return train.rename(columns={"score": "label"}), None
    mine_params = params.mine
    # 1. The embed stage's embeddings; the train corpus is the first rows of the full corpus
    train_corpus, full_corpus = mining_corpora(list(train["document"]), list(dev["document"]))
    if mine_params.dev_candidates >= len(full_corpus):
        raise PipelineError(f"mine.dev_candidates is {mine_params.dev_candidates} but the corpus has "
                            f"{len(full_corpus)} documents; lower it")
    texts = embedded_texts(train, dev)
    vectors = {name: stored_embeddings(embeddings_dir, name, name_texts) for name, (_, name_texts) in texts.items()}
    search = dict(batch_size=mine_params.batch_size, corpus_batch_size=mine_params.corpus_batch_size,
                  use_faiss=mine_params.use_faiss, show_progress_bar=True)
    # The random sampling draws from Python's `random`, as the library's does (it takes no seed): seed it here
    random.seed(mine_params.seed)

    # 2. Training data: each positive plus its mined hard negatives, in the form the loss reads
    try:
        blocks = mine_hard_negatives_in_blocks(
            train, vectors["train_queries.npy"], train_corpus, vectors["corpus.npy"][:len(train_corpus)],
            output_format=OUTPUT_FORMAT[form], **mine_params.train.model_dump(), **search,
        )
        mined = pd.concat(blocks, ignore_index=True)
    except ValueError as error:  # the library's own checks of range_min/range_max/num_negatives
        raise PipelineError(f"mine.train: {error}") from None
    mined = mined.rename(columns=RENAME[form])

    # 3. Teacher scores, for the losses that learn them: a cross-encoder's, or the embedding model's own
    if params.train.loss in TEACHER_LOSSES:
        teacher, pairs = mine_params.teacher, teacher_pairs(mined)
        if teacher.kind == "embedding":
            scores = embedding_scores(pairs, (texts["train_queries.npy"][1], vectors["train_queries.npy"]),
                                      (train_corpus, vectors["corpus.npy"][:len(train_corpus)]), teacher.scale)
        else:
            with loading_model("mine.teacher.model", teacher.model):
                model = CrossEncoder(resolve_model(teacher.model), max_length=params.tokenize.max_length)
            scores = teacher.scale * cross_encoder_scores(model, pairs, teacher.batch_size,
                                                          activation(teacher.activation_fn))
        mined = with_teacher_labels(mined, scores)

    # 4. Dev reranking set: the top candidates of the whole corpus, in retrieval order
    candidates = pd.concat(mine_hard_negatives_in_blocks(
        dev, vectors["dev_queries.npy"], full_corpus, vectors["corpus.npy"], output_format="n-tuple",
        num_negatives=mine_params.dev_candidates, include_positives=True, **search,
    ), ignore_index=True)
    return mined, candidates


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("split_dir", "embeddings_dir", "out_dir", "metrics", "emissions"):
        parser.add_argument(name, type=Path)
    args = parser.parse_args()
    params = load_params()
    started = time.perf_counter()
    train = pd.read_parquet(args.split_dir / "train.parquet")
    dev = pd.read_parquet(args.split_dir / "dev.parquet")
    with track_emissions(params.emissions, args.emissions, "mine"):
        train_data, candidates = mine(params, train, dev, args.embeddings_dir)
    train_data = float_labels(train_data)
    dev_frame = dev.rename(columns={"score": "label"})
    samples = dev_samples(dev_frame, candidates)
    found = samples.apply(lambda row: any(d in row["positives"] for d in row["documents"]), axis=1)

    # 5. Write both sets and the mining metrics
    with atomic_output(args.out_dir) as partial:
        partial.mkdir()
        train_data.to_parquet(partial / "train.parquet", index=False)
        samples.to_parquet(partial / "dev.parquet", index=False)
        dev_pairs(dev_frame, samples).to_parquet(partial / "dev_pairs.parquet", index=False)
    write_json(args.metrics, {
        "train_rows": len(train_data),
        "dev_queries": len(samples),
        "dev_documents_per_query": round(float(samples["documents"].map(len).mean()), 2),
        "dev_positive_retrieved": round(float(found.mean()), 4),
        "seconds": round(time.perf_counter() - started, 1),
    })
    print(f"mine: {len(train_data)} train rows, {len(samples)} dev queries, positive retrieved for "
          f"{found.mean():.0%} of them")


if __name__ == "__main__":
    main()
