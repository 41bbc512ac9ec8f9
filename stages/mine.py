"""Step 4, mine: hard negatives for training, in the form the loss reads (labelled pairs, n-tuples or
labelled lists), scored by a teacher when the loss learns a teacher's scores, and the dev reranking set (the
top candidates of the whole corpus for each dev query, the positive among them when retrieved), mined as
sentence-transformers' mine_hard_negatives mines them, from the embed stage's stored embeddings and in bounded
memory (reranker.mining.in_blocks). Labelled, scored and listwise data need no mining and pass through."""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import pandas as pd
from sentence_transformers.cross_encoder import CrossEncoder

from reranker.core.errors import PipelineError, entrypoint
from reranker.core.outputs import atomic_output, write_frames, write_json
from reranker.core.paths import loading_model, resolve_model
from reranker.mining.hard_negatives import (
    OUTPUT_FORMAT,
    RENAME,
    EmbeddingTeacher,
    dev_pairs,
    dev_samples,
    embedded_texts,
    float_labels,
    mining_corpora,
    stored_embeddings,
    teacher_pairs,
    with_teacher_labels,
)
from reranker.mining.in_blocks import mine_hard_negatives_in_blocks
from reranker.mining.nearest import corpus_index
from reranker.mining.suspects import PairScores, apply_policy, audit, negative_slots
from reranker.mining.suspects import report as suspects_report
from reranker.mining.suspects import summary as suspects_summary
from reranker.mining.verdicts import false_negative_rate, read_verdicts
from reranker.params import load_sections
from reranker.training.cross_encoder import activation
from reranker.training.emissions import track_emissions
from reranker.training.loss_inputs import LOSS_INPUT, learns_teacher_scores


def mine(params, train: pd.DataFrame, dev: pd.DataFrame, embeddings_dir: Path,
         train_out: Path) -> tuple[int, pd.DataFrame | None, tuple | None]:
    """Write the training data, in the form the loss reads, to `train_out` a block of queries at a time; return its
    number of rows, the dev candidates and, with mine.suspects, the audit's (suspects, counts, verdicts). Labelled
    data passes through unmined and unaudited."""
    shape, form = params.download.shape, LOSS_INPUT[params.train.loss]
    if shape != "pairs":
        print(f"mine: shape '{shape}' needs no negatives; passing the data through unmined")
        return write_frames([float_labels(train.rename(columns={"score": "label"}))], train_out), None, None
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
    # or the embedding model's own. Its raw scores are memoised per block (PairScores): the audit reads them too
    teacher, audit_section = mine_params.teacher, mine_params.suspects
    learns = learns_teacher_scores(params.train.loss, shape, teacher)
    cross_encoder = teacher is not None and teacher.kind == "cross_encoder"
    raw_scores = None
    if cross_encoder and (learns or audit_section is not None):
        with loading_model("mine.teacher.model", teacher.model):
            model = CrossEncoder(resolve_model(teacher.model), max_length=params.tokenize.max_length)
        activation_fn = activation(teacher.activation_fn)

        def raw_scores(pairs):
            return model.predict(pairs, batch_size=teacher.batch_size, activation_fn=activation_fn,
                                 show_progress_bar=False)
    elif learns or audit_section is not None:  # the embedding model's cosine, from the stored vectors
        raw_scores = EmbeddingTeacher((texts["train_queries.npy"][1], vectors["train_queries.npy"]),
                                      (train_corpus, train_corpus_vectors), 1.0).scores
    scores = PairScores(raw_scores) if raw_scores is not None else None
    verdicts = read_verdicts(audit_section.verdicts) if audit_section and audit_section.verdicts else None
    suspects, audit_counts = [], {"negatives": 0, "made_positive": 0, "dropped": 0}

    # 3. Training data: each positive plus its mined hard negatives, in the form the loss reads, audited for false
    # negatives when mine.suspects is set, labelled with the teacher's scores; written a block of queries at a time,
    # so memory holds one block of rows
    def labelled(block: pd.DataFrame) -> pd.DataFrame:
        block = block.rename(columns=RENAME[form])
        if audit_section is not None:
            block_suspects = audit(block, form, scores, audit_section, cross_encoder, verdicts)
            audit_counts["negatives"] += len(negative_slots(block, form))
            block, changed = apply_policy(block, form, block_suspects, audit_section.policy)
            for key in ("made_positive", "dropped"):
                audit_counts[key] += changed[key]
            suspects.append(block_suspects.drop(columns=["row", "slot"]))
        if learns:
            block = with_teacher_labels(block, teacher.scale * scores(teacher_pairs(block)), teacher.positive_margin)
        if scores is not None:
            scores.clear()
        return float_labels(block)

    try:
        blocks = mine_hard_negatives_in_blocks(
            train, vectors["train_queries.npy"], train_corpus, train_corpus_vectors,
            output_format=OUTPUT_FORMAT[form], index=train_index, **mine_params.train.model_dump(), **search,
            desc="mine: train" + (" (with teacher scores)" if learns else ""), with_ranks=audit_section is not None,
        )
    except ValueError as error:  # the library's own checks of range_min/range_max/num_negatives
        raise PipelineError(f"mine.train: {error}") from None
    rows = write_frames(map(labelled, blocks), train_out)
    audit_result = None
    if audit_section is not None:
        audit_result = (pd.concat(suspects, ignore_index=True), audit_counts, verdicts)

    # 4. Dev reranking set: the top candidates of the whole corpus, in retrieval order
    candidates = pd.concat(mine_hard_negatives_in_blocks(
        dev, vectors["dev_queries.npy"], full_corpus, vectors["corpus.npy"], output_format="n-tuple",
        num_negatives=mine_params.dev_candidates, include_positives=True, **search, desc="mine: dev candidates",
    ), ignore_index=True)
    return rows, candidates, audit_result


def write_audit(audit_result, section, out_dir: Path) -> dict:
    """The suspects (suspects.parquet, every column) and their report (suspects.md) in `out_dir`; their counts."""
    suspects, counts, verdicts = audit_result
    flagged = suspects[suspects["rules"] != ""]
    metrics = suspects_summary(flagged, counts["negatives"])
    metrics.update(policy=section.policy, made_positive=counts["made_positive"], dropped=counts["dropped"],
                   false_negative_rate=false_negative_rate(verdicts, flagged))
    if verdicts is not None:
        metrics["verdicts"] = {"given": len(verdicts), "matched": int(suspects["verdict"].notna().sum())}
    suspects.to_parquet(out_dir / "suspects.parquet", index=False)
    (out_dir / "suspects.md").write_text(suspects_report(suspects, metrics, section.policy, section.report_rows))
    return metrics


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
            train_rows, candidates, audit_result = mine(params, train, dev, args.embeddings_dir,
                                                        partial / "train.parquet")
        suspects_metrics = (write_audit(audit_result, params.mine.suspects, partial) if audit_result is not None
                            else None)
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
    if suspects_metrics is not None:
        metrics["suspects"] = suspects_metrics
    write_json(args.metrics, metrics)
    if args.summary:
        write_json(args.summary, {key: metrics[key] for key in ("train_rows", "dev_positive_retrieved")})
    print(f"mine: {train_rows} train rows, {len(samples)} dev queries, positive retrieved for "
          f"{found.mean():.0%} of them")


if __name__ == "__main__":
    main()
