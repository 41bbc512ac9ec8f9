"""Training queries that are also evaluation queries: a model evaluated on queries it was trained on reports how
well it remembers, not how well it reranks. The download stage compares the recipe's queries with each evaluation
collection's judged queries (evaluate.collections and evaluate.nanobeir) and with the dev queries, by normalised
text (:func:`normalise`), and either refuses to run or drops the training rows of those queries
(download.drop_evaluation_queries).

Example::

    from reranker.data.leakage import normalise, shared_queries

    normalise("  Is CO2 a greenhouse gas?")  # 'is co2 a greenhouse gas'
    shared_queries(["is co2 a greenhouse gas"], ["Is CO2 a Greenhouse gas?", "other"])  # ['Is CO2 a Greenhouse gas?']
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from reranker.core.errors import PipelineError
from reranker.data import collections as loading

NORMALISATION = "Unicode NFKC, case-folded, punctuation removed, whitespace collapsed"


def normalise(text: str) -> str:
    """A query as it is compared: NFKC, case-folded, every Unicode punctuation character removed, runs of whitespace
    made one space and the ends trimmed; so "Is CO2 a greenhouse gas?" and "is co2 a  greenhouse gas" are one
    query. Punctuation is removed, not made a space: "U.S." is "us" and "don't" is "dont"."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join("".join(c for c in folded if not unicodedata.category(c).startswith("P")).split())


def shared_queries(evaluation: Iterable[str], training: Iterable[str]) -> list[str]:
    """The `training` queries (distinct, in their first order) whose normalised text is one of `evaluation`'s."""
    wanted = {normalise(query) for query in evaluation}
    return list(dict.fromkeys(query for query in training if normalise(query) in wanted))


@dataclass
class EvaluationSet:
    """The queries one evaluation reads: `queries` None when they could not be read (`note` says why)."""

    name: str
    kind: str  # "collection", "nanobeir" or "dev"
    queries: list[str] | None
    note: str | None = None


def evaluation_sets(evaluate) -> list[EvaluationSet]:
    """The judged queries of each collection of the params' evaluate section: evaluate.collections, then each of
    evaluate.nanobeir's collections. Local folders are read here (queries and judgments only, not the corpus). A hub
    collection is read as the retrieve stage reads it, from the hub or the local cache; where that fails (no
    network), its queries are None and the note says so."""
    sets = []
    wanted = [(c.name, c.name, "collection", c.source, c.split, c.qrels, c.revision) for c in evaluate.collections]
    if evaluate.nanobeir is not None:  # named as NanoBEIR names its split (NanoClimateFEVER)
        wanted += [(loading.NANOBEIR_SPLITS.get(name.lower(), name), name, "nanobeir", evaluate.nanobeir.dataset_id,
                    name, None, None) for name in evaluate.nanobeir.dataset_names]
    for reported, name, kind, source, split, qrels, revision in wanted:
        layout = loading.locate(name, source)[0]
        try:
            judged = loading.load_queries(name, source, split, qrels, revision)
            sets.append(EvaluationSet(reported, kind, list(judged.queries.values())))
        except PipelineError as error:
            if layout != "hub":
                raise
            sets.append(EvaluationSet(reported, kind, None, f"its queries could not be read from the hub ({error})"))
    return sets


def guard(table: pa.Table, sets: list[EvaluationSet], drop: bool) -> tuple[pa.Table, dict]:
    """`table` without the rows of queries that an evaluation set holds, when `drop`; else `table` as it is, or a
    PipelineError naming the first set that shares a query. Also each set's entry for metrics/download.json:
    its query count, how many of its queries the training data held (`found`), how many rows were dropped, how many
    of its queries the returned table holds (`in_training`), an example, and whether it was compared at all."""
    distinct = pc.unique(table["query"]).to_pylist()
    report, to_drop = {}, set()
    for evaluation in sets:
        if evaluation.queries is None:
            print(f"download: {evaluation.name}: not compared with the training queries: {evaluation.note}")
            report[evaluation.name] = {"kind": evaluation.kind, "compared": False, "note": evaluation.note}
            continue
        shared = shared_queries(evaluation.queries, distinct)
        found = len({normalise(query) for query in shared})
        report[evaluation.name] = {"kind": evaluation.kind, "compared": True,
                                   "queries": len({normalise(query) for query in evaluation.queries}),
                                   "found": found, "example": shared[0] if shared else None, "shared": shared}
        to_drop.update(shared)
    offending = [(name, entry) for name, entry in report.items() if entry.get("found")]
    if offending and not drop:
        name, entry = offending[0]
        what = "dev queries" if entry["kind"] == "dev" else f"queries of evaluation collection '{name}'"
        others = len(offending) - 1
        more = f" (and {others} more evaluation set{'s' if others > 1 else ''})" if others else ""
        raise PipelineError(
            f"{entry['found']} of the {entry['queries']} {what} are in the training data{more}, e.g. "
            f"{entry['example']!r} (compared case-folded, without punctuation): the model would be evaluated on "
            "queries it was trained on; remove them from download.source, or set download.drop_evaluation_queries: "
            "true to drop their training rows")
    for entry in report.values():
        if entry["compared"]:
            shared = entry.pop("shared")
            entry["dropped_rows"] = rows_of(table, shared) if drop else 0
            entry["in_training"] = 0 if drop else entry["found"]
    if drop and to_drop:
        table = table.filter(pc.invert(pc.is_in(table["query"], value_set=pa.array(sorted(to_drop),
                                                                                   table["query"].type))))
    return table, report


def rows_of(table: pa.Table, queries: list[str]) -> int:
    """How many rows of `table` have one of `queries`."""
    if not queries:
        return 0
    return int(pc.sum(pc.is_in(table["query"], value_set=pa.array(queries, table["query"].type))).as_py())
