"""In-domain calibration data for static int8 quantization: (query, document) pairs drawn from the training data
the mine stage wrote, whichever of its three forms (pairs, n-tuples, lists). A quantizer calibrated on generic
sentences sees single texts, while a reranker sees (query, document) pairs.

Example::

    pairs = calibration_pairs(pd.read_parquet("data/mine/train.parquet"), 300, seed=12)
    # [("who wrote hamlet?", "Hamlet is a tragedy by William Shakespeare..."), ...]
"""

from __future__ import annotations

import random

import pandas as pd


def training_pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """Every distinct (query, document) pair of the mine stage's training data, in its order."""
    pairs = []
    if "documents" in frame:  # lists: query, documents, labels
        pairs = [(query, document) for query, documents in zip(frame["query"], frame["documents"])
                 for document in documents]
    elif "positive" in frame:  # n-tuples: query, positive, negative_1..n
        columns = ["positive", *(column for column in frame.columns if column.startswith("negative_"))]
        pairs = [(row[0], document) for row in frame[["query", *columns]].itertuples(index=False)
                 for document in row[1:]]
    else:  # pairs: query, document, label
        pairs = list(zip(frame["query"], frame["document"]))
    return list(dict.fromkeys(pairs))


def calibration_pairs(frame: pd.DataFrame, count: int, seed: int) -> list[tuple[str, str]]:
    """`count` pairs drawn at random (seeded) from the training data, or all of them when it has fewer: positives
    and mined negatives alike, so the activations calibrated on span the scores the model gives."""
    pairs = training_pairs(frame)
    return random.Random(seed).sample(pairs, min(count, len(pairs)))

