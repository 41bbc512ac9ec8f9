"""Step 1, download: load the recipe's data from the hub or a local file/folder, rename its columns to the
recipe's, hold out dev queries (no query is in both splits) and write train/dev Parquet."""

from __future__ import annotations

import argparse
from pathlib import Path

from reranker.data import load_source, split_by_query, to_recipe_columns
from reranker.errors import entrypoint
from reranker.outputs import atomic_output
from reranker.params import load_params


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    out_dir = parser.parse_args().out_dir
    download = load_params().download

    # 1. Load the source and map its columns to the recipe's
    dataset = to_recipe_columns(load_source(download), download.shape, download.columns, download.source)

    # 2. Hold out dev queries
    train, dev = split_by_query(dataset, download.dev_queries, download.seed)
    print(f"download: {len(train)} train rows, {len(dev)} dev rows ({download.dev_queries} dev queries) "
          f"from {download.source}")

    # 3. Write both splits at once, so that a failure leaves neither
    with atomic_output(out_dir) as partial:
        partial.mkdir()
        train.to_parquet(partial / "train.parquet")
        dev.to_parquet(partial / "dev.parquet")


if __name__ == "__main__":
    main()
