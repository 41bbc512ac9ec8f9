"""Holes in a collection's judgments: the documents the trained model ranks in its top k that nobody judged. Each
counts as not relevant in every measure, so a relevant one among them is a gain the measures miss; a short list a
person can review, per reranking set, beside judged@k in the metrics."""

from __future__ import annotations

import pandas as pd

from reranker.core.outputs import REPORT_CELL, atomic_output, markdown_text


def unjudged_top(candidates: pd.DataFrame, scores, qrels: dict, at_k: int) -> pd.DataFrame:
    """The (query, document) pairs of the top `at_k` of each query, by `scores` (one per candidate row), that
    `qrels` does not judge, highest score first, with their rank.

    Example:
        >>> candidates = pd.DataFrame({"query_id": ["q", "q"], "doc_id": ["a", "b"], "query": ["Q", "Q"],
        ...                            "document": ["A", "B"]})
        >>> unjudged_top(candidates, [0.9, 0.2], {"q": {"b": 1}}, at_k=2)[["doc_id", "rank"]].values.tolist()
        [['a', 1]]
    """
    frame = candidates[["query_id", "doc_id", "query", "document"]].assign(score=list(scores))
    frame["rank"] = frame.groupby("query_id", sort=False)["score"].rank(ascending=False, method="first").astype(int)
    judged = [doc in qrels.get(query, {}) for query, doc in zip(frame["query_id"], frame["doc_id"])]
    holes = frame[(frame["rank"] <= at_k) & ~pd.Series(judged, index=frame.index)]
    return holes.sort_values(["score"], ascending=False, kind="stable").reset_index(drop=True)


def unjudged_report(name: str, holes: pd.DataFrame, judged_entry: dict, rows: int = 50) -> str:
    """A Markdown page of the `rows` highest-scored unjudged documents of set `name` (from `unjudged_top`)."""
    lines = [f"# Unjudged documents in the trained model's top ranks: {markdown_text(name, REPORT_CELL)}", "",
             f"{len(holes)} (query, document) pairs in the top ranks have no judgment; each counts as not relevant. "
             f"{judged_entry.get('measure', 'judged')}: first stage {judged_entry.get('first_stage', 0):.4f}, trained "
             f"{judged_entry.get('trained', 0):.4f}. The {min(rows, len(holes))} the trained model scores highest:",
             "", "| # | query | document | rank | score |", "|---|---|---|---|---|"]
    for number, row in enumerate(holes.head(rows).itertuples(), start=1):
        query, query_id, document, doc_id = (markdown_text(text, REPORT_CELL) for text in (
            row.query, row.query_id, row.document, row.doc_id))
        lines.append(f"| {number} | {query} `{query_id}` | {document} `{doc_id}` | {row.rank} | {row.score:.3f} |")
    return "\n".join(lines) + "\n"


def write_unjudged(folder, pages: dict[str, str]) -> None:
    """One review page per reranking set (`unjudged_report`'s), `<set>.md` in `folder`, whole or not at all."""
    with atomic_output(folder) as partial:
        partial.mkdir()
        for name, page in pages.items():
            (partial / f"{name}.md").write_text(page)
