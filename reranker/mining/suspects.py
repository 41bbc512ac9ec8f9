"""The false-negative audit of mined hard negatives: which mined negatives look relevant (suspects), by which rule,
and what the training data does with them (the policy, overruled by a person's verdicts, reranker.mining.verdicts).

A mined "negative" may be relevant: nobody labelled it, and the harder the negative, the likelier. The rules
(`mine.suspects`, reranker.params.SuspectsParams) compare the candidate's score with its positive's, both scored by
the teacher: the cross-encoder `mine.teacher.model` when one is set, else the embedding model's cosine similarity
(the score it was mined by):
- absolute_margin: the candidate scores within this margin of the positive, or above it;
- positive_share: the candidate scores above this share of the positive's score (NV-Retriever's TopK-PercPos,
  Moreira et al. 2024; meant for scores that are not negative, as cosines or a sigmoid teacher's);
- teacher_threshold: the cross-encoder teacher scores the candidate at least this (a cross-encoder teacher only).
A candidate is a suspect when any rule flags it. The policy then keeps suspects as negatives, drops them, or makes
them positives (pair and list losses only: an n-tuple holds one positive).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reranker.core.outputs import REPORT_CELL, markdown_text
from reranker.mining.verdicts import flagged_by, text_id

RULES = ("absolute_margin", "positive_share", "teacher_threshold")
RANK_BUCKETS = ((1, 1, "1"), (2, 3, "2-3"), (4, 10, "4-10"), (11, 30, "11-30"), (31, None, "31+"))
RANK_COLUMNS = ("rank", "ranks")  # with_ranks' columns, and rank_1..rank_n


class PairScores:
    """A scorer of (query, document) pairs that scores each pair once: the audit and the teacher's labels read the
    same scores, so a cross-encoder teacher scores each mined pair once whether the audit runs or not.

    Example:
        >>> scores = PairScores(lambda pairs: np.array([len(d) for _, d in pairs], dtype="float32"))
        >>> scores([("q", "ab"), ("q", "abc"), ("q", "ab")])
        array([2., 3., 2.], dtype=float32)
    """

    def __init__(self, score):
        self.score, self.memo = score, {}

    def __call__(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        missing = [pair for pair in dict.fromkeys(pairs) if pair not in self.memo]
        if missing:
            self.memo.update(zip(missing, (float(value) for value in self.score(missing))))
        return np.array([self.memo[pair] for pair in pairs], dtype="float32")

    def clear(self) -> None:
        """Forget the scores: memory holds one block's."""
        self.memo = {}


def negative_slots(block: pd.DataFrame, form: str) -> pd.DataFrame:
    """Each mined negative of a block (mined `with_ranks`, renamed to the loss's columns: `form` is pair, tuple or
    list) as a row: row (the block's row), slot (its n-tuple column or list position; -1 for pairs), query,
    positive (a pair's: the query's first positive), candidate and rank (first-stage, 1-based).

    Example:
        >>> block = pd.DataFrame({"query": ["q", "q"], "document": ["p", "n"], "label": [1, 0], "rank": [0, 4]})
        >>> negative_slots(block, "pair")[["candidate", "positive", "rank"]].values.tolist()
        [['n', 'p', 4]]
    """
    columns = ["row", "slot", "query", "positive", "candidate", "rank"]
    if form == "pair":
        positives = block[block["label"] == 1].drop_duplicates("query").set_index("query")["document"]
        negatives = block[(block["label"] != 1) & block["query"].isin(positives.index)]
        rows = [(row, -1, query, positives[query], document, rank) for row, query, document, rank
                in zip(negatives.index, negatives["query"], negatives["document"], negatives["rank"])]
    elif form == "tuple":
        slots = [column for column in block.columns if column.startswith("negative_")]
        rows = [(row, slot, query, positive, candidate, rank)
                for slot, column in enumerate(slots, start=1)
                for row, query, positive, candidate, rank in zip(block.index, block["query"], block["positive"],
                                                                 block[column], block[f"rank_{slot}"])]
    else:  # list: the positive first, then the negatives
        rows = [(row, slot, query, documents[0], documents[slot], ranks[slot])
                for row, query, documents, ranks
                in zip(block.index, block["query"], block["documents"], block["ranks"])
                for slot in range(1, len(documents))]
    return pd.DataFrame(rows, columns=columns).astype({"row": "int64", "slot": "int64", "rank": "int64"})


