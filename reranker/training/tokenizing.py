"""Token ids in place of texts, in Arrow: a Parquet file of texts (strings, or lists of strings) becomes a Parquet
file of their token ids, written one row group at a time, so that memory holds one group whatever the file's size
and the train stage's dataset reads the ids a group at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

LABELS = ("label", "labels")  # the columns the trainer's collator passes to the loss as labels
# Rows tokenized and written at a time. Big enough that the tokenizer's batches and Parquet's pages are efficient,
# small enough that one group of mined n-tuples (its texts and ids as Python objects) stays well under 1 GiB.
ROWS_PER_GROUP = 8192
IDS = pa.list_(pa.int32())  # a vocabulary fits int32; half the size of the int64 that pandas would write


@dataclass
class TokenCounts:
    """What a tokenized file held: each (query, document) pair's length with `special_tokens` added, before
    truncation, and a 64-bit hash of each text tokenized (to count distinct texts without keeping them)."""

    special_tokens: int
    pair_lengths: list[np.ndarray] = field(default_factory=list)
    text_hashes: list[np.ndarray] = field(default_factory=list)

    def lengths(self) -> np.ndarray:
        return np.concatenate(self.pair_lengths) if self.pair_lengths else np.zeros(0, np.int64)

    def distinct_texts(self) -> int:
        return len(np.unique(np.concatenate(self.text_hashes))) if self.text_hashes else 0


def text_columns(schema: pa.Schema) -> list[str]:
    return [name for name in schema.names if name not in LABELS]


def id_schema(schema: pa.Schema) -> pa.Schema:
    """Each text column as `<column>_ids` (a string as a list of ids, a list of strings as a list of them), then the
    label columns as they are."""
    fields = []
    for name in text_columns(schema):
        kind = schema.field(name).type
        if is_text(kind):
            fields.append(pa.field(f"{name}_ids", IDS))
        elif (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and is_text(kind.value_type):
            fields.append(pa.field(f"{name}_ids", pa.list_(IDS)))
        else:
            raise ValueError(f"column {name!r}: expected texts (string or list of strings), got {kind}")
    return pa.schema(fields + [schema.field(name) for name in LABELS if name in schema.names])


def is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def token_id_table(table: pa.Table, tokenizer, max_length: int, counts: TokenCounts | None = None) -> pa.Table:
    """`table`'s texts as token ids (no special tokens: PairEncoder adds them per pair), each distinct text of the
    table tokenized once and cut at max_length ids (a pair never uses more, so nothing the model sees is lost).
    `counts`, when given, gets the pair lengths and text hashes."""
    columns = {name: table.column(name).to_pylist() for name in text_columns(table.schema)}
    distinct = list(dict.fromkeys(text for values in columns.values() for value in values
                                  for text in ([value] if isinstance(value, str) else value)))
    ids = dict(zip(distinct, tokenizer(distinct, add_special_tokens=False, verbose=False)["input_ids"]))
    schema = id_schema(table.schema)
    arrays = []
    for name, values in columns.items():
        if schema.field(f"{name}_ids").type == IDS:
            arrays.append(pa.array([ids[text][:max_length] for text in values], IDS))
        else:
            arrays.append(pa.array([[ids[text][:max_length] for text in texts] for texts in values], pa.list_(IDS)))
    arrays += [table.column(name) for name in LABELS if name in table.schema.names]
    if counts is not None:
        length = {text: len(text_ids) for text, text_ids in ids.items()}
        query, *documents = columns.values()
        counts.pair_lengths.append(np.array(
            [length[q] + length[d] + counts.special_tokens for values in documents for q, value in zip(query, values)
             for d in ([value] if isinstance(value, str) else value)], dtype=np.int64))
        counts.text_hashes.append(np.fromiter(map(hash, distinct), dtype=np.int64, count=len(distinct)))
    return pa.Table.from_arrays(arrays, schema=schema)


def write_token_ids(source: Path, dest: Path, tokenizer, max_length: int, counts: TokenCounts | None = None,
                    rows_per_group: int = ROWS_PER_GROUP, show_progress_bar: bool = False,
                    desc: str = "Tokenizing") -> int:
    """Tokenize the Parquet file `source` into `dest`, `rows_per_group` rows at a time, one row group each; returns
    the number of rows. `show_progress_bar` shows a bar over the rows on a terminal. Example::

        counts = TokenCounts(special_tokens=3)
        write_token_ids(Path("data/mined/train.parquet"), Path("train.parquet"), tokenizer, 256, counts)
        counts.lengths().mean()  # mean tokens per (query, document) pair
    """
    # pre_buffer off: with it, the reader keeps every row group it has read until it is closed (Arrow memory grew
    # by 1.6 MiB a group, 0.8 GiB over the 4M rows mined from 1M pairs), the whole file by the end
    reader = pq.ParquetFile(source, pre_buffer=False)
    schema = id_schema(reader.schema_arrow)
    rows = 0
    with pq.ParquetWriter(dest, schema) as writer, tqdm(total=reader.metadata.num_rows, desc=desc, unit="row",
                                                        disable=None if show_progress_bar else True) as bar:
        for batch in reader.iter_batches(batch_size=rows_per_group):
            writer.write_table(token_id_table(pa.Table.from_batches([batch]), tokenizer, max_length, counts),
                               row_group_size=rows_per_group)
            rows += batch.num_rows
            bar.update(batch.num_rows)
        if rows == 0:
            writer.write_table(schema.empty_table())
    return rows
