"""Step 2, download: load the recipe's data from the hub or a local file/folder (and any more data sets to train on
with it), rename its columns to the recipe's, check that no training query is an evaluation query, hold out dev
queries (no query is in both splits) and write train/dev Parquet. Arrow throughout; the hub's `datasets` is imported
only for a hub id (of the data or of an evaluation collection), so the stage starts in about a second."""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reranker.core.errors import entrypoint
from reranker.core.outputs import atomic_output, write_json
from reranker.data.leakage import NORMALISATION, EvaluationSet, evaluation_sets, guard
from reranker.data.loading import first_rows, load_source, relevant_pairs, split_by_query, to_recipe_columns
from reranker.params import load_sections


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--metrics", type=Path, help="where to write the row counts and the evaluation overlap")
    parser.add_argument("--summary", type=Path, help="where to write the headline of the metrics, for dvc exp show")
    args = parser.parse_args()
    params = load_sections("download", "evaluate")
    download = params.download

    # 1. Load the source and map its columns to the recipe's; more sources join it as (query, relevant document)
    # pairs, mined like it, one pool of queries from here on
    tables = [to_recipe_columns(load_source(download), download.shape, download.columns, download.source)]
    sources = {download.source: tables[0].num_rows}
    for number, more in enumerate(download.more_sources):
        tables.append(relevant_pairs(to_recipe_columns(load_source(more, f"download.more_sources[{number}]"),
                                                       more.shape, more.columns, more.source), more.shape))
        sources[more.source] = tables[-1].num_rows
    # A pair in several sources is trained on once, where it first comes
    table = first_rows(pa.concat_tables(tables), ["query", "document"]) if len(tables) > 1 else tables[0]
    source_rows = table.num_rows

    # 2. No evaluation query may be trained on: compared here, seconds into the run, because this stage reads the
    # training data, which may be a hub data set the check stage never loads; the evaluation queries are cheap to
    # read (queries and judgments, no corpus). Before the dev hold-out, so that dev holds none of them either.
    table, evaluation = guard(table, evaluation_sets(params.evaluate), download.drop_evaluation_queries)

    # 3. Hold out dev queries; a training query that is a dev query once normalised is refused or dropped as well
    train, dev = split_by_query(table, download.dev_queries, download.seed)
    dev_set = EvaluationSet("dev", "dev", pc.unique(dev["query"]).to_pylist())
    train, dev_report = guard(train, [dev_set], download.drop_evaluation_queries)
    dropped = source_rows - train.num_rows - dev.num_rows
    print(f"download: {train.num_rows} train rows, {dev.num_rows} dev rows ({download.dev_queries} dev queries) "
          f"from {', '.join(sources)}"
          + (f"; {dropped} training rows of evaluation queries dropped" if dropped else ""))

    # 4. Write both splits at once, so that a failure leaves neither
    with atomic_output(args.out_dir) as partial:
        partial.mkdir()
        pq.write_table(train, partial / "train.parquet")
        pq.write_table(dev, partial / "dev.parquet")
    metrics = {
        "source_rows": source_rows, "rows_per_source": sources, "train_rows": train.num_rows, "dev_rows": dev.num_rows,
        "train_queries": len(pc.unique(train["query"])), "dev_queries": len(pc.unique(dev["query"])),
        "drop_evaluation_queries": download.drop_evaluation_queries, "dropped_rows": dropped,
        "normalisation": NORMALISATION, "evaluation": evaluation, "dev": dev_report["dev"],
    }
    if args.metrics:
        write_json(args.metrics, metrics)
    if args.summary:
        compared = [entry for entry in [*evaluation.values(), metrics["dev"]] if entry["compared"]]
        # the training rows are the mine stage's headline (after mining); download's are in its full metrics
        write_json(args.summary, {"evaluation_queries_in_training": sum(e["in_training"] for e in compared),
                                  "dropped_rows": dropped})


if __name__ == "__main__":
    main()
