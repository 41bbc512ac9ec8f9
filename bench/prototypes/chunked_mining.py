"""PROTOTYPE, not used by the stages yet (the next step of issue 14, for reranker/mining.py): sentence-transformers' mine_hard_negatives selection
(util/hard_negatives.py lines 293-880, sentence-transformers 6.2) over chunks of queries, on precomputed
normalised embeddings searched with reranker.nearest.top_k, yielding each chunk's rows as the DataFrame that
`mine_hard_negatives(...).to_pandas()` would hold for those queries.

Why not the library itself, called per chunk: its search depth is range_max + max_positives and its derived
range_max uses max_positives, both taken over the dataset it is given (lines 354-357, 365-376, 536/547): a chunk
whose queries have fewer positives searches less deep, so with max_score/margins (which discard the top
candidates) or random sampling its rows differ from one call over all queries. Here max_positives is the
global one. The random sampling makes the same `random.sample` calls in the same query order, so a seeded run
equals the library's. No cross_encoder rescoring, no output_scores, no triplet format (the pipeline uses none).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Iterator

import numpy as np
import pandas as pd

from reranker.nearest import top_k

FORMATS = ("labeled-pair", "n-tuple", "labeled-list")


def window(num_negatives: int, range_min: int, range_max: int | None, max_score, min_score, absolute_margin,
           relative_margin, max_positives: int) -> int:
    """range_max as the library derives and checks it (lines 361-409)."""
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be at least 1, got num_negatives={num_negatives}.")
    if range_max is None:
        if absolute_margin is not None or relative_margin is not None or max_score is not None:
            range_max = range_min + (num_negatives * 10) + max_positives
        else:
            range_max = range_min + num_negatives + max_positives
    if range_min < 0:
        raise ValueError(f"range_min must be non-negative, got range_min={range_min}.")
    if range_min >= range_max:
        raise ValueError(f"range_min must be smaller than range_max, got range_min={range_min} and "
                         f"range_max={range_max}.")
    if num_negatives > range_max - range_min:
        raise ValueError(
            f"Cannot mine {num_negatives} negatives per query: only {range_max - range_min} candidates remain after "
            f"skipping the first range_min={range_min} of range_max={range_max}. Consider decreasing num_negatives "
            f"or range_min, or increasing range_max.")
    return range_max


def mine_chunks(queries: list[str], positives: list[str], corpus: list[str], query_vectors, corpus_vectors, *,
                anchor_column_name: str = "query", positive_column_name: str = "document", range_min: int = 0,
                range_max: int | None = None, max_score: float | None = None, min_score: float | None = None,
                absolute_margin: float | None = None, relative_margin: float | None = None, num_negatives: int = 3,
                sampling_strategy: str = "top", include_positives: bool = False,
                output_format: str = "labeled-pair", batch_size: int = 1024, use_faiss: bool = False,
                corpus_batch_size: int | None = None) -> Iterator[pd.DataFrame]:
    """`queries`/`positives`: the dataset's two columns, row for row. `corpus`: the texts of corpus_vectors' rows,
    which must already hold every positive (the library appends missing ones, line 420). `query_vectors`: one
    row per distinct query in first-seen order (line 428). Vectors L2-normalised, as the library encodes them."""
    if include_positives:
        output_format = "n-tuple"  # as the library forces (line 327-331)
    if output_format not in FORMATS:
        raise ValueError(f"output_format {output_format!r} is not one of {FORMATS}")
    rows_per_query = Counter(queries)
    max_positives = max(rows_per_query.values())  # rows, not distinct positives, as the library counts (355)
    range_max = window(num_negatives, range_min, range_max, max_score, min_score, absolute_margin, relative_margin,
                       max_positives)
    corpus_idx = {text: i for i, text in enumerate(corpus)}
    if missing := [p for p in dict.fromkeys(positives) if p not in corpus_idx]:
        raise ValueError(f"{len(missing)} positives are not in the corpus, e.g. {missing[0]!r}")
    unique = list(dict.fromkeys(queries))
    if len(unique) != len(query_vectors):
        raise ValueError(f"{len(query_vectors)} query vectors for {len(unique)} distinct queries")
    positive_indices: dict[str, list[int]] = {}
    for query, positive in zip(queries, positives):
        found = positive_indices.setdefault(query, [])
        if corpus_idx[positive] not in found:
            found.append(corpus_idx[positive])

    for start in range(0, len(unique), batch_size):
        chunk = unique[start:start + batch_size]
        chunk_vectors = np.ascontiguousarray(query_vectors[start:start + len(chunk)], dtype=np.float32)
        scores, indices = top_k(chunk_vectors, corpus_vectors, range_max + max_positives, batch_size=len(chunk),
                                use_faiss=use_faiss, corpus_batch_size=corpus_batch_size)
        positives_of = [positive_indices[q] for q in chunk]
        n_pos = np.array([len(p) for p in positives_of])
        # positive scores, one per (query, distinct positive), in order (lines 587-590)
        flat_pos = np.concatenate([np.array(p, dtype=np.int64) for p in positives_of])
        owner = np.repeat(np.arange(len(chunk)), n_pos)
        positive_scores = np.einsum("ij,ij->i", chunk_vectors[owner], _rows(corpus_vectors, flat_pos))

        scores[indices == -1] = -np.inf  # line 631
        if not include_positives:  # lines 633-641
            padded = np.full((len(chunk), n_pos.max()), -2, dtype=np.int64)
            for i, p in enumerate(positives_of):
                padded[i, :len(p)] = p
            scores[(indices[:, :, None] == padded[:, None, :]).any(-1)] = -np.inf
        if absolute_margin is not None or relative_margin is not None:  # lines 646-677
            min_positive = np.minimum.reduceat(positive_scores, np.concatenate([[0], np.cumsum(n_pos)[:-1]]))
            if absolute_margin is not None:
                scores[scores + np.float32(absolute_margin) > min_positive[:, None]] = -np.inf
            if relative_margin is not None:
                threshold = min_positive - np.abs(min_positive) * np.float32(relative_margin)
                scores[scores > threshold[:, None]] = -np.inf
        if max_score is not None:
            scores[scores > max_score] = -np.inf
        if min_score is not None:
            scores[scores < min_score] = -np.inf
        # top range_max of what is left, best first (line 704); then skip range_min (707-709)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :range_max]
        negative_scores = np.take_along_axis(scores, order, axis=1)[:, range_min:]
        negatives = np.take_along_axis(indices, order, axis=1)[:, range_min:]
        if sampling_strategy == "top":
            negatives, negative_scores = negatives[:, :num_negatives], negative_scores[:, :num_negatives]
        elif sampling_strategy == "random":  # lines 716-726: the library's own random.sample calls, in order
            options = np.maximum(negatives.shape[1] - np.isinf(negative_scores).sum(1), num_negatives)
            sampled = np.array([random.sample(range(int(o)), k=num_negatives) for o in options])
            negatives = np.take_along_axis(negatives, sampled, axis=1)
            negative_scores = np.take_along_axis(negative_scores, sampled, axis=1)
            resort = np.argsort(-negative_scores, axis=1, kind="stable")
            negatives = np.take_along_axis(negatives, resort, axis=1)
            negative_scores = np.take_along_axis(negative_scores, resort, axis=1)
        else:
            raise ValueError(f"sampling_strategy must be 'top' or 'random', got {sampling_strategy!r}")
        finite = ~np.isinf(negative_scores)
        yield _rows_of(output_format, chunk, positives_of, negatives, finite, corpus, anchor_column_name,
                       positive_column_name, num_negatives)


def _rows(vectors, flat: np.ndarray) -> np.ndarray:
    """vectors[flat] for a memmap too, reading each distinct row once, in file order."""
    unique, inverse = np.unique(flat, return_inverse=True)
    return np.asarray(vectors[unique], dtype=np.float32)[inverse]


def _rows_of(output_format, chunk, positives_of, negatives, finite, corpus, anchor, positive, num_negatives):
    """The rows the library writes for these queries (lines 783-878)."""
    if output_format == "labeled-pair":
        q, d, label = [], [], []
        for query, pos, negs, keep in zip(chunk, positives_of, negatives, finite):
            for p in pos:
                q.append(query), d.append(corpus[p]), label.append(1)
            for n in negs[keep]:
                q.append(query), d.append(corpus[n]), label.append(0)
        return pd.DataFrame({anchor: q, positive: d, "label": np.array(label, dtype=np.int64)})
    q, p_texts, rows_negs, rows_keep = [], [], [], []
    for query, pos, negs, keep in zip(chunk, positives_of, negatives, finite):
        for p in pos:
            q.append(query), p_texts.append(corpus[p]), rows_negs.append(negs), rows_keep.append(keep)
    if output_format == "n-tuple":
        whole = [i for i, keep in enumerate(rows_keep) if keep.all()]
        frame = {anchor: [q[i] for i in whole], positive: [p_texts[i] for i in whole]}
        for j in range(num_negatives):
            frame[f"negative_{j + 1}"] = [corpus[rows_negs[i][j]] for i in whole]
        return pd.DataFrame(frame)
    some = [i for i, keep in enumerate(rows_keep) if keep.any()]
    return pd.DataFrame({
        anchor: [q[i] for i in some],
        positive: [[p_texts[i]] + [corpus[n] for n in rows_negs[i][rows_keep[i]]] for i in some],
        "labels": [[1] + [0] * int(rows_keep[i].sum()) for i in some],
    })
