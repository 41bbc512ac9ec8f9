"""Outputs that appear whole or not at all: a failed or killed stage never leaves a half-written file that
looks done, and DVC records a stage only after it succeeds."""

from __future__ import annotations

import contextlib
import json
import os
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
