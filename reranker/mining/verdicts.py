"""A person's verdicts on reviewed suspects (mined negatives that may be relevant, reranker.mining.suspects): a plain
tab-separated file, named by `mine.suspects.verdicts`, with a header and one reviewed (query, document) a line:

    query	document	relevant
    q-ee8d61c6c0	d-77e0a1c2b3	yes
    who wrote hamlet?	Shakespeare wrote Hamlet.	no

`query` and `document` are each the text itself or its id (`text_id`, shown in the suspects report and Parquet
file); `relevant` is yes or no. The next mine run reads them: a relevant one becomes a positive of its query and
leaves the negatives, an irrelevant one stays a negative whatever the rules and the policy say. Reviewed suspects
also estimate the false-negative rate among suspects (`wilson_interval`).
"""

from __future__ import annotations

import csv
import hashlib
import math
from pathlib import Path

import pandas as pd

from reranker.core.errors import PipelineError

COLUMNS = ("query", "document", "relevant")
VALUES = {"yes": True, "no": False}
# Where a verdicts file must be: the mine stage's DVC dependency is this folder, so that editing a verdict reruns
# the pipeline from mine on (and a missing file, with the param null, is no missing dependency)
FOLDER = "verdicts"


def text_id(text: str, kind: str) -> str:
    """A short, stable id of a query (`kind` "q") or document ("d"): its text's SHA-1, first 10 hex digits.

    Example:
        >>> text_id("who wrote hamlet?", "q")
        'q-ee8d61c6c0'
    """
    return f"{kind}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:10]}"


def read_verdicts(path: str | Path) -> pd.DataFrame:
    """The verdicts file at `path` as (query_id, document_id, relevant) rows, texts turned into their ids; the last
    verdict on a pair wins. A missing file, other columns or a value other than yes/no is one-line PipelineError.

    Example: ``read_verdicts("verdicts/sample.tsv")["relevant"].mean()``.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(f"mine.suspects.verdicts: {path} does not exist; create it (header: query, document, "
                            "relevant, tab-separated) or set mine.suspects.verdicts to null") from None
    lines = csv.reader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE)
    header = [column.strip().lower() for column in next(lines, [])]
    if tuple(header) != COLUMNS:
        raise PipelineError(f"mine.suspects.verdicts: {path} has the columns {header}, not query, document, relevant "
                            "(tab-separated, in that order); fix its header")
    rows = []
    for number, fields in enumerate(lines, start=2):
        if not any(field.strip() for field in fields):
            continue
        if len(fields) != 3:
            raise PipelineError(f"mine.suspects.verdicts: {path} line {number} has {len(fields)} tab-separated "
                                "fields, not 3 (query, document, relevant); a text with a tab goes in by its id")
        query, document, relevant = (field.strip() for field in fields)
        if relevant.lower() not in VALUES:
            raise PipelineError(f"mine.suspects.verdicts: {path} line {number} has relevant {relevant!r}; write yes "
                                "or no")
        rows.append((as_id(query, "q"), as_id(document, "d"), VALUES[relevant.lower()]))
    frame = pd.DataFrame(rows, columns=["query_id", "document_id", "relevant"])
    return frame.drop_duplicates(["query_id", "document_id"], keep="last").reset_index(drop=True)


def as_id(value: str, kind: str) -> str:
    """A verdict's query or document: an id as it is, a text as its id."""
    is_id = value.startswith(f"{kind}-") and len(value) == 12 and all(c in "0123456789abcdef" for c in value[2:])
    return value if is_id else text_id(value, kind)


def unknown(verdicts: pd.DataFrame, queries, documents) -> str | None:
    """The first verdict whose query or document is not among `queries` / `documents` (texts), as a message."""
    known_queries = {text_id(text, "q") for text in queries}
    known_documents = {text_id(text, "d") for text in documents}
    for number, (query, document) in enumerate(zip(verdicts["query_id"], verdicts["document_id"]), start=1):
        if query not in known_queries:
            return f"verdict {number} names query {query}, which is not a query of the data"
        if document not in known_documents:
            return f"verdict {number} names document {document}, which is not a document of the data"
    return None


def wilson_interval(relevant: int, reviewed: int, confidence_z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a proportion `relevant` / `reviewed`: sound for small
    samples and proportions near 0 or 1, where the normal approximation gives bounds outside [0, 1].

    Example:
        >>> [round(bound, 4) for bound in wilson_interval(5, 50)]
        [0.0435, 0.2136]
    """
    if reviewed == 0:
        return (0.0, 1.0)
    share, z2 = relevant / reviewed, confidence_z ** 2
    centre = (share + z2 / (2 * reviewed)) / (1 + z2 / reviewed)
    half = confidence_z * math.sqrt(share * (1 - share) / reviewed + z2 / (4 * reviewed ** 2)) / (1 + z2 / reviewed)
    return (max(0.0, centre - half), min(1.0, centre + half))


def false_negative_rate(verdicts: pd.DataFrame | None, suspects: pd.DataFrame) -> dict:
    """The share of reviewed suspects judged relevant, with its 95% Wilson interval, overall and, when `suspects` has
    the rules that flagged each (`rules`), per rule (`by_rule`); `suspects` has query_id and document_id columns (the
    suspects Parquet file). Verdicts on pairs that are not suspects do not count."""
    if verdicts is None or suspects.empty:
        return {"reviewed": 0}
    reviewed = suspects[["query_id", "document_id"]].drop_duplicates().merge(verdicts, on=["query_id", "document_id"])
    relevant = int(reviewed["relevant"].sum())
    if reviewed.empty:
        return {"reviewed": 0}
    low, high = wilson_interval(relevant, len(reviewed))
    rate = {"reviewed": len(reviewed), "relevant": relevant, "rate": round(relevant / len(reviewed), 4),
            "ci_low": round(low, 4), "ci_high": round(high, 4)}
    if "rules" in suspects:  # the same share among the suspects each rule flags: which rule finds false negatives
        names = sorted({rule for rules in suspects["rules"] for rule in rules.split(",") if rule})
        rate["by_rule"] = {name: false_negative_rate(verdicts, suspects[flagged_by(suspects["rules"], name)]
                                                     .drop(columns="rules")) for name in names}
    return rate


def flagged_by(rules: pd.Series, rule: str) -> pd.Series:
    """Which suspects `rule` flagged, from the suspects' `rules` column (the rules' names, comma-separated).

    Example: ``flagged_by(pd.Series(["absolute_margin,positive_share", "absolute_margin"]), "positive_share")`` is
    ``[True, False]``.
    """
    return rules.str.split(",").map(lambda names: rule in names)
