"""Content hashes as DVC writes them in dvc.lock: a file's md5, and a folder's md5 of its listing, with ".dir".

A folder's hash is the md5 of the JSON list of its files' relative paths and md5s, sorted by path (dvc_data's
`Tree.as_bytes`), so it can be computed from per-file md5s alone: a card that records each weight file's md5 can be
checked against the train stage's `data/model` entry without the folder itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

CHUNK = 1 << 20


def md5_of_chunks(chunks: Iterable[bytes]) -> str:
    digest = hashlib.md5()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def file_md5(path: str | Path) -> str:
    """The md5 of a file's bytes, as DVC 3 records it (`hash: md5`).

    Example: ``file_md5("sample/heldout-topics/qrels/test.tsv")`` is a 32-digit hex string.
    """
    with open(path, "rb") as handle:
        return md5_of_chunks(iter(lambda: handle.read(CHUNK), b""))


def tree_md5(files: dict[str, str]) -> str:
    """DVC's hash of a folder from its files' md5s, keyed by path relative to the folder ("/"-separated).

    Example: ``tree_md5({"a.txt": "0cc175b9c0f1b6a831c399e269772661"})`` ends with ".dir".
    """
    listing = [{"md5": md5, "relpath": relpath} for relpath, md5 in sorted(files.items())]
    return hashlib.md5(json.dumps(listing, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


def folder_files(folder: str | Path, md5: Callable[[Path], str] = file_md5) -> dict[str, str]:
    """Each file under `folder` (at any depth) and its md5, keyed by "/"-separated relative path.

    Example: ``folder_files("data/model")["model.safetensors"]``.
    """
    folder = Path(folder)
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            found[path.relative_to(folder).as_posix()] = md5(path)
    return dict(sorted(found.items()))


def path_md5(path: str | Path) -> str:
    """A file's md5, or a folder's DVC hash (".dir"): what dvc.lock would record for `path` as a dep or out.

    Example: ``path_md5("sample/qa")`` equals the download stage's `sample/qa` dep in dvc.lock.
    """
    return tree_md5(folder_files(path)) if Path(path).is_dir() else file_md5(path)
