"""`download.source` and `download.more_sources`, checked before any stage works: the column mapping, the local files
and what each one's footer, first line or header says of its columns and rows (no rows read, so that a large source
checks in seconds), and a hub data set for being reachable. The download stage reads the rows and reports what only
a full read finds."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from reranker.checks.models import hub_cache, hub_unreachable
from reranker.core.errors import PipelineError, first_line
from reranker.data.sources import check_column_mapping, check_schema, local_files, where

HEAD_BYTES = 1 << 20  # what the check reads of a JSON lines or CSV file: its first line, at most this


def check_sources(download) -> int | None:
    """`download.source` and each of `download.more_sources`, checked by `check_source`; the most rows the stage can
    read when the params or the Parquet footers say, else None."""
    rows = check_source(download, dev_queries=None if download.more_sources else download.dev_queries)
    for number, more in enumerate(download.more_sources):
        more_rows = check_source(more, f"download.more_sources[{number}]")
        rows = None if rows is None or more_rows is None else rows + more_rows
    return rows


def check_source(download, key: str = "download", dev_queries: int | None = None) -> int | None:
    """The cheap checks of `download` (the params' section, or one of its more_sources, named `key` in messages): the
    column mapping, the local files and what each one's footer, first line or header says of its columns and rows; a
    hub id only for being there (cache or network). Returns the most rows the stage can read when the params or a
    Parquet footer say, else None. `dev_queries` (download.dev_queries, given where download.source is the one
    source) is held against the rows."""
    check_column_mapping(download.shape, download.columns, key)
    found = local_files(download.source, key)
    if download.limit is not None and dev_queries is not None and dev_queries >= download.limit:
        raise PipelineError(f"download.dev_queries is {dev_queries} but download.limit reads only "
                            f"{download.limit} rows, so at most {download.limit} queries; lower dev_queries below "
                            "the number of queries (and leave some for training), or raise the limit")
    if found is None:
        check_hub_dataset(f"{key}.source", download.source)
        return download.limit
    files, data_format = found
    if data_format == "parquet":
        import pyarrow.parquet as pq

        rows = 0
        for file in files:
            try:
                metadata = pq.read_metadata(file)
                schema = metadata.schema.to_arrow_schema()
            except Exception as error:  # a corrupt or truncated footer: the reader says which
                raise PipelineError(f"{where(download.source, file)} is not a readable Parquet file "
                                    f"({first_line(error)}); replace it or fix its extension") from None
            rows += metadata.num_rows
            check_schema(schema, download.columns, where(download.source, file), key)
        if rows == 0:
            raise PipelineError(f"data set '{download.source}' has no rows; point {key}.source at non-empty data")
        if dev_queries is not None and dev_queries >= min(rows, download.limit or rows):
            raise PipelineError(f"download.dev_queries is {dev_queries} but '{download.source}' has only "
                                f"{rows} rows, so fewer queries; lower download.dev_queries")
        return min(rows, download.limit or rows)
    for file in files:
        with open(file, "rb") as handle:
            head = handle.read(HEAD_BYTES).removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace")
        if not head.strip():
            if len(files) == 1:
                raise PipelineError(f"data set '{download.source}' is empty; point {key}.source at non-empty data")
            continue
        names = head_columns(head, data_format, where(download.source, file))
        if names is not None:
            for recipe_column, source_column in download.columns.items():
                if not has_column(names, source_column):
                    raise PipelineError(
                        f"{where(download.source, file)} has no column '{source_column}' (it has {sorted(names)}); "
                        f"set {key}.columns.{recipe_column} to one of them")
    return download.limit


def check_hub_dataset(key: str, repo_id: str) -> None:
    """A hub data set the hub cannot give: not in the Hugging Face caches, and the hub unreachable or offline."""
    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE") or Path(os.environ.get(
        "HF_HOME", Path.home() / ".cache" / "huggingface")) / "datasets")
    cached = hub_cache("datasets", repo_id).is_dir() or any(datasets_cache.glob(f"{repo_id.replace('/', '___')}*"))
    if not cached and (reason := hub_unreachable()):
        raise PipelineError(f"{key} '{repo_id}' is not a local path and is not in the Hugging Face cache, and "
                            f"{reason}; give a local file or folder, or fetch it where the hub can be reached")


def head_columns(head: str, data_format: str, name: str) -> dict | None:
    """The columns a JSON lines or CSV file's first record names ({column: value or None}); None when the first
    record does not end within the bytes read, or for a JSON array (its records are read by the stage)."""
    if data_format == "csv":
        if "\n" not in head and len(head.encode()) >= HEAD_BYTES:
            return None
        header = next(csv.reader(io.StringIO(head)), [])
        if not any(h.strip() for h in header):
            raise PipelineError(f"{name} has an empty header line; its first line must name the columns")
        return dict.fromkeys(header)
    text = head.lstrip()
    if text.startswith("["):
        return None  # one JSON array of objects
    line = text.split("\n", 1)[0]
    if "\n" not in text and len(head.encode()) >= HEAD_BYTES:
        return None
    try:
        record = json.loads(line)
    except ValueError as error:
        if text.startswith("{"):  # maybe one pretty-printed object: the stage's reader says what is wrong
            return None
        raise PipelineError(f"{name} is not JSON lines: its first line does not parse ({error}); give one JSON "
                            "object per line, or fix the file's extension") from None
    if not isinstance(record, dict):
        raise PipelineError(f"{name} is not JSON lines: its first line is a {type(record).__name__}, not an "
                            "object with one field per column")
    return record


def has_column(record: dict, column: str) -> bool:
    """A column of a JSON record or CSV header; `a.b` is field b of a nested column a."""
    if column in record:
        return True
    head, _, rest = column.partition(".")
    return bool(rest) and isinstance(record.get(head), dict) and has_column(record[head], rest)
