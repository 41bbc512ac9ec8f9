"""The recipe's data: read from the hub or a local file/folder, mapped to the recipe's columns for its shape,
and split by query so that no query is in both train and dev."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from datasets import Dataset, load_dataset

from reranker.errors import PipelineError
from reranker.paths import outside_path

LOCAL_FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}
# The recipe's columns for each data shape; `label` and `score` are numbers, `documents` and `labels` lists.
SHAPE_COLUMNS = {"pairs": ["query", "document"], "labelled_pairs": ["query", "document", "label"],
                 "scored_pairs": ["query", "document", "score"], "listwise": ["query", "documents", "labels"]}


def load_source(download) -> Dataset:
    """The rows of `download.source` (the params' download section): a local Parquet, JSON lines or CSV file
    or folder, else a hub data set at `download.revision`; at most `download.limit` rows."""
    source = download.source
    path = Path(outside_path(source))
    if path.exists():
        files = sorted(p for p in path.rglob("*") if p.suffix in LOCAL_FORMATS) if path.is_dir() else [path]
        formats = {LOCAL_FORMATS.get(p.suffix) for p in files}
        if not files or None in formats or len(formats) > 1:
            raise PipelineError(
                f"download.source '{source}' must be one Parquet, JSON lines or CSV file, or a folder of files of "
                "one of those formats; point it at such data"
            )
        data_format = formats.pop()
        # datasets fails obscurely on a Parquet file without rows: count them from the footer first
        if data_format == "parquet" and sum(pq.ParquetFile(p).metadata.num_rows for p in files) == 0:
            raise PipelineError(f"data set '{source}' has no rows; point download.source at non-empty data")
        try:
            dataset = load_dataset(data_format, data_files=[str(p) for p in files], split="train")
        except Exception as error:  # datasets wraps the reader's error; its root cause is what the user needs
            cause = error.__cause__ or error
            first_line = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
            raise PipelineError(f"could not read '{source}' as {data_format}: {first_line}; fix the file") from None
    elif source.startswith((".", "/", "~")):
        raise PipelineError(f"download.source '{source}' does not exist; give an existing path or a hub data set id")
    else:
        dataset = load_dataset(source, download.config, split=download.split, revision=download.revision)
    if download.limit is not None:
        dataset = dataset.select(range(min(download.limit, len(dataset))))
    return dataset


def to_recipe_columns(dataset: Dataset, shape: str, columns: dict[str, str], source: str) -> Dataset:
    """The columns of `shape` (SHAPE_COLUMNS), renamed from the source's by `columns`, with texts and numbers
    checked and exact duplicate rows dropped."""
    needed = SHAPE_COLUMNS[shape]
    if missing := [c for c in needed if c not in columns]:
        raise PipelineError(f"download.columns lacks {missing} for shape '{shape}'; map each to a source column")
    if unknown := [c for c in columns if c not in needed]:
        raise PipelineError(f"download.columns names {unknown}, which shape '{shape}' does not use; remove them")
    if any("." in c and c not in dataset.column_names for c in columns.values()):
        dataset = dataset.flatten()  # a.b names field b of a nested column a (ms_marco's passages.passage_text)
    for recipe_column, source_column in columns.items():
        if source_column not in dataset.column_names:
            raise PipelineError(
                f"data set '{source}' has no column '{source_column}' (it has {dataset.column_names}); "
                f"set download.columns.{recipe_column} to one of them"
            )
    dataset = dataset.select_columns(list(columns.values()))
    dataset = dataset.rename_columns({s: r for r, s in columns.items() if s != r}).select_columns(needed)
    if len(dataset) == 0:
        raise PipelineError(f"data set '{source}' has no rows; point download.source at non-empty data")
    frame = dataset.to_pandas()
    for column in {"query", "document"} & set(frame):
        if frame[column].isna().any() or not frame[column].map(lambda v: isinstance(v, str)).all():
            raise PipelineError(f"column '{columns[column]}' of '{source}' holds empty or non-text values; "
                                "clean the data")
    for column in {"label", "score"} & set(frame):
        if frame[column].dtype.kind not in "biuf" or frame[column].isna().any():
            raise PipelineError(f"column '{columns[column]}' of '{source}' holds non-numeric values "
                                f"({frame[column].dtype}); {column}s must be numbers such as 0/1 or scores")
        frame[column] = frame[column].astype("float32")
    if shape == "listwise":
        return Dataset.from_pandas(listwise_rows(frame, columns, source), preserve_index=False)
    return Dataset.from_pandas(frame.drop_duplicates(ignore_index=True), preserve_index=False)


def listwise_rows(frame, columns: dict[str, str], source: str):
    """Each row a query with its documents and as many numeric labels."""
    def valid(documents, labels) -> bool:
        return (len(documents) > 0 and len(documents) == len(labels) and all(isinstance(d, str) for d in documents)
                and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in labels))
    if not all(valid(documents, labels) for documents, labels in zip(frame["documents"], frame["labels"])):
        raise PipelineError(f"columns '{columns['documents']}'/'{columns['labels']}' of '{source}' must hold, "
                            "per row, a non-empty list of texts and as many numeric labels; "
                            "fix the data or the column mapping")
    frame["documents"] = frame["documents"].map(list)
    frame["labels"] = frame["labels"].map(lambda labels: [float(v) for v in labels])
    return frame.drop_duplicates("query", ignore_index=True)


def split_by_query(dataset: Dataset, dev_queries: int, seed: int) -> tuple[Dataset, Dataset]:
    """(train, dev): `dev_queries` distinct queries, drawn with `seed`, and all their rows go to dev.

    Example: ``train, dev = split_by_query(dataset, dev_queries=60, seed=12)``.
    """
    queries = sorted(set(list(dataset["query"])))
    if dev_queries >= len(queries):
        raise PipelineError(
            f"download.dev_queries is {dev_queries} but the data has only {len(queries)} distinct queries; lower it"
        )
    rng = np.random.default_rng(seed)
    dev = set(rng.choice(queries, size=dev_queries, replace=False).tolist())
    in_dev = [query in dev for query in list(dataset["query"])]
    return (
        dataset.select([i for i, held_out in enumerate(in_dev) if not held_out]),
        dataset.select([i for i, held_out in enumerate(in_dev) if held_out]),
    )
