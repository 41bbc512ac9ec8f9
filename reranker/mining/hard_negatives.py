"""Hard-negative mining: which corpus each split mines from, the embeddings the embed stage stores for the mine
stage, the library's output format for each loss input, and the dev reranking set built from the mined
candidates. The mining itself is `reranker.mining.in_blocks` (sentence-transformers' `mine_hard_negatives` over
stored embeddings, in bounded memory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reranker.core.errors import PipelineError
from reranker.core.relevance import is_relevant
from reranker.mining import embeddings

# mine_hard_negatives' output format for each loss input, and the column names the later stages use
OUTPUT_FORMAT = {"pair": "labeled-pair", "tuple": "n-tuple", "list": "labeled-list"}
RENAME = {"pair": {}, "tuple": {"document": "positive"}, "list": {"document": "documents"}}


def mining_corpora(train_documents: list[str], dev_documents: list[str]) -> tuple[list[str], list[str]]:
    """(train corpus, full corpus): train negatives come from the train documents only (dev documents never appear
    in training, as in the reference script); dev candidates come from the whole corpus."""
    train_corpus = list(dict.fromkeys(train_documents))
    return train_corpus, list(dict.fromkeys(train_corpus + list(dev_documents)))


def embedded_texts(train: pd.DataFrame, dev: pd.DataFrame) -> dict[str, tuple[str, list[str]]]:
    """What the embed stage encodes and the mine stage searches: {file name in data/embeddings: (role, texts)}.

    The corpus is the full corpus, train documents first, so that the train corpus is its first rows; the
    queries are each split's distinct queries in first-seen order, as mine_hard_negatives embeds them.

    Example:
        >>> train = pd.DataFrame({"query": ["q1", "q1", "q2"], "document": ["a", "b", "c"]})
        >>> dev = pd.DataFrame({"query": ["q3"], "document": ["d"]})
        >>> embedded_texts(train, dev)["corpus.npy"]
        ('document', ['a', 'b', 'c', 'd'])
    """
    _, full_corpus = mining_corpora(list(train["document"]), list(dev["document"]))
    return {
        "corpus.npy": ("document", full_corpus),
        "train_queries.npy": ("query", list(dict.fromkeys(train["query"]))),
        "dev_queries.npy": ("query", list(dict.fromkeys(dev["query"]))),
    }


def stored_embeddings(folder: Path, name: str, texts: list[str]) -> np.ndarray:
    """The embed stage's vectors of `texts` (file `name` in `folder`), memory-mapped; a PipelineError when they are
    missing or embed other texts (rows would be misaligned)."""
    try:
        stored = embeddings.load(folder / name)
    except FileNotFoundError:
        raise PipelineError(f"{folder / name} is missing; run the embed stage (dvc repro embed)") from None
    try:
        embeddings.check_texts(stored, texts, name)
    except ValueError:
        raise PipelineError(f"{folder / name} does not embed this data's {len(texts)} texts in order ({len(stored)} "
                            "stored); run the embed stage (dvc repro embed)") from None
    return stored.vectors


def dev_samples(dev: pd.DataFrame, candidates: pd.DataFrame | None) -> pd.DataFrame:
    """One row per dev query: its positives and the documents to rerank, in retrieval order (the mined
    candidates' n-tuples; the query's own labelled documents or list when nothing was mined)."""
    if "documents" in dev:  # listwise rows already are
        positives = [[document for document, relevant in zip(documents, is_relevant(labels)) if relevant]
                     for documents, labels in zip(dev["documents"], dev["labels"])]
        samples = pd.DataFrame({"query": dev["query"], "documents": dev["documents"].map(list),
                                "positives": positives})
        return samples[samples["positives"].map(len) > 0].reset_index(drop=True)
    relevant = is_relevant(dev["label"]) if "label" in dev else slice(None)
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
    rows = [(query, document, float(document in set(positives)))
            for query, positives, documents in zip(samples["query"], samples["positives"], samples["documents"])
            for document in documents]
    return pd.DataFrame(rows, columns=["query", "document", "label"])


def teacher_pairs(train: pd.DataFrame) -> list[tuple[str, str]]:
    """The (query, document) pairs a teacher scores: each row's document, or its positive then each negative, column
    by column, or each document of a listwise row's list, row by row (the order `with_teacher_labels` reads the
    scores back in)."""
    if "documents" in train:
        return [(query, document) for query, documents in zip(train["query"], train["documents"])
                for document in documents]
    return [(query, document) for column in scored_columns(train)
            for query, document in zip(train["query"], train[column])]


def scored_columns(train: pd.DataFrame) -> list[str]:
    return [c for c in train.columns if c == "document" or c == "positive" or c.startswith("negative_")]


def with_teacher_labels(train: pd.DataFrame, scores, positive_margin: float | None = None) -> pd.DataFrame:
    """The labels MSELoss and MarginMSELoss learn: the teacher's score of each pair (MSELoss), or of the positive
    then each negative as a list, positive first (MarginMSELoss takes the margins itself); for listwise rows, the
    teacher's score of each document of the list, in `labels` (ListNet then learns the softmax of the teacher's
    scores). `scores` are in the order of `teacher_pairs(train)`.

    With `positive_margin` (mine.teacher.positive_margin), the labels overrule the teacher where it is wrong or
    unsure: each positive's score is raised to at least its query's highest-scored negative's plus the margin
    (`lift_positives`)."""
    if "documents" in train:
        ends = np.cumsum(train["documents"].map(len).to_numpy())[:-1]
        lists = np.split(np.asarray(scores, dtype="float32"), ends) if len(train) else []
        if positive_margin is not None:
            lists = [lift_positives(list_scores, is_relevant(np.asarray(labels)), positive_margin)
                     for list_scores, labels in zip(lists, train["labels"])]
        return train.assign(labels=lists)
    columns = scored_columns(train)
    scores = np.array(scores, dtype="float32").reshape(len(columns), len(train)).T  # a copy: lifted in place below
    if len(columns) > 1:  # n-tuples: the positive, then each negative; lift_positives on every row at once
        if positive_margin is not None:
            scores[:, 0] = np.maximum(scores[:, 0], scores[:, 1:].max(axis=1) + positive_margin)
        return train.assign(label=list(scores))
    scores = scores[:, 0]
    if positive_margin is not None:  # labelled pairs: a query's rows are its positive and its negatives
        relevant = is_relevant(train["label"].to_numpy())
        for rows in train.groupby("query", sort=False).indices.values():
            scores[rows] = lift_positives(scores[rows], relevant[rows], positive_margin)
    return train.assign(label=scores)


def lift_positives(scores: np.ndarray, relevant: np.ndarray, margin: float) -> np.ndarray:
    """One query's teacher scores, each relevant document's raised to at least the highest irrelevant one's plus
    `margin`; unchanged where the teacher already ranks them so, or where the query has no negative. Written by hand:
    the library's losses take a teacher's scores or labels, not the one corrected by the other.

    Example:
        >>> lift_positives(np.array([8.0, 9.6, 2.0]), np.array([True, False, False]), 1.0)
        array([10.6,  9.6,  2. ])
    """
    if relevant.all() or not relevant.any():
        return scores
    return np.where(relevant, np.maximum(scores, scores[~relevant].max() + margin), scores).astype(scores.dtype)


class EmbeddingTeacher:
    """The embedding model as a teacher: `scale` x the cosine similarity of a pair's stored, normalised vectors (the
    scores it ranked the candidates by), so the reranker first learns the first stage's own order. `queries` and
    `corpus` are (texts, vectors) in the same row order; no model loads. The text-to-row maps are built once, so
    scoring the mined rows a block at a time costs each block's pairs only.

    Example:
        >>> vectors = np.array([[1.0, 0.0], [0.6, 0.8]], dtype="float32")
        >>> EmbeddingTeacher((["q"], vectors[:1]), (["a", "b"], vectors), scale=10.0).scores([("q", "b")])
        array([6.], dtype=float32)
    """

    def __init__(self, queries: tuple[list[str], np.ndarray], corpus: tuple[list[str], np.ndarray], scale: float):
        self.query_row = {text: row for row, text in enumerate(queries[0])}
        self.corpus_row = {text: row for row, text in enumerate(corpus[0])}
        self.query_vectors, self.corpus_vectors, self.scale = queries[1], corpus[1], scale

    def scores(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        query_vectors = embeddings.read_rows(self.query_vectors, [self.query_row[query] for query, _ in pairs])
        document_vectors = embeddings.read_rows(self.corpus_vectors,
                                                [self.corpus_row[document] for _, document in pairs])
        return (self.scale * np.einsum("ij,ij->i", query_vectors, document_vectors)).astype("float32")


def float_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """Labels as float32, or lists of floats: one type for the tokenize and train stages, whatever mined them."""
    for column in {"label", "labels"} & set(frame):
        is_list = frame[column].map(lambda value: hasattr(value, "__len__")).all()
        frame[column] = (frame[column].map(lambda values: [float(v) for v in values]) if is_list
                         else frame[column].astype("float32"))
    return frame
