"""Which columns of the training data are texts, and their token ids in place of the texts."""

from __future__ import annotations

import pandas as pd

LABELS = ("label", "labels")  # the columns the trainer's collator passes to the loss as labels


def text_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in LABELS]


def texts_of(frame: pd.DataFrame) -> list[str]:
    """Every text of the frame's text columns, lists of texts flattened, in order (duplicates kept)."""
    texts = []
    for column in text_columns(frame):
        for value in frame[column]:
            texts.extend([value] if isinstance(value, str) else list(value))
    return texts


def to_ids(frame: pd.DataFrame, ids: dict[str, list[int]], max_length: int) -> pd.DataFrame:
    """Each text column as `<column>_ids`. At most max_length ids per text: a pair never uses more, so nothing
    the model sees is lost."""
    def convert(value):
        return ids[value][:max_length] if isinstance(value, str) else [ids[v][:max_length] for v in value]
    return pd.DataFrame({
        **{f"{c}_ids": frame[c].map(convert) for c in text_columns(frame)},
        **{c: frame[c] for c in LABELS if c in frame},
    })
