"""Significance between experiments: is a revision's ranking really better than the baseline's, query by query?

Reads the per-query files (``metrics/per_query/<collection>.csv``, see `reranker.evaluation.measures`) that the
evaluate stage wrote at each revision, through DVC, and never re-runs anything. A revision is anything
``dvc exp show`` lists (an experiment name such as ``clean-mice``, a branch, a tag, a commit) or ``workspace``, the
files on disk. As with ``dvc exp diff``, no revision compares the workspace with HEAD and one revision compares the
workspace with it; otherwise the baseline is ``--baseline`` or the first revision.

For every collection and measure, each revision's mean is shown with its difference from the baseline, the 95%
paired bootstrap CI of that difference, the paired randomization test's p-value, and that p-value Holm-corrected
over the family of one collection and one measure: the comparisons of every other revision with the baseline.
A difference is marked a gain or a loss when the CI excludes 0 and the Holm p-value is below 0.05.

Example:
    ::

        rerank compare clean-mice loud-owls --baseline main
        rerank compare clean-mice --format json --collection dev
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from reranker.core.errors import PipelineError
from reranker.evaluation.measures import PER_QUERY_DIR, per_query_path, read_per_query

# dvc and scipy.stats (reranker.evaluation.significance) are imported where they are used: together they take about
# 0.9 s to import, which --help, argument errors and workspace-only reads need not wait for

WORKSPACE = "workspace"
CONFIDENCE = 0.95
RESAMPLES = 10_000

# Revision -> collection -> run -> measure -> {query id: value}
Tables = dict[str, dict[str, dict[str, dict[str, dict[str, float]]]]]


def find_root(start: Path | None = None) -> Path:
    """The DVC repository holding ``start`` (default: the current directory): the nearest folder with a ``.dvc``."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir():
            return folder
    raise PipelineError(f"{start} is not inside a DVC repository (no .dvc folder above it); run this in the project")


def read_revision(root: Path, rev: str) -> dict[str, str]:
    """Read the per-query CSVs of one revision, without running anything.

    Args:
        root (Path): The DVC repository.
        rev (str): An experiment name, branch, tag or commit (DVC resolves experiment names itself), or
            ``"workspace"`` for the files on disk.

    Returns:
        dict[str, str]: Collection name -> CSV text.

    Example:
        ::

            read_revision(find_root(), "clean-mice")
            # => {'dev': 'query_id,run,ndcg@10,mrr@10,map\\n...', 'NanoSciFact': '...'}
    """
    if rev == WORKSPACE:
        paths = sorted((root / PER_QUERY_DIR).glob("*.csv"))
        texts = {path.stem: path.read_text(encoding="utf-8") for path in paths}
    else:
        from dvc.api import DVCFileSystem
        from dvc.scm import RevError

        try:
            # DVCFileSystem resolves experiment names as well as Git revisions (dvc.scm.resolve_rev), and reads
            # outputs from Git or from the DVC cache, whichever holds them at that revision
            filesystem = DVCFileSystem(str(root), rev=rev)
            paths = sorted(filesystem.glob(f"{PER_QUERY_DIR}/*.csv"))
            texts = {Path(path).stem: filesystem.read_text(path, encoding="utf-8") for path in paths}
        except FileNotFoundError as error:  # a DVC-cached output listed at that revision, its data not here
            raise PipelineError(f"{error.filename} at revision '{rev}' is tracked by DVC but not in the local cache; "
                                "fetch it with `dvc pull` (an experiment: `dvc exp pull <remote> <name>`)") from None
        except RevError as error:  # dvc's message says whether the name is unknown or ambiguous
            raise PipelineError(f"{error} in {root}: give an experiment name (`dvc exp show` lists them), a branch, "
                                "tag or commit, or 'workspace' for the files on disk") from None
    if not texts:
        raise PipelineError(f"revision '{rev}' has no per-query files ({PER_QUERY_DIR}/*.csv); run `dvc repro` or "
                            "`dvc exp run` there first (revisions from before per-query files were written cannot "
                            "be compared)")
    return texts


def load_tables(root: Path, revs: Sequence[str]) -> Tables:
    """Read and parse the per-query files of every revision: revision -> collection -> run -> measure -> values."""
    return {rev: {collection: read_per_query(text, f"{per_query_path(collection)} at {rev}")
                  for collection, text in read_revision(root, rev).items()} for rev in revs}


