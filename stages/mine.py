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
from reranker.loss_inputs import LOSS_INPUT, learns_teacher_scores
from reranker.mining import (
    OUTPUT_FORMAT,
    RENAME,
    EmbeddingTeacher,
    cross_encoder_scores,
    dev_pairs,
    dev_samples,
    embedded_texts,
    float_labels,
    mining_corpora,
    stored_embeddings,
    teacher_pairs,
    with_teacher_labels,
)
from reranker.model_paths import loading_model, resolve_model
from reranker.nearest import corpus_index
from reranker.outputs import atomic_output, write_frames, write_json
from reranker.params import load_sections


def mine(params, train: pd.DataFrame, dev: pd.DataFrame, embeddings_dir: Path,
         train_out: Path) -> tuple[int, pd.DataFrame | None]:
    """Write the training data, in the form the loss reads, to `train_out` a block of queries at a time; return its
    number of rows and the dev candidates. Labelled data passes through unmined."""
    shape, form = params.download.shape, LOSS_INPUT[params.train.loss]
    if shape != "pairs":
        print(f"mine: shape '{shape}' needs no negatives; passing the data through unmined")
        return write_frames([float_labels(train.rename(columns={"score": "label"}))], train_out), None
    mine_params = params.mine
    # 1. The embed stage's embeddings; the train corpus is the first rows of the full corpus
    train_corpus, full_corpus = mining_corpora(list(train["document"]), list(dev["document"]))
    if mine_params.dev_candidates >= len(full_corpus):
        raise PipelineError(f"mine.dev_candidates is {mine_params.dev_candidates} but the corpus has "
                            f"{len(full_corpus)} documents; lower it")
    texts = embedded_texts(train, dev)
    vectors = {name: stored_embeddings(embeddings_dir, name, name_texts) for name, (_, name_texts) in texts.items()}
    train_corpus_vectors = vectors["corpus.npy"][:len(train_corpus)]
    search = dict(batch_size=mine_params.batch_size, corpus_batch_size=mine_params.corpus_batch_size,
                  use_faiss=mine_params.use_faiss, show_progress_bar=True)
    # The random sampling draws from Python's `random`, as the library's does (it takes no seed): seed it here
    random.seed(mine_params.seed)
    # An approximate index (mine.faiss_index) serves the training queries only: the dev candidates, a few hundred
    # queries, are searched exactly, so that evaluation never depends on the approximation
    train_index = None
    if mine_params.use_faiss and mine_params.faiss_index != "Flat":
        train_index = corpus_index(train_corpus_vectors, mine_params.faiss_index, mine_params.faiss_nprobe)

    # 2. The teacher, for the losses that learn its scores (a listwise loss does when one is set): a cross-encoder's,
    # or the embedding model's own
    teacher_scores = None
    if learns_teacher_scores(params.train.loss, shape, mine_params.teacher):
        teacher = mine_params.teacher
        if teacher.kind == "embedding":
            teacher_scores = EmbeddingTeacher((texts["train_queries.npy"][1], vectors["train_queries.npy"]),
                                              (train_corpus, train_corpus_vectors), teacher.scale).scores
        else:
            with loading_model("mine.teacher.model", teacher.model):
                model = CrossEncoder(resolve_model(teacher.model), max_length=params.tokenize.max_length)
            activation_fn = activation(teacher.activation_fn)

            def teacher_scores(pairs):
                return teacher.scale * cross_encoder_scores(model, pairs, teacher.batch_size, activation_fn)

    # 3. Training data: each positive plus its mined hard negatives, in the form the loss reads, labelled with the
    # teacher's scores; written a block of queries at a time, so memory holds one block of rows
    def labelled(block: pd.DataFrame) -> pd.DataFrame:
        block = block.rename(columns=RENAME[form])
        if teacher_scores is not None:
            block = with_teacher_labels(block, teacher_scores(teacher_pairs(block)), teacher.positive_margin)
        return float_labels(block)

    try:
        blocks = mine_hard_negatives_in_blocks(
            train, vectors["train_queries.npy"], train_corpus, train_corpus_vectors,
            output_format=OUTPUT_FORMAT[form], index=train_index, **mine_params.train.model_dump(), **search,
            desc="mine: train" + (" (with teacher scores)" if teacher_scores is not None else ""),
        )
    except ValueError as error:  # the library's own checks of range_min/range_max/num_negatives
        raise PipelineError(f"mine.train: {error}") from None
    rows = write_frames(map(labelled, blocks), train_out)

    # 4. Dev reranking set: the top candidates of the whole corpus, in retrieval order
    candidates = pd.concat(mine_hard_negatives_in_blocks(
        dev, vectors["dev_queries.npy"], full_corpus, vectors["corpus.npy"], output_format="n-tuple",
        num_negatives=mine_params.dev_candidates, include_positives=True, **search, desc="mine: dev candidates",
    ), ignore_index=True)
    return rows, candidates


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("split_dir", "embeddings_dir", "out_dir", "metrics", "emissions"):
        parser.add_argument(name, type=Path)
    parser.add_argument("--summary", type=Path, help="where to write the headline of the metrics, for dvc exp show")
    args = parser.parse_args()
    params = load_sections("download", "mine", "train", "tokenize", "emissions")
    started = time.perf_counter()
    train = pd.read_parquet(args.split_dir / "train.parquet")
    dev = pd.read_parquet(args.split_dir / "dev.parquet")
    with atomic_output(args.out_dir) as partial:
        partial.mkdir()
        with track_emissions(params.emissions, args.emissions, "mine"):
            train_rows, candidates = mine(params, train, dev, args.embeddings_dir, partial / "train.parquet")
        dev_frame = dev.rename(columns={"score": "label"})
        samples = dev_samples(dev_frame, candidates)
        found = samples.apply(lambda row: any(d in row["positives"] for d in row["documents"]), axis=1)

        # 5. The dev sets beside the training data, and the mining metrics
        samples.to_parquet(partial / "dev.parquet", index=False)
        dev_pairs(dev_frame, samples).to_parquet(partial / "dev_pairs.parquet", index=False)
    metrics = {
        "train_rows": train_rows,
        "dev_queries": len(samples),
        "dev_documents_per_query": round(float(samples["documents"].map(len).mean()), 2),
        "dev_positive_retrieved": round(float(found.mean()), 4),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(args.metrics, metrics)
    if args.summary:
        write_json(args.summary, {key: metrics[key] for key in ("train_rows", "dev_positive_retrieved")})
    print(f"mine: {train_rows} train rows, {len(samples)} dev queries, positive retrieved for "
          f"{found.mean():.0%} of them")


if __name__ == "__main__":
    main()