def flag(positive_scores: np.ndarray, candidate_scores: np.ndarray, section, cross_encoder: bool) -> list[str]:
    """The rules of `section` (mine.suspects) that flag each candidate, comma-joined; "" where none does.
    `cross_encoder`: the scores are a cross-encoder teacher's (teacher_threshold applies to those only).

    Example:
        >>> from types import SimpleNamespace
        >>> rules = SimpleNamespace(absolute_margin=0.05, positive_share=0.95, teacher_threshold=None)
        >>> flag(np.array([0.8, 0.8, 0.8]), np.array([0.5, 0.77, 0.9]), rules, cross_encoder=False)
        ['', 'absolute_margin,positive_share', 'absolute_margin,positive_share']
    """
    positive, candidate = np.asarray(positive_scores), np.asarray(candidate_scores)
    hits = {}
    if section.absolute_margin is not None:
        hits["absolute_margin"] = candidate >= positive - section.absolute_margin
    if section.positive_share is not None:
        hits["positive_share"] = candidate > section.positive_share * positive
    if section.teacher_threshold is not None and cross_encoder:
        hits["teacher_threshold"] = candidate >= section.teacher_threshold
    return [",".join(rule for rule, hit in hits.items() if hit[index]) for index in range(len(candidate))]


def audit(block: pd.DataFrame, form: str, scores: PairScores, section, cross_encoder: bool,
          verdicts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every mined negative of `block` that a rule flags or a verdict names, with the query, the positive, the
    candidate, the teacher's scores of both, the candidate's first-stage rank, the rules that flag it (`rules`, ""
    for a reviewed pair no rule flags), `suspicion` (candidate minus positive score: higher is likelier relevant)
    and the `verdict` on it (True, False or None). `row` and `slot` locate it in the block for `apply_policy`."""
    slots = negative_slots(block, form)
    slots["query_id"] = [text_id(query, "q") for query in slots["query"]]
    slots["document_id"] = [text_id(candidate, "d") for candidate in slots["candidate"]]
    verdict = _verdicts_of(slots, verdicts)
    slots["verdict"] = verdict
    flagged = np.zeros(len(slots), dtype=bool)
    if len(slots):
        slots["positive_score"] = scores(list(zip(slots["query"], slots["positive"])))
        slots["candidate_score"] = scores(list(zip(slots["query"], slots["candidate"])))
        slots["rules"] = flag(slots["positive_score"], slots["candidate_score"], section, cross_encoder)
        flagged = (slots["rules"] != "").to_numpy()
    else:
        slots = slots.assign(positive_score=np.float32(0), candidate_score=np.float32(0), rules="")
    suspects = slots[flagged | slots["verdict"].notna().to_numpy()].copy()
    suspects["suspicion"] = suspects["candidate_score"] - suspects["positive_score"]
    return suspects


def _verdicts_of(slots: pd.DataFrame, verdicts: pd.DataFrame | None) -> pd.Series:
    if verdicts is None or slots.empty:
        return pd.Series([None] * len(slots), index=slots.index, dtype=object)
    lookup = dict(zip(zip(verdicts["query_id"], verdicts["document_id"]), verdicts["relevant"]))
    return pd.Series([lookup.get(key) for key in zip(slots["query_id"], slots["document_id"])], index=slots.index,
                     dtype=object)


def apply_policy(block: pd.DataFrame, form: str, suspects: pd.DataFrame, policy: str) -> tuple[pd.DataFrame, dict]:
    """The block's training rows after the audit, and counts of what changed: a verdict of relevant makes the
    candidate a positive; a verdict of not relevant keeps it a negative; an unreviewed suspect follows `policy`
    (keep: a negative still; drop: out of the data; positive: a positive). An n-tuple holds a fixed number of
    negatives and one positive: a candidate that leaves its negatives takes its tuple with it. The rank columns go.

    Example:
        >>> block = pd.DataFrame({"query": ["q", "q"], "document": ["p", "n"], "label": [1, 0], "rank": [0, 2]})
        >>> suspects = pd.DataFrame({"row": [1], "slot": [-1], "verdict": [None]})
        >>> apply_policy(block, "pair", suspects, "positive")[0]["label"].tolist()
        [1, 1]
    """
    block = block.drop(columns=[c for c in block.columns if c in RANK_COLUMNS or c.startswith("rank_")])
    verdict = suspects["verdict"]
    to_positive = suspects[(verdict == True) | (verdict.isna() & (policy == "positive"))]  # noqa: E712 (object column)
    to_drop = suspects[verdict.isna() & (policy == "drop")]
    counts = {"made_positive": len(to_positive) if form != "tuple" else 0,
              "dropped": len(to_drop) + (len(to_positive) if form == "tuple" else 0)}
    if form == "pair":
        block = block.copy()
        block.loc[to_positive["row"].to_numpy(), "label"] = 1
        block = block.drop(index=to_drop["row"].to_numpy())
    elif form == "tuple":
        gone = set(to_drop["row"]) | set(to_positive["row"])
        counts["tuples_dropped"] = len(gone)
        block = block.drop(index=sorted(gone))
    else:
        positive_slots = to_positive.groupby("row")["slot"].agg(set).to_dict()
        drop_slots = to_drop.groupby("row")["slot"].agg(set).to_dict()
        documents, labels = [], []
        for row, row_documents, row_labels in zip(block.index, block["documents"], block["labels"]):
            keep = [slot for slot in range(len(row_documents)) if slot not in drop_slots.get(row, ())]
            documents.append([row_documents[slot] for slot in keep])
            labels.append([1 if slot in positive_slots.get(row, ()) else row_labels[slot] for slot in keep])
        block = block.assign(documents=pd.Series(documents, index=block.index, dtype=object),
                             labels=pd.Series(labels, index=block.index, dtype=object))
    return block.reset_index(drop=True), counts


def rank_bucket(rank: int) -> str:
    """The first-stage rank bucket the metrics count suspects in. Example: ``rank_bucket(7)`` is ``'4-10'``."""
    return next(name for low, high, name in RANK_BUCKETS if rank >= low and (high is None or rank <= high))


def summary(suspects: pd.DataFrame, negatives: int) -> dict:
    """The audit's counts for metrics/mine.json: suspects, queries affected, by first-stage rank bucket and by rule,
    out of `negatives` mined negatives audited."""
    flagged = suspects[suspects["rules"] != ""]
    by_rule = {rule: int(flagged_by(flagged["rules"], rule).sum()) for rule in RULES}
    by_rank = {name: 0 for *_, name in RANK_BUCKETS}
    for rank in flagged["rank"]:
        by_rank[rank_bucket(int(rank))] += 1
    return {"negatives_audited": negatives, "suspects": len(flagged),
            "share": round(len(flagged) / negatives, 4) if negatives else 0.0,
            "queries_affected": int(flagged["query"].nunique()), "by_rank": by_rank, "by_rule": by_rule}


def report(suspects: pd.DataFrame, metrics: dict, policy: str, rows: int) -> str:
    """A Markdown page a person can review: the counts, then the `rows` most suspicious suspects, most suspicious
    first, query, positive and candidate side by side with their ids (for a verdicts file) and scores."""
    ordered = suspects.sort_values("suspicion", ascending=False, kind="stable").head(rows)
    lines = [
        "# Suspected false negatives", "",
        f"{metrics['suspects']} of {metrics['negatives_audited']} mined negatives look relevant "
        f"({metrics['queries_affected']} queries); policy: **{policy}**. By rule: "
        + ", ".join(f"{rule} {count}" for rule, count in metrics["by_rule"].items())
        + ". By first-stage rank: " + ", ".join(f"{bucket}: {count}" for bucket, count in metrics["by_rank"].items())
        + ".", "",
        f"The {len(ordered)} most suspicious, candidate score minus positive score first. Review them in a verdicts "
        "file (docs/false-negatives.md): `query_id<TAB>document_id<TAB>yes|no`.", "",
        "| # | query | positive | candidate | scores (positive / candidate) | rank | rules | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for number, row in enumerate(ordered.itertuples(), start=1):
        verdict = {True: "relevant", False: "not relevant"}.get(row.verdict, "")
        query, positive, candidate = (markdown_text(text, REPORT_CELL) for text in (row.query, row.positive,
                                                                                  row.candidate))
        lines.append(f"| {number} | {query} `{row.query_id}` | {positive} | "
                     f"{candidate} `{row.document_id}` | {row.positive_score:.3f} / "
                     f"{row.candidate_score:.3f} | {row.rank} | {row.rules.replace(',', ', ')} | {verdict} |")
    return "\n".join(lines) + "\n"