def _differ(what: str, rev: str, theirs: set[str], baseline: str, ours: set[str]) -> str:
    def only(names: set[str], where: str) -> str:
        listed = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
        return f"{len(names)} only at '{where}'" + (f" ({listed})" if names else "")

    return (f"{what} differ between '{rev}' and the baseline '{baseline}': {only(theirs - ours, rev)}, "
            f"{only(ours - theirs, baseline)}")


def compare(tables: Tables, baseline: str, run: str = "trained", collections: Sequence[str] | None = None,
            confidence: float = CONFIDENCE, resamples: int = RESAMPLES) -> dict:
    """Compare every revision's per-query values with the baseline's, Holm-corrected over the family the module's
    docstring names. Each comparison is seeded alike (seed 0), so a report is a function of its inputs.

    Args:
        tables (Tables): Revision -> collection -> run -> measure -> {query id: value}, as :func:`load_tables` reads.
        baseline (str): The revision of ``tables`` the others are compared with.
        run (str): Which ranking of each file to compare: ``trained``, ``first_stage`` or a baseline.
            Defaults to ``"trained"``.
        collections (Sequence[str] | None): The collections to compare; None for all of the baseline's, which
            every revision must then have, no more and no fewer.
        confidence (float): Confidence level of the intervals. Defaults to 0.95.
        resamples (int): Resamples of the randomization test and the bootstrap. Defaults to 10,000.

    Returns:
        dict: ``baseline``, ``run``, ``confidence``, ``revisions``, ``test``, ``family`` and ``rows``, one per
        collection, measure and revision (the baseline's first) with ``collection``, ``measure``, ``rev``,
        ``queries``, ``mean`` and, except for the baseline, ``delta``, ``ci_low``, ``ci_high``, ``p_value``,
        ``p_holm`` and ``significant``.

    Example:
        ::

            report = compare(load_tables(find_root(), ["main", "clean-mice"]), baseline="main")
            report["rows"][1]
            # => {'collection': 'dev', 'measure': 'ndcg@10', 'rev': 'clean-mice', 'queries': 500, 'mean': 0.8611,
            #     'delta': 0.0123, 'ci_low': 0.0041, 'ci_high': 0.0207, 'p_value': 0.0036, 'p_holm': 0.0036,
            #     'significant': True}
    """
    from reranker.evaluation.significance import compare_paired, holm, significant

    others = [rev for rev in tables if rev != baseline]
    available = sorted(tables[baseline])
    if collections is None:
        for rev in others:
            if set(tables[rev]) != set(available):
                raise PipelineError(_differ("collections", rev, set(tables[rev]), baseline, set(available))
                                    + "; compare the shared ones with --collection")
        collections = available
    for collection in collections:
        for rev in tables:
            if collection not in tables[rev]:
                raise PipelineError(f"revision '{rev}' has no collection '{collection}' (it has "
                                    f"{', '.join(sorted(tables[rev]))})")
            if run not in tables[rev][collection]:
                raise PipelineError(f"{per_query_path(collection)} at '{rev}' has no run '{run}' (it has "
                                    f"{', '.join(tables[rev][collection])}); pick one with --run")

    rows, test = [], None
    for collection in collections:
        control = tables[baseline][collection][run]
        measures = list(control)
        queries = set(control[measures[0]])
        for rev in others:
            treatment = tables[rev][collection][run]
            if set(treatment) != set(measures):
                raise PipelineError(_differ(f"measures of {collection}", rev, set(treatment), baseline, set(measures))
                                    + " (was at_k changed?)")
            if set(treatment[measures[0]]) != queries:
                raise PipelineError(_differ(f"queries of {collection}", rev, set(treatment[measures[0]]), baseline,
                                            queries)
                                    + "; only revisions evaluated on the same queries can be compared")
        for measure in measures:
            results = {rev: compare_paired(tables[rev][collection][run][measure], control[measure],
                                           confidence=confidence, resamples=resamples) for rev in others}
            adjusted = holm({rev: result["p_value"] for rev, result in results.items()})
            for rev in [baseline, *others]:
                values = tables[rev][collection][run][measure]
                row = {"collection": collection, "measure": measure, "rev": rev, "queries": len(values),
                       "mean": round(sum(values.values()) / len(values), 4)}
                if rev != baseline:
                    result = {**results[rev], "p_holm": float(f"{adjusted[rev]:.4g}")}
                    test = result.pop("test")
                    row.update(result, significant=significant(result))
                rows.append(row)
    return {"baseline": baseline, "run": run, "confidence": confidence, "revisions": [baseline, *others],
            "test": test, "family": "Holm over the comparisons with the baseline within one collection and measure",
            "rows": rows}


