"""Length-grouped batches: rows of similar token counts share a batch, so a batch pads little. The trainer pads
each batch to its longest pair, and of random batches' tokens 19% (the sample data) to 32% (SQuAD pairs at 256)
are padding, which the model computes all the same. The library's samplers ignore `group_by_length`; this one
reads every row's length off the tokenize stage's token ids.

Each epoch, with a generator seeded by seed + epoch: the rows are shuffled, cut into pools of `window` batches,
each pool is sorted by length and cut into batches, and the batches are shuffled, the one holding the longest row
first (an out-of-memory then shows at the first step, not hours in). Every row comes once per epoch, the order is
the same for the same seed and epoch (so every DDP process builds the same batches and accelerate deals them out,
and a resumed run skips exactly the batches it had done), and the composition of batches still changes per epoch.

Off by default (train.group_by_length): batches of similar length are less random batches. On the sample recipe
(1,869 rows, each document in ~4 rows, as the positive of its query and a mined negative of others), sorting by
pair length gathered the same documents into a batch (3.4x as many same-document pairs as random batches) and
cost dev ndcg@10 (attention dropout off: 0.864 and 0.853 with random batches for seeds 12 and 13; 0.848 and 0.783
grouped in pools of 16 batches; 0.861 and 0.823 in pools of 4). Losses that score each pair on its own
(BinaryCrossEntropyLoss, MSELoss, CrossEntropyLoss) and the listwise losses (which rank one query's own documents)
see the same examples, only batched differently; MultipleNegativesRankingLoss and its cached variant would also
draw their in-batch negatives from rows of similar length.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from sentence_transformers.base.sampler import DefaultBatchSampler
from sentence_transformers.cross_encoder import CrossEncoderTrainer

# Batches per sorted pool. Padding of SQuAD pairs at 256 tokens, batch 32: 32% at random, 9% with pools of 4 batches,
# 3.2% of 16, 0.9% of 64. Smaller pools keep more randomness in which rows share a batch (with one pool for the
# whole data set, batches would be nearly the same every epoch).
WINDOW = 16


def row_lengths(dataset, max_length: int | None = None) -> np.ndarray:
    """Tokens of each row's longest (query, document) pair, before special tokens, capped at max_length (the
    collator truncates there, so longer rows are all alike). Token-id columns (`*_ids`: the query's first, then
    documents, each a list of ids or a list of such lists) count ids; without them, text columns count characters
    as a stand-in.

    Example: ``row_lengths(Dataset.from_dict({"query_ids": [[1, 2]], "document_ids": [[3, 4, 5]]}))`` is [5].
    """
    table = dataset.with_format("arrow")[:]  # the rows in the dataset's order (any select/shuffle applied)
    columns = [name for name in table.column_names if name.endswith("_ids")]
    if not columns:
        columns = [name for name in table.column_names if pa.types.is_string(table.schema.field(name).type)
                   or pa.types.is_large_string(table.schema.field(name).type)]
    if not columns:
        raise ValueError(f"no token-id (*_ids) or text column to read lengths from in {table.column_names}")
    query, *documents = [column_lengths(table.column(name)) for name in columns]
    lengths = query + (np.max(documents, axis=0) if documents else 0)
    return np.minimum(lengths, max_length) if max_length else lengths


def column_lengths(column: pa.ChunkedArray) -> np.ndarray:
    """Per row: the length of a list or string, or the longest inner list of a list of lists (0 when empty)."""
    column = column.combine_chunks()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.utf8_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
    if pa.types.is_list(column.type.value_type) or pa.types.is_large_list(column.type.value_type):
        inner = pc.list_value_length(pc.list_flatten(column)).to_numpy(zero_copy_only=False).astype(np.int64)
        parents = pc.list_parent_indices(column).to_numpy(zero_copy_only=False)
        longest = np.zeros(len(column), dtype=np.int64)
        np.maximum.at(longest, parents, inner)
        return longest
    return pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)


class LengthGroupedBatchSampler(DefaultBatchSampler):
    """Batches of rows of similar length, in a shuffled order; see the module's docstring.

    It takes the arguments the trainer gives every batch sampler, so it also works as
    ``CrossEncoderTrainingArguments(batch_sampler=LengthGroupedBatchSampler)`` (lengths then uncapped). The
    shared `generator` is left alone: the order depends only on seed and epoch.

    Example::

        sampler = LengthGroupedBatchSampler(dataset, batch_size=32, drop_last=False, seed=12, max_length=256)
        sampler.set_epoch(0)
        batches = list(sampler)  # lists of row indices
    """

    def __init__(self, dataset, batch_size: int, drop_last: bool, valid_label_columns: list[str] | None = None,
                 generator: torch.Generator | None = None, seed: int = 0, max_length: int | None = None,
                 window: int = WINDOW) -> None:
        super().__init__(range(len(dataset)), batch_size=batch_size, drop_last=drop_last,
                         valid_label_columns=valid_label_columns, generator=generator, seed=seed)
        self.lengths = row_lengths(dataset, max_length)
        self.window = window

    def __len__(self) -> int:
        rows = len(self.lengths)
        return rows // self.batch_size if self.drop_last else -(-rows // self.batch_size)

    def __iter__(self):
        generator = torch.Generator().manual_seed((self.seed or 0) + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).numpy()
        pool = self.batch_size * self.window  # a multiple of the batch size: only the last batch can be short
        batches = []
        for start in range(0, len(order), pool):
            rows = order[start : start + pool]
            rows = rows[np.argsort(-self.lengths[rows], kind="stable")]  # stable: equal lengths stay shuffled
            batches += [rows[i : i + self.batch_size] for i in range(0, len(rows), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if not batches:
            return
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        longest = max(range(len(batches)), key=lambda index: self.lengths[batches[index]].max())
        shuffled.remove(longest)
        for index in [longest, *shuffled]:
            yield batches[index].tolist()


class LengthGroupedTrainer(CrossEncoderTrainer):
    """A CrossEncoderTrainer whose training (and dev-loss) batches are length-grouped, capped at the model's
    max_seq_length. The sampler is chosen here rather than through `args.batch_sampler`, so the training
    arguments keep only plain values: DVCLive's callback writes them to YAML, which a class cannot go into."""

    window = WINDOW

    def get_batch_sampler(self, dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed=0):
        return LengthGroupedBatchSampler(dataset, batch_size=batch_size, drop_last=drop_last,
                                         valid_label_columns=valid_label_columns, generator=generator, seed=seed,
                                         max_length=getattr(self.model, "max_seq_length", None), window=self.window)

