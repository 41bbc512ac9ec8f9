"""Outputs that appear whole or not at all: a failed or killed stage never leaves a half-written file that
looks done, and DVC records a stage only after it succeeds. Data texts inside Markdown outputs (the model card, the
suspects report, the unjudged documents): any text may hold markup, pipes or newlines, which must show as they are,
never run or break the table they sit in."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path: str | Path):
    """Yield a temporary sibling of `path` to write into; it becomes `path` only when the block succeeds.

    Example::

        with atomic_output("data/mine") as partial:
            partial.mkdir()
            frame.to_parquet(partial / "train.parquet")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    remove(partial)
    try:
        yield partial
    except BaseException:
        remove(partial)
        raise
    remove(path)
    os.replace(partial, path)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_json(path: str | Path, data: dict) -> None:
    with atomic_output(path) as partial:
        partial.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_frames(frames, path: str | Path) -> int:
    """Write an iterable of DataFrames with the same columns to one Parquet file, one row group per non-empty frame,
    holding one frame at a time; returns the number of rows. Every frame is cast to the first non-empty frame's
    Arrow types (a later frame's column can be typed differently by pandas, e.g. all nulls); with no rows at all,
    the first frame's (empty) columns are written.

    Example::

        rows = write_frames((block.rename(columns=names) for block in blocks), partial / "train.parquet")
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, schema, first, rows = None, None, None, 0
    try:
        for frame in frames:
            first = frame if first is None else first
            if len(frame) == 0:
                continue
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                schema = table.schema.remove_metadata()
                writer = pq.ParquetWriter(path, schema)
            writer.write_table(table.cast(schema), row_group_size=len(frame))
            rows += len(frame)
    finally:
        if writer is not None:
            writer.close()
    if writer is None and first is not None:
        first.to_parquet(path, index=False)
    return rows


REPORT_CELL = 400  # characters of a text in a review report's cell: enough to judge it, short enough to scan


def markdown_text(value, limit: int = 300) -> str:
    """Data text inside Markdown: one line, no HTML, no table or emphasis syntax, so a row cannot inject
    markup or break the table it sits in; cut at `limit` characters.

    Example:
        >>> print(markdown_text("<script>x</script> | *a*"))
        &lt;script&gt;x&lt;/script&gt; \\| \\*a\\*
    """
    text = re.sub(r"\s+", " ", str(value)).strip()
    text = text[:limit] + ("…" if len(text) > limit else "")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|#])", r"\\\1", text)
