"""Embeddings as an artifact: texts encoded once with a SentenceTransformer, in batches, into a float32 `.npy`
file on disk, beside the texts in row order (Parquet) and a small JSON manifest; read back lazily (memmap).

Why `.npy`: np.load(mmap_mode="r") gives the rows without reading the file into memory, and any row range is a
plain float32 array for torch, FAISS or numpy without conversion (it is also the format of sentence-transformers'
mine_hard_negatives embedding cache). A Parquet fixed-size-list column would be decoded and copied on every read.

Memory: the file is written one chunk of texts at a time, so encoding holds one chunk of embeddings (plus the
model) whatever the number of texts; the texts themselves are the caller's list.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

ROLES = ("query", "document")


@dataclass(frozen=True)
class StoredEmbeddings:
    """One stored set: `vectors` is a read-only memmap of shape (len(texts), dim); `texts()` reads the texts."""

    path: Path  # the .npy file; texts and manifest lie beside it
    vectors: np.ndarray
    manifest: dict

    def texts(self) -> list[str]:
        return pq.read_table(texts_path(self.path), columns=["text"]).column("text").to_pylist()

    def __len__(self) -> int:
        return len(self.vectors)


def texts_path(npy: Path) -> Path:
    return npy.with_suffix(".texts.parquet")


def manifest_path(npy: Path) -> Path:
    return npy.with_suffix(".json")


def texts_digest(texts: list[str]) -> str:
    """sha256 of the texts in order, computed incrementally (no joined copy of them)."""
    digest = hashlib.sha256()
    for text in texts:
        encoded = text.encode()
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()


def encode_to_file(model, texts: list[str], path: Path, *, role: str, batch_size: int, prompt: str | None = None,
                   prompt_name: str | None = None, model_name: str | None = None, chunk_size: int | None = None,
                   show_progress_bar: bool = True, desc: str | None = None) -> Path:
    """Encode `texts` into `path` (.npy, float32, L2-normalised rows in the order of `texts`) as
    mine_hard_negatives encodes them (encode_query / encode_document with normalize_embeddings=True, lines
    480-501, so the model's own "query"/"document" prompts and Router tasks apply when no prompt is given);
    write the texts and a manifest beside it.

    Texts go to the model `chunk_size` at a time (default 64 batches; each call sorts its texts by length, so
    batches pad little) and each chunk's embeddings are appended to the file: memory holds one chunk of
    embeddings whatever the number of texts, and nothing of the file is mapped while it is written.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    path = Path(path)
    chunk_size = chunk_size or batch_size * 64
    encode = model.encode_query if role == "query" else model.encode_document
    dim = model.get_embedding_dimension()
    header = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(texts), dim))
    offset = header.offset  # where the rows start, after the .npy header
    del header
    # disable=None: a bar on a terminal only, never in a log file or a test's captured output
    with open(path, "r+b") as file, tqdm(total=len(texts), desc=desc or f"Encoding {role} texts", unit="text",
                                         disable=None if show_progress_bar else True) as bar:
        file.seek(offset)
        for start in range(0, len(texts), chunk_size):
            chunk = texts[start:start + chunk_size]
            embeddings = encode(chunk, batch_size=batch_size, prompt=prompt, prompt_name=prompt_name,
                                normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
            file.write(np.ascontiguousarray(embeddings, dtype=np.float32).tobytes())
            bar.update(len(chunk))
    write_texts(texts, texts_path(path), chunk_size)
    manifest = {
        "role": role, "count": len(texts), "dim": dim, "dtype": "float32", "normalized": True,
        "prompt": prompt, "prompt_name": prompt_name, "model": model_name, "texts_sha256": texts_digest(texts),
    }
    manifest_path(path).write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def write_texts(texts: list[str], path: Path, rows_per_group: int = 65536) -> None:
    """The texts, one Parquet row each in order, written one row group at a time."""
    schema = pa.schema([("text", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, len(texts), rows_per_group):
            writer.write_table(pa.table({"text": pa.array(texts[start:start + rows_per_group], pa.string())},
                                        schema=schema))
        if not texts:
            writer.write_table(schema.empty_table())


def load(path: Path) -> StoredEmbeddings:
    """A stored set, its vectors memory-mapped read-only (nothing is read until rows are used)."""
    path = Path(path)
    return StoredEmbeddings(path, np.load(path, mmap_mode="r"), json.loads(manifest_path(path).read_text()))


def read_rows(vectors: np.ndarray, rows) -> np.ndarray:
    """vectors[rows] as float32, in the order of `rows` (repeats allowed); a memmap's rows are read once each and in
    file order, so each page is read once.

    Example: ``read_rows(load(path).vectors, [5, 2, 5])`` is the rows 5, 2 and 5 of the stored set.
    """
    distinct, inverse = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
    return np.asarray(vectors[distinct], dtype=np.float32)[inverse.reshape(-1)]


def check_texts(stored: StoredEmbeddings, texts: list[str], what: str) -> None:
    """Raise unless `texts` are exactly the stored texts in the stored order (the rows would be misaligned)."""
    if len(texts) != len(stored) or texts_digest(texts) != stored.manifest["texts_sha256"]:
        raise ValueError(f"{what}: the {len(texts)} texts differ from the {len(stored)} embedded in {stored.path}; "
                         "re-run the embed stage")
