"""Where `download.source` points and what its columns must hold: the cheap checks that run when params load
(a local file's footer, first line or header; no rows read), shared with the download stage's full read.
Light on purpose: every stage loads params, so nothing here reads a whole file or imports datasets."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

from reranker.errors import PipelineError
from reranker.paths import outside_path

LOCAL_FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}
FORMAT_NAMES = {"parquet": "Parquet", "json": "JSON lines / JSON", "csv": "CSV"}
# The recipe's columns for each data shape; `label` and `score` are numbers, `documents` and `labels` lists.
SHAPE_COLUMNS = {"pairs": ["query", "document"], "labelled_pairs": ["query", "document", "label"],
                 "scored_pairs": ["query", "document", "score"], "listwise": ["query", "documents", "labels"]}
TEXT_COLUMNS, NUMBER_COLUMNS = ("query", "document"), ("label", "score")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
HEAD_BYTES = 1 << 20  # what the params check reads of a JSON lines or CSV file: its first line, at most this


def check_column_mapping(shape: str, columns: dict[str, str]) -> None:
    """download.columns maps exactly the recipe columns of `shape`."""
    needed = SHAPE_COLUMNS[shape]
    if missing := [c for c in needed if c not in columns]:
        raise PipelineError(f"download.columns lacks {missing} for shape '{shape}'; map each to a source column")
    if unknown := [c for c in columns if c not in needed]:
        raise PipelineError(f"download.columns names {unknown}, which shape '{shape}' does not use; remove them")
    if empty := [c for c, s in columns.items() if not s.strip()]:
        raise PipelineError(f"download.columns.{empty[0]} is empty; set it to a column of the source")


def local_files(source: str) -> tuple[list[Path], str] | None:
    """(files, format) of a local `download.source`, or None for a hub data set id.

    Example: ``local_files("sample/qa")`` is ``([Path("sample/qa/part-1.jsonl"), ...], "json")``.
    """
    if not source.strip():
        raise PipelineError("download.source is empty; give a Parquet, JSON lines or CSV file or folder, or a hub "
                            "data set id")
    path = Path(outside_path(source)).expanduser()
    if not path.exists():
        first = Path(outside_path(source)).parts[0] if source else ""
        if source.startswith((".", "/", "~")) or Path(source).suffix in LOCAL_FORMATS or (
                first and Path(first).is_dir()) or not HUB_ID.match(source):
            raise PipelineError(f"download.source '{source}' does not exist (looked for {path.absolute()}); give an "
                                "existing Parquet, JSON lines or CSV file or folder, or a hub data set id")
        return None
    if path.is_dir():
        files = sorted(data_files(path))
        formats = sorted({LOCAL_FORMATS[p.suffix] for p in files})
        if not files:
            raise PipelineError(f"download.source '{source}' is a folder without Parquet, JSON lines or CSV files "
                                "(.parquet, .jsonl, .json, .csv); point it at such data")
        if len(formats) > 1:
            examples = ", ".join(next(str(p.relative_to(path)) for p in files if LOCAL_FORMATS[p.suffix] == f)
                                 for f in formats)
            raise PipelineError(f"download.source '{source}' mixes formats ({examples}); keep files of one format "
                                "in the folder, or point download.source at one file")
        return files, formats[0]
    if path.suffix not in LOCAL_FORMATS:
        raise PipelineError(f"download.source '{source}' is not a .parquet, .jsonl, .json or .csv file; convert it "
                            "or point download.source at such a file")
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


def check_source(download) -> int | None:
    """The cheap checks of `download` (the params' section): the column mapping, the local files and what each
    one's footer, first line or header says of its columns and rows; a hub id only for being there (cache or
    network). Returns the most rows the stage can read when the params or a Parquet footer say, else None."""
    check_column_mapping(download.shape, download.columns)
    found = local_files(download.source)
    if download.limit is not None and download.dev_queries >= download.limit:
        raise PipelineError(f"download.dev_queries is {download.dev_queries} but download.limit reads only "
                            f"{download.limit} rows, so at most {download.limit} queries; lower dev_queries below "
                            "the number of queries (and leave some for training), or raise the limit")
    if found is None:
        check_hub_dataset("download.source", download.source)
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
            check_schema(schema, download.shape, download.columns, where(download.source, file))
        if rows == 0:
            raise PipelineError(f"data set '{download.source}' has no rows; point download.source at non-empty data")
        if download.dev_queries >= min(rows, download.limit or rows):
            raise PipelineError(f"download.dev_queries is {download.dev_queries} but '{download.source}' has only "
                                f"{rows} rows, so fewer queries; lower download.dev_queries")
        return min(rows, download.limit or rows)
    for file in files:
        head = read_head(file)
        if not head.strip():
            if len(files) == 1:
                raise PipelineError(f"data set '{download.source}' is empty; point download.source at non-empty data")
            continue
        names = head_columns(head, data_format, where(download.source, file))
        if names is not None:
            for recipe_column, source_column in download.columns.items():
                if not has_column(names, source_column):
                    raise PipelineError(
                        f"{where(download.source, file)} has no column '{source_column}' (it has {sorted(names)}); "
                        f"set download.columns.{recipe_column} to one of them")
    return download.limit


def check_hub_dataset(key: str, repo_id: str) -> None:
    """A hub data set the hub cannot give: not in the Hugging Face caches, and the hub unreachable or offline."""
    from reranker.model_checks import hub_cache, hub_unreachable

    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE") or Path(os.environ.get(
        "HF_HOME", Path.home() / ".cache" / "huggingface")) / "datasets")
    cached = hub_cache("datasets", repo_id).is_dir() or any(datasets_cache.glob(f"{repo_id.replace('/', '___')}*"))
    if not cached and (reason := hub_unreachable()):
        raise PipelineError(f"{key} '{repo_id}' is not a local path and is not in the Hugging Face cache, and "
                            f"{reason}; give a local file or folder, or fetch it where the hub can be reached")


def where(source: str, file: Path) -> str:
    """How messages name a file of the source: the source itself, or the file inside the source folder."""
    return f"data set '{source}'" if Path(outside_path(source)).expanduser() == file else f"file '{file}'"


def read_head(file: Path) -> str:
    with open(file, "rb") as handle:
        data = handle.read(HEAD_BYTES)
    return data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace")


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


def check_schema(schema, shape: str, columns: dict[str, str], name: str) -> None:
    """Each mapped column is there, in a type its recipe column can take (texts, numbers, lists); `schema` is a
    pyarrow schema (a Parquet footer's, or the data read)."""
    import pyarrow as pa

    for recipe_column, source_column in columns.items():
        field = find_field(schema, source_column)
        if field is None:
            raise PipelineError(f"{name} has no column '{source_column}' (it has {schema.names}); "
                                f"set download.columns.{recipe_column} to one of them")
        kind = value_kind(field.type, pa)
        if recipe_column in TEXT_COLUMNS and kind == "binary":
            raise PipelineError(f"column '{source_column}' of {name} holds bytes that are not UTF-8 text; save the "
                                "file as UTF-8")
        if recipe_column in TEXT_COLUMNS and kind not in ("text", "null"):
            raise PipelineError(f"column '{source_column}' of {name} holds {field.type} values, not texts; map "
                                f"download.columns.{recipe_column} to a text column")
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
        struct = schema.field(head).type
        return find_field(pa.schema([struct.field(i) for i in range(struct.num_fields)]), rest)
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


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
