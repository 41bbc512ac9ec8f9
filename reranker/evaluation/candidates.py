"""Reranking sets: for each query, the first stage's candidates (ids, texts and first-stage score, in rank
order) and the judgments they are measured against. A collection's first stage writes one; the mine stage's dev
candidates become one. Scores of a model over a set become a run, `query id -> {doc id: score}`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from reranker.core.relevance import is_relevant

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]
COLUMNS = ["query_id", "doc_id", "query", "document", "first_stage_score"]


def candidates_from_run(collection, run: Run) -> pd.DataFrame:
    """The collection's texts for each (query, document) of a first-stage run, in rank order.

    Example: ``candidates_from_run(collection, bm25_run(collection, k=30))``.
    """
    rows = [(query_id, doc_id, collection.queries[query_id], collection.corpus[doc_id], score)
            for query_id, scored in run.items() for doc_id, score in scored.items()]
    return pd.DataFrame(rows, columns=COLUMNS)


def dev_reranking_set(dev: pd.DataFrame) -> tuple[pd.DataFrame, Qrels]:
    """The mine stage's dev set (query, positives, documents in retrieval order) as a reranking set. Dev data has
    no ids, so queries are numbered `q<row>` and documents `d<n>` in order of first appearance; every positive is
    judged relevant, retrieved or not, so a positive the first stage missed counts as a miss (TREC's rule)."""
    doc_ids: dict[str, str] = {}

    def doc_id(text: str) -> str:
        return doc_ids.setdefault(text, f"d{len(doc_ids)}")

    rows, qrels = [], {}
    for index, (query, positives, documents) in enumerate(zip(dev["query"], dev["positives"], dev["documents"])):
        query_id = f"q{index}"
        rows += [(query_id, doc_id(document), query, document, float(len(documents) - rank))
                 for rank, document in enumerate(documents)]
        qrels[query_id] = {doc_id(positive): 1 for positive in positives}
    return pd.DataFrame(rows, columns=COLUMNS), qrels


def first_stage_run(candidates: pd.DataFrame) -> Run:
    return scores_to_run(candidates, candidates["first_stage_score"].to_numpy())


def scores_to_run(candidates: pd.DataFrame, scores: np.ndarray) -> Run:
    """The run that orders each query's candidates by `scores` (one per candidate row)."""
    run: Run = {}
    for query_id, doc_id, score in zip(candidates["query_id"], candidates["doc_id"], scores):
        run.setdefault(query_id, {})[doc_id] = float(score)
    return run


def judged_relevant(qrels: Qrels) -> Qrels:
    """Only the judgments the one relevance rule counts as relevant (grade >= 0.5), as whole grades of at least 1
    (ir-measures reads integers: a scored 0.7 is relevant with gain 1, a graded 2 keeps its gain of 2)."""
    return {query: {doc: max(1, round(grade)) for doc, grade in docs.items() if is_relevant(grade)}
            for query, docs in qrels.items()}


def write_set(folder: Path, candidates: pd.DataFrame, qrels: Qrels) -> None:
    folder.mkdir(parents=True)
    candidates.to_parquet(folder / "candidates.parquet", index=False)
    (folder / "qrels.json").write_text(json.dumps(qrels, sort_keys=True))


def read_set(folder: Path) -> tuple[pd.DataFrame, Qrels]:
    return pd.read_parquet(folder / "candidates.parquet"), json.loads((folder / "qrels.json").read_text())
