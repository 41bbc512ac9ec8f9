"""Step 1, download: load the recipe's data from the hub or a local file/folder, rename its columns to the
recipe's, hold out dev queries (no query is in both splits) and write train/dev Parquet. Arrow throughout; the
hub's `datasets` is imported only for a hub id, so the stage starts in about a second."""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow.parquet as pq

from reranker.data import load_source, split_by_query, to_recipe_columns
from reranker.errors import entrypoint
from reranker.outputs import atomic_output
from reranker.params import load_sections


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    out_dir = parser.parse_args().out_dir
    download = load_sections("download").download

    # 1. Load the source and map its columns to the recipe's
    table = to_recipe_columns(load_source(download), download.shape, download.columns, download.source)

    # 2. Hold out dev queries
    train, dev = split_by_query(table, download.dev_queries, download.seed)
    print(f"download: {train.num_rows} train rows, {dev.num_rows} dev rows ({download.dev_queries} dev queries) "
          f"from {download.source}")

    # 3. Write both splits at once, so that a failure leaves neither
    with atomic_output(out_dir) as partial:
        partial.mkdir()
        pq.write_table(train, partial / "train.parquet")
        pq.write_table(dev, partial / "dev.parquet")


if __name__ == "__main__":
    main()
