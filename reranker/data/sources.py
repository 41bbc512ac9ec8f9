"""Where `download.source` points (local files and their format, or a hub id) and what its columns must hold for
each data shape: shared by the download stage's read and the check stage's cheap look at the same files."""

from __future__ import annotations

import os
import re
from pathlib import Path

from reranker.core.errors import PipelineError
from reranker.core.paths import outside_path

LOCAL_FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}
FORMAT_NAMES = {"parquet": "Parquet", "json": "JSON lines / JSON", "csv": "CSV"}
# The recipe's columns for each data shape; `label` and `score` are numbers, `documents` and `labels` lists.
SHAPE_COLUMNS = {"pairs": ["query", "document"], "labelled_pairs": ["query", "document", "label"],
                 "scored_pairs": ["query", "document", "score"], "listwise": ["query", "documents", "labels"]}
TEXT_COLUMNS, NUMBER_COLUMNS = ("query", "document"), ("label", "score")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def check_column_mapping(shape: str, columns: dict[str, str], key: str = "download") -> None:
    """`key`.columns (download.columns, or one of download.more_sources) maps exactly the recipe columns of
    `shape`."""
    needed = SHAPE_COLUMNS[shape]
    if missing := [c for c in needed if c not in columns]:
        raise PipelineError(f"{key}.columns lacks {missing} for shape '{shape}'; map each to a source column")
    if unknown := [c for c in columns if c not in needed]:
        raise PipelineError(f"{key}.columns names {unknown}, which shape '{shape}' does not use; remove them")
    if empty := [c for c, s in columns.items() if not s.strip()]:
        raise PipelineError(f"{key}.columns.{empty[0]} is empty; set it to a column of the source")


def local_files(source: str, key: str = "download") -> tuple[list[Path], str] | None:
    """(files, format) of a local `download.source` (or `key`.source), or None for a hub data set id.

    Example: ``local_files("sample/qa")`` is ``([Path("sample/qa/part-1.jsonl"), ...], "json")``.
    """
    if not source.strip():
        raise PipelineError(f"{key}.source is empty; give a Parquet, JSON lines or CSV file or folder, or a hub "
                            "data set id")
    path = Path(outside_path(source)).expanduser()
    if not path.exists():
        first = Path(outside_path(source)).parts[0] if source else ""
        if source.startswith((".", "/", "~")) or Path(source).suffix in LOCAL_FORMATS or (
                first and Path(first).is_dir()) or not HUB_ID.match(source):
            raise PipelineError(f"{key}.source '{source}' does not exist (looked for {path.absolute()}); give an "
                                "existing Parquet, JSON lines or CSV file or folder, or a hub data set id")
        return None
    if path.is_dir():
        files = sorted(data_files(path))
        formats = sorted({LOCAL_FORMATS[p.suffix] for p in files})
        if not files:
            raise PipelineError(f"{key}.source '{source}' is a folder without Parquet, JSON lines or CSV files "
                                "(.parquet, .jsonl, .json, .csv); point it at such data")
        if len(formats) > 1:
            examples = ", ".join(next(str(p.relative_to(path)) for p in files if LOCAL_FORMATS[p.suffix] == f)
                                 for f in formats)
            raise PipelineError(f"{key}.source '{source}' mixes formats ({examples}); keep files of one format "
                                f"in the folder, or point {key}.source at one file")
        return files, formats[0]
    if path.suffix not in LOCAL_FORMATS:
        raise PipelineError(f"{key}.source '{source}' is not a .parquet, .jsonl, .json or .csv file; convert it "
                            f"or point {key}.source at such a file")
    return [path], LOCAL_FORMATS[path.suffix]


def data_files(folder: Path) -> list[Path]:
    """The data files anywhere under `folder`; hidden files and folders (.ipynb_checkpoints/, .cache/) hold
    copies or leftovers, not the data, and are not walked."""
    found = []
    for root, folders, names in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        found += [Path(root) / name for name in names if not name.startswith(".") and Path(name).suffix in
                  LOCAL_FORMATS and os.path.isfile(os.path.join(root, name))]
    return found


def where(source: str, file: Path) -> str:
    """How messages name a file of the source: the source itself, or the file inside the source folder."""
    return f"data set '{source}'" if Path(outside_path(source)).expanduser() == file else f"file '{file}'"


def check_schema(schema, columns: dict[str, str], name: str, key: str = "download") -> None:
    """Each mapped column is there, in a type its recipe column can take (texts, numbers, lists); `schema` is a
    pyarrow schema (a Parquet footer's, or the data read)."""
    import pyarrow as pa

    for recipe_column, source_column in columns.items():
        field = find_field(schema, source_column)
        if field is None:
            raise PipelineError(f"{name} has no column '{source_column}' (it has {schema.names}); "
                                f"set {key}.columns.{recipe_column} to one of them")
        kind = value_kind(field.type, pa)
        if recipe_column in TEXT_COLUMNS and kind == "binary":
            raise PipelineError(f"column '{source_column}' of {name} holds bytes that are not UTF-8 text; save the "
                                "file as UTF-8")
        if recipe_column in TEXT_COLUMNS and kind not in ("text", "null"):
            raise PipelineError(f"column '{source_column}' of {name} holds {field.type} values, not texts; map "
                                f"{key}.columns.{recipe_column} to a text column")
        if recipe_column in NUMBER_COLUMNS and kind not in ("number", "bool", "null"):
            raise PipelineError(f"column '{source_column}' of {name} holds non-numeric values ({field.type}); "
                                f"{recipe_column}s must be numbers such as 0/1 or scores")
        if recipe_column == "documents" and kind != "list of text":
            raise PipelineError(f"column '{source_column}' of {name} holds {field.type} values; listwise documents "
                                "must be lists of texts")
        if recipe_column == "labels" and kind != "list of number":
            raise PipelineError(f"column '{source_column}' of {name} holds {field.type} values; listwise labels "
                                "must be lists of numbers")


def find_field(schema, column: str):
    """The field of `column` in a pyarrow schema; `a.b` is field b of a struct column a."""
    import pyarrow as pa

    if column in schema.names:
        return schema.field(column)
    head, _, rest = column.partition(".")
    if rest and head in schema.names and pa.types.is_struct(schema.field(head).type):
        return find_field(pa.schema(list(schema.field(head).type)), rest)  # the struct's fields
    return None


def value_kind(data_type, pa) -> str:
    """One of: text, number, bool, binary, null, list of text, list of number, other."""
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type) or pa.types.is_string_view(data_type):
        return "text"
    if pa.types.is_integer(data_type) or pa.types.is_floating(data_type):
        return "number"
    if pa.types.is_boolean(data_type):
        return "bool"
    if pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type):
        return "binary"
    if pa.types.is_null(data_type):
        return "null"
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type) or pa.types.is_fixed_size_list(data_type):
        inner = value_kind(data_type.value_type, pa)
        return f"list of {inner}" if inner in ("text", "number") else "other"
    return "other"
