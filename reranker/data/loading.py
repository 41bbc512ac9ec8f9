"""The recipe's data: read from the hub or a local file/folder, mapped to the recipe's columns for its shape,
and split by query so that no query is in both train and dev. All in Arrow: local Parquet, JSON lines, JSON and
CSV are read with pyarrow, and `datasets` is imported only for a hub id."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reranker.core.errors import PipelineError, first_line
from reranker.core.relevance import is_relevant
from reranker.data.sources import (
    FORMAT_NAMES,
    NUMBER_COLUMNS,
    SHAPE_COLUMNS,
    TEXT_COLUMNS,
    check_column_mapping,
    check_schema,
    local_files,
    where,
)


def load_source(download, key: str = "download") -> pa.Table:
    """The rows of `download.source` (the params' download section, or one of its more_sources, named `key` in
    messages): a local Parquet, JSON lines, JSON or CSV file or folder, else a hub data set at `download.revision`;
    at most `download.limit` rows."""
    source = download.source
    found = local_files(source, key)
    if found is None:
        table = load_hub(download)
    else:
        files, data_format = found
        tables = [read_file(file, data_format, where(source, file)) for file in files]
        tables = [table for table in tables if table.num_columns or table.num_rows]  # an empty file of a folder
        if not tables:
            raise PipelineError(f"data set '{source}' has no rows; point {key}.source at non-empty data")
        try:
            table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
        except (pa.ArrowException, ValueError) as error:
            raise PipelineError(f"the files of '{source}' do not share their columns' types ({first_line(error)}); "
                                "make them agree") from None
    table = table.replace_schema_metadata(None)  # a source's pandas or datasets metadata describes its own columns
    if download.limit is not None:
        table = table.slice(0, download.limit)
    return table


def read_file(file: Path, data_format: str, name: str) -> pa.Table:
    """One local file as an Arrow table; a file that does not parse as its extension says is one line."""
    try:
        if data_format == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(file)
        if data_format == "csv":
            import pyarrow.csv as pcsv

            if file.stat().st_size == 0:
                return pa.table({})
            return pcsv.read_csv(file, parse_options=pcsv.ParseOptions(newlines_in_values=True))
        return read_json(file)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise PipelineError(f"could not read {name} as {FORMAT_NAMES[data_format]}: {first_line(error)}; fix the "
                            "file, or its extension if it holds another format") from None


def read_json(file: Path) -> pa.Table:
    """JSON lines (one object per line), or one JSON array of objects."""
    import pyarrow.json as pjson

    with open(file, "rb") as handle:
        start = handle.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    if not start:
        return pa.table({})
    if not start.startswith(b"["):
        return pjson.read_json(file)
    records = json.loads(Path(file).read_bytes().removeprefix(b"\xef\xbb\xbf"))
    if not all(isinstance(record, dict) for record in records):
        kinds = sorted({type(record).__name__ for record in records if not isinstance(record, dict)})
        raise ValueError(f"its JSON array holds {', '.join(kinds)} items, not objects with one field per column")
    return pa.Table.from_pylist(records)


def load_hub(download) -> pa.Table:
    """A hub data set's split as an Arrow table; `datasets` is imported only here."""
    from datasets import load_dataset

    try:
        dataset = load_dataset(download.source, download.config, split=download.split, revision=download.revision)
    except Exception as error:  # the hub's reasons are many (no network, no such id, config or split)
        cause = error.__cause__ or error
        raise PipelineError(
            f"could not load hub data set '{download.source}' (config {download.config}, split {download.split}, "
            f"revision {download.revision}): {type(cause).__name__}: {first_line(cause)}; check the id, config, "
            "split and revision, the network (HF_HUB_OFFLINE), or give a local file") from None
    return dataset.with_format("arrow")[:]


def to_recipe_columns(table: pa.Table, shape: str, columns: dict[str, str], source: str) -> pa.Table:
    """The columns of `shape` (SHAPE_COLUMNS), renamed from the source's by `columns`, with texts and numbers
    checked and exact duplicate rows dropped (the first kept); listwise rows keep each query's first row."""
    check_column_mapping(shape, columns)
    name = f"data set '{source}'"
    while any("." in c and c not in table.column_names for c in columns.values()) and any(
            pa.types.is_struct(t) for t in table.schema.types):
        table = table.flatten()  # a.b names field b of a nested column a (ms_marco's passages.passage_text)
    check_schema(table.schema, columns, name)
    table = pa.table({recipe: decoded(table[source_column]) for recipe, source_column in columns.items()})
    table = table.select(SHAPE_COLUMNS[shape])
    if table.num_rows == 0:
        raise PipelineError(f"{name} has no rows; point download.source at non-empty data")
    for column in TEXT_COLUMNS:
        if column in table.column_names:
            check_texts(table[column], columns[column], name)
            table = table.set_column(table.schema.get_field_index(column), column,
                                     table[column].cast(pa.large_string()))
    for column in NUMBER_COLUMNS:
        if column in table.column_names:
            values = table[column].cast(pa.float64())
            numbers = values.to_numpy()  # a missing value is NaN here
            if not np.isfinite(numbers).all():
                raise PipelineError(f"column '{columns[column]}' of {name} holds a missing, NaN or infinite value "
                                    f"(row {int(np.flatnonzero(~np.isfinite(numbers))[0])}); {column}s must be "
                                    "numbers such as 0/1 or scores")
            table = table.set_column(table.schema.get_field_index(column), column, table[column].cast(pa.float32()))
    if shape == "listwise":
        return first_rows(listwise_rows(table, columns, name), ["query"])
    return first_rows(table, table.column_names)