def _format_p(p_value: float) -> str:
    return f"{p_value:.4f}" if p_value >= 1e-4 else "<0.0001"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    # Padded columns: the Markdown renders as a table and is as readable in a terminal
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    lines = [header, ["-" * width for width in widths], *rows]
    return ["| " + " | ".join(cell.ljust(width) for cell, width in zip(line, widths)) + " |" for line in lines]


def to_markdown(report: Mapping) -> str:
    """Render a :func:`compare` report as one Markdown table per collection.

    Example:
        ::

            print(to_markdown(compare(load_tables(find_root(), ["main", "clean-mice"]), baseline="main")))
    """
    baseline, lines = report["baseline"], []
    by_collection: dict[str, list[Mapping]] = {}
    for row in report["rows"]:
        by_collection.setdefault(row["collection"], []).append(row)
    header = ["measure", "revision", "mean", f"delta vs {baseline}", f"{report['confidence']:.0%} CI", "p", "p Holm",
              "significant"]
    for collection, rows in by_collection.items():
        cells = []
        for row in rows:
            if row["rev"] == baseline:
                cells.append([row["measure"], f"{row['rev']} (baseline)", f"{row['mean']:.4f}", "", "", "", "", ""])
                continue
            verdict = ("gain" if row["delta"] > 0 else "loss") if row["significant"] else "no"
            cells.append([
                row["measure"], row["rev"], f"{row['mean']:.4f}", f"{row['delta']:+.4f}",
                f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]", _format_p(row["p_value"]),
                _format_p(row["p_holm"]), verdict,
            ])
        title = f"## {collection}: run {report['run']}, {rows[0]['queries']} queries"
        lines += [title, "", *_table(header, cells), ""]
    lines.append(f"{report['test']}. Significant: the CI excludes 0 and the Holm p-value (over the comparisons "
                 "with the baseline on one collection and measure) is below 0.05.")
    return "\n".join(lines)


def choose_revisions(revs: Sequence[str], baseline: str | None) -> tuple[str, list[str]]:
    """The baseline and the revisions to compare with it, in order and without repeats, chosen as the module's
    docstring says (as ``dvc exp diff`` chooses them).

    Example:
        ::

            choose_revisions(["clean-mice", "loud-owls"], None)
            # => ('clean-mice', ['loud-owls'])
    """
    revs = list(dict.fromkeys(revs))
    if baseline is None:
        revs = revs or ["HEAD"]
        baseline, revs = revs[0], revs[1:]
    others = [rev for rev in revs if rev != baseline] or ([WORKSPACE] if baseline != WORKSPACE else [])
    if not others:
        raise PipelineError(f"nothing to compare with the baseline '{baseline}'; name another revision")
    return baseline, others


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `rerank compare`."""
    parser.add_argument("revs", nargs="*", metavar="REV", help="experiment names, git revisions or 'workspace'")
    parser.add_argument("--baseline", metavar="REV", help="the revision to compare with (default: the first REV)")
    parser.add_argument("--collection", action="append", metavar="NAME", help="only these collections (repeatable)")
    parser.add_argument("--run", default="trained",
                        help="ranking to compare: trained, first_stage, embedding_model, teacher, base_model or "
                        "fused (with evaluate.fusion)")
    parser.add_argument("--format", choices=["markdown", "json"], default="markdown")


def run(args: argparse.Namespace) -> None:
    baseline, others = choose_revisions(args.revs, args.baseline)
    tables = load_tables(find_root(), [baseline, *others])
    collections = list(dict.fromkeys(args.collection)) if args.collection else None
    report = compare(tables, baseline, run=args.run, collections=collections)
    print(json.dumps(report, indent=2) if args.format == "json" else to_markdown(report))
