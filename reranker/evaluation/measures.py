"""Per-query ranking measures, and the per-query CSV file the evaluate stage writes and
`reranker.commands.compare` reads.

The measures are those sentence-transformers' ``CrossEncoderRerankingEvaluator`` reports (``ndcg@k``, ``mrr@k``,
``map``), computed per query with ir-measures (pytrec_eval for nDCG and AP, the MS MARCO evaluator for RR@k), so that
each query's value is kept for significance tests. The definitions are TREC's: a relevant document the first stage
did not retrieve still counts, as a miss. The evaluator's ``always_rerank_positives=True`` (its default) instead
adds such documents to the candidates, and ``always_rerank_positives=False`` leaves them out of AP's and nDCG's
ideal; tests/test_significance.py shows both differences exactly.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping

import ir_measures

from reranker.core.errors import PipelineError
from reranker.training.metric_names import RERANKING_METRICS, reranking_metrics

# Our name (reranker.training.metric_names, the one place that knows them) -> the ir-measures name, both
# templated on the cut-off
IR_MEASURES: dict[str, str] = {
    "ndcg@{at_k}": "nDCG@{at_k}",
    "mrr@{at_k}": "RR@{at_k}",
    "map": "AP",  # no cut-off: the evaluator's map is average precision over all reranked candidates
}
# How many of the top k documents have a judgment at all, relevant or not (ir-measures' Judged@k): beside each
# nDCG, it says how much of that nDCG rests on judged documents. An unjudged document counts as not relevant, so a
# low judged@k means the measure may miss relevant documents nobody judged (holes in the judgments)
JUDGED = "judged@{at_k}"
# The rankings of one collection that the evaluate stage writes, in CSV row order (fused: with evaluate.fusion)
RUN_NAMES: tuple[str, ...] = ("first_stage", "embedding_model", "teacher", "base_model", "trained", "fused")
PER_QUERY_DIR = "metrics/per_query"


def measure_names(at_k: int = 10) -> list[str]:
    """The measure names for a cut-off, in report order: keys of :func:`per_query` and columns of the per-query CSV.

    Example: ``measure_names(10)`` is ``['ndcg@10', 'mrr@10', 'map']``.
    """
    return list(reranking_metrics(at_k))


def per_query(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]],
              at_k: int = 10) -> dict[str, dict[str, float]]:
    """Compute nDCG@k, MRR@k and MAP for every judged query of a ranking.

    Every query of ``qrels`` gets a value: a query the run has no documents for (the first stage found nothing for
    it) scores 0 on every measure, so that it is counted in the means, not dropped. Queries of the run that
    ``qrels`` does not judge are ignored. A document is relevant from relevance 1 up; nDCG uses the relevance as
    the gain (linear gains, as trec_eval and scikit-learn's ``ndcg_score``) and ``log2(rank + 1)`` as the discount,
    and its ideal ranking holds every relevant document of ``qrels``, retrieved or not; MAP divides by the number
    of relevant documents in ``qrels``, so a relevant document not retrieved adds 0 precision but counts. Tied
    scores keep the order of the run's dict (for a reranked run, usually the first stage's order), for all three
    measures alike.

    Args:
        qrels (Mapping[str, Mapping[str, int]]): Query id -> {document id: relevance}.
        run (Mapping[str, Mapping[str, float]]): Query id -> {document id: score}, higher is better.
        at_k (int): The cut-off of nDCG and MRR. Defaults to 10.

    Returns:
        dict[str, dict[str, float]]: Measure name (see :func:`measure_names`) -> {query id: value}.

    Example:
        ::

            qrels = {"q1": {"d2": 1}, "q2": {"d9": 1}}
            run = {"q1": {"d1": 0.9, "d2": 0.8}}  # nothing retrieved for q2
            per_query(qrels, run)["mrr@10"]
            # => {'q1': 0.5, 'q2': 0.0}
    """
    by_measure = {ir_measures.parse_measure(IR_MEASURES[template].format(at_k=at_k)): name
                  for name, template in zip(measure_names(at_k), RERANKING_METRICS)}
    # pytrec_eval wants str ids and int relevance; numpy scalars and int ids would be rejected
    qrels = {str(query): {str(doc): _grade(relevance, query, doc) for doc, relevance in docs.items()}
             for query, docs in qrels.items()}
    return _calc(by_measure, qrels, run)


def judged(qrels: Mapping[str, Mapping[str, float]], run: Mapping[str, Mapping[str, float]],
           at_k: int = 10) -> dict[str, float]:
    """Judged@k of every judged query of a ranking: the share of its top k documents that `qrels` judges, whatever
    the grade (0 included); a query the run has nothing for scores 0. Ties keep the run's order, as in `per_query`.

    Example:
        ::

            qrels = {"q1": {"d1": 0, "d2": 1}}
            judged(qrels, {"q1": {"d1": 0.9, "d3": 0.8, "d2": 0.7, "d4": 0.1}}, at_k=2)
            # => {'q1': 0.5}
    """
    qrels = {str(query): {str(doc): 1 for doc in docs} for query, docs in qrels.items()}  # only presence counts
    return _calc({ir_measures.parse_measure(f"Judged@{at_k}"): "judged"}, qrels, run)["judged"]


def _calc(measures: dict, qrels: dict[str, dict[str, int]], run: Mapping[str, Mapping[str, float]]) -> dict:
    """Name -> query id -> value of each of `measures` (ir-measures measure -> name) for every query of `qrels`."""
    run = {str(query): _break_ties(docs) for query, docs in run.items()}
    # ir-measures already reports 0 for a judged query missing from the run; filling the zeros first makes that a
    # guarantee of this function rather than of the backend it happens to pick
    values = {name: dict.fromkeys(qrels, 0.0) for name in measures.values()}
    if qrels:
        for metric in ir_measures.iter_calc(list(measures), qrels, run):
            if metric.query_id in qrels:
                values[measures[metric.measure]][metric.query_id] = float(metric.value)
    return values


def _grade(relevance: float, query: str, doc: str) -> int:
    # int() would silently turn a grade of 0.7 into 0, not relevant: only whole grades are accepted
    if float(relevance) != int(relevance):
        raise PipelineError(f"qrels grade {relevance} of query '{query}', document '{doc}' is not a whole number; "
                            "measures count a document relevant from grade 1, so map labels or scores to whole grades "
                            "first (0 not relevant, 1 relevant)")
    return int(relevance)


def _break_ties(scores: Mapping[str, float]) -> dict[str, float]:
    """Replace scores by rank-based ones, in score order, tied scores in the order of ``scores``."""
    # The backends break ties differently (pytrec_eval by document id descending, the MS MARCO RR ascending), so
    # that nDCG and MRR could rank one query two ways; ranks fixed here give all three measures one ranking.
    # Python's sort is stable: tied documents keep the run's order, for a reranked run the first stage's.
    ranked = sorted(scores.items(), key=lambda item: -float(item[1]))
    return {str(doc): float(len(ranked) - position) for position, (doc, _) in enumerate(ranked)}


def per_query_path(collection: str) -> str:
    """The per-query CSV of a collection, relative to the repository root: ``metrics/per_query/<collection>.csv``."""
    return f"{PER_QUERY_DIR}/{collection}.csv"


def write_per_query(path: str | os.PathLike, runs: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
    """Write one collection's per-query values, the file `reranker.commands.compare` reads.

    The CSV's header is ``query_id,run,<measure names...>``, with one row per (query, run), rows sorted by query
    id and then run in :data:`RUN_NAMES` order; values are written in full precision.

    Args:
        path (str | os.PathLike): Where to write, usually ``per_query_path(collection)``.
        runs (Mapping[str, Mapping[str, Mapping[str, float]]]): Run name (``first_stage``, ``base_model``,
            ``trained``) -> the :func:`per_query` result of that run. Every run must have the same measures and
            the same queries.

    Example:
        ::

            write_per_query(per_query_path("dev"), {
                "first_stage": per_query(qrels, first_stage_run),
                "base_model": per_query(qrels, base_model_run),
                "trained": per_query(qrels, trained_run),
            })
    """
    if not runs:
        raise PipelineError(f"no runs to write to {path}; give at least one of {', '.join(RUN_NAMES)}")
    order = {name: index for index, name in enumerate(RUN_NAMES)}
    run_names = sorted(runs, key=lambda name: (order.get(name, len(order)), name))
    first = runs[run_names[0]]
    measures = list(first)
    queries = sorted(next(iter(first.values()), {}))
    for run_name in run_names:
        if list(runs[run_name]) != measures or any(set(values) != set(queries) for values in runs[run_name].values()):
            raise PipelineError(f"run '{run_name}' for {path} has other measures or queries than run "
                                f"'{run_names[0]}'; compute every run with per_query on the same qrels and at_k")
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["query_id", "run", *measures])
        for query in queries:
            for run_name in run_names:
                writer.writerow([query, run_name, *(repr(float(runs[run_name][name][query])) for name in measures)])


def read_per_query(text: str, source: str = "per-query CSV") -> dict[str, dict[str, dict[str, float]]]:
    """Parse a per-query CSV written by :func:`write_per_query`.

    Args:
        text (str): The file's content.
        source (str): What the text was read from, for error messages (e.g. ``"metrics/per_query/dev.csv at
            clean-mice"``).

    Returns:
        dict[str, dict[str, dict[str, float]]]: Run name -> measure name -> {query id: value}.

    Example:
        ::

            read_per_query("query_id,run,ndcg@10\\nq1,trained,0.5\\n")
            # => {'trained': {'ndcg@10': {'q1': 0.5}}}
    """
    rows = csv.reader(io.StringIO(text))
    header = next(rows, [])
    if header[:2] != ["query_id", "run"] or len(header) < 3:
        raise PipelineError(f"{source} does not start with the header query_id,run,<measures...> (got "
                            f"{','.join(header[:4])!r}); it was not written by "
                            "reranker.evaluation.measures.write_per_query")
    measures = header[2:]
    runs: dict[str, dict[str, dict[str, float]]] = {}
    for line_number, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise PipelineError(f"{source} line {line_number} has {len(row)} fields, the header {len(header)}")
        query, run_name, *fields = row
        values = runs.setdefault(run_name, {name: {} for name in measures})
        if query in values[measures[0]]:
            raise PipelineError(f"{source} line {line_number} repeats query '{query}' of run '{run_name}'")
        try:
            for name, field in zip(measures, fields):
                values[name][query] = float(field)
        except ValueError:
            raise PipelineError(f"{source} line {line_number} has a value that is not a number: {row}") from None
    return runs