def relevant_pairs(table: pa.Table, shape: str) -> pa.Table:
    """(query, document) of each relevant document of recipe-column rows of `shape`: pairs as they are, labelled
    pairs relevant by their label, each relevant document of a listwise row's list; the form download.more_sources
    join download.source in, to be mined like it.

    Example: ``relevant_pairs(pa.table({"query": ["q"], "documents": [["a", "b"]], "labels": [[0.0, 1.0]]}),
    "listwise")`` holds the one pair ("q", "b").
    """
    if shape == "listwise":
        table = table.combine_chunks()  # a list's parent indices count from its chunk's start
        rows = pc.list_parent_indices(table["documents"])
        table = pa.table({"query": table["query"].take(rows), "document": pc.list_flatten(table["documents"]),
                          "label": pc.list_flatten(table["labels"])})
    if "label" in table.column_names:
        table = table.filter(pa.array(is_relevant(table["label"].to_numpy())))
    return first_rows(table.select(["query", "document"]).cast(
        pa.schema([("query", pa.large_string()), ("document", pa.large_string())])), ["query", "document"])


def decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A dictionary-encoded column (a pandas categorical) as its plain values."""
    return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column


def check_texts(values: pa.ChunkedArray, source_column: str, name: str) -> None:
    """Every value a text with something in it. (Compute calls here take no Python scalar: pyarrow would import
    pandas to look at it, a second of the stage's start.)"""
    if values.null_count:
        raise PipelineError(f"column '{source_column}' of {name} holds empty or non-text values (a missing value "
                            f"at row {int(np.flatnonzero(values.is_null().to_numpy())[0])}); clean the data")
    if (row := first_blank(values)) is not None:
        raise PipelineError(f"column '{source_column}' of {name} holds empty or non-text values (an empty text at "
                            f"row {row}); clean the data")


def first_blank(texts) -> int | None:
    """The index of the first empty or all-whitespace text, or None."""
    lengths = pc.utf8_length(pc.utf8_trim_whitespace(texts))
    if len(lengths) == 0 or pc.min(lengths).as_py() > 0:
        return None
    return int(np.flatnonzero(lengths.to_numpy() == 0)[0])


def listwise_rows(table: pa.Table, columns: dict[str, str], name: str) -> pa.Table:
    """Each row a query with a non-empty list of texts and as many numeric labels; documents as list<string>,
    labels as list<double>."""
    documents, labels = table["documents"], table["labels"]
    document_counts = pc.list_value_length(documents)
    texts, numbers = pc.list_flatten(documents), pc.list_flatten(labels)
    if (documents.null_count or labels.null_count or texts.null_count or numbers.null_count
            or not pc.all(pc.equal(document_counts, pc.list_value_length(labels))).as_py()
            or pc.min(document_counts).as_py() == 0):
        raise PipelineError(f"columns '{columns['documents']}'/'{columns['labels']}' of {name} must hold, per row, "
                            "a non-empty list of texts and as many numeric labels; fix the data or the column mapping")
    if first_blank(texts) is not None:
        raise PipelineError(f"column '{columns['documents']}' of {name} holds an empty text in its lists; clean "
                            "the data")
    if not np.isfinite(numbers.cast(pa.float64()).to_numpy()).all():
        raise PipelineError(f"column '{columns['labels']}' of {name} holds a NaN or infinite label; labels must be "
                            "numbers such as 0/1")
    return table.set_column(1, "documents", documents.cast(pa.list_(pa.string()))).set_column(
        2, "labels", labels.cast(pa.list_(pa.float64())))


def first_rows(table: pa.Table, keys: list[str]) -> pa.Table:
    """The first row of each distinct value of `keys`, in the table's order (pandas' drop_duplicates)."""
    grouped = table.select(keys).append_column("__row", indices(np.arange(table.num_rows)))
    firsts = grouped.group_by(keys, use_threads=False).aggregate([("__row", "min")])["__row_min"].to_numpy()
    return table if len(firsts) == table.num_rows else table.take(indices(np.sort(firsts)))


def indices(values: np.ndarray) -> pa.Array:
    """Row numbers as an Arrow array, built from the numpy buffer: pa.array() would first import pandas to see
    whether the numbers are a pandas object, a second of the stage's start."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def split_by_query(table, dev_queries: int, seed: int) -> tuple[pa.Table, pa.Table]:
    """(train, dev): `dev_queries` distinct queries, drawn with `seed`, and all their rows go to dev.

    Example: ``train, dev = split_by_query(table, dev_queries=60, seed=12)``.
    """
    if not isinstance(table, pa.Table):  # a datasets.Dataset
        table = table.with_format("arrow")[:]
    distinct = pc.unique(table["query"])
    queries = distinct.take(pc.sort_indices(distinct))  # UTF-8 byte order: Python's order of the strings
    if dev_queries >= len(queries):
        raise PipelineError(
            f"download.dev_queries is {dev_queries} but the data has only {len(queries)} distinct queries; lower it"
        )
    rng = np.random.default_rng(seed)
    # the same draw as rng.choice(sorted queries): choice draws positions, then takes them
    dev = queries.take(indices(rng.choice(len(queries), size=dev_queries, replace=False)))
    in_dev = pc.is_in(table["query"], value_set=dev)
    return table.filter(pc.invert(in_dev)), table.filter(in_dev)
