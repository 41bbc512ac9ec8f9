"""sentence-transformers' `mine_hard_negatives` over stored embeddings, one block of queries at a time, so that
memory is bounded by the block sizes and not by the corpus.

Why not the library itself (util/hard_negatives.py; line numbers below are sentence-transformers 6.3's, whose
search depth and own-text rule this follows): it can be fed precomputed embeddings only through its cache folder,
whose files it loads whole with np.load (lines 445-469); its exact search holds a `faiss_batch_size` x corpus
score block (line 551), and its FAISS path copies the corpus into an index (line 528): memory grows with the
corpus whatever the batch size. Calling it once per block of queries changes its results instead: its search
depth (range_max + max_positives + 1) and the range_max it derives use the largest
number of positives of any query in the dataset it is given (lines 354-357, 365-376, 536/547), so a block whose
queries have fewer positives searches less deep and, with max_score, margins or random sampling, mines other
negatives. So this module searches with `reranker.mining.nearest.top_k` (exact search over blocks of queries and
documents, or FAISS on the corpus in place) and re-implements the selection after the search (lines 566-880):
options, checks and output rows as the library's, the dataset-wide max_positives, and the same `random.sample`
calls in the same query order, so that a run seeded with `random.seed` mines what the library mines
(tests/test_mining.py compares the two on a real model).

Not re-implemented, because the pipeline does not use them: cross_encoder rescoring (the mine stage scores with
its teacher afterwards), output_scores, the "triplet" format, use_multi_process, and the deprecated as_triplets and
margin. Two differences from the library: scores are inner products of the L2-normalised embeddings, the cosine
similarity the library computes for models whose similarity function is cosine or dot (and always with FAISS),
where its exact search would use the model's euclidean or manhattan similarity; and no range_max is capped at 2048,
which the library does for FAISS on a GPU only (the search here runs FAISS on the CPU).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from typing import Literal

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from reranker.mining.embeddings import read_rows
from reranker.mining.nearest import top_k

OUTPUT_FORMATS = ("n-tuple", "labeled-pair", "labeled-list")


def mine_hard_negatives_in_blocks(
    dataset, query_embeddings: np.ndarray, corpus: list[str], corpus_embeddings: np.ndarray, *,
    output_format: Literal["n-tuple", "labeled-pair", "labeled-list"], anchor_column_name: str = "query",
    positive_column_name: str = "document", range_min: int = 0, range_max: int | None = None,
    max_score: float | None = None, min_score: float | None = None, absolute_margin: float | None = None,
    relative_margin: float | None = None, num_negatives: int = 3, sampling_strategy: Literal["random", "top"] = "top",
    include_positives: bool = False, batch_size: int = 1024, corpus_batch_size: int | None = None,
    use_faiss: bool = False, index=None, show_progress_bar: bool = False, desc: str = "Mining hard negatives",
    with_ranks: bool = False,
) -> Iterator[pd.DataFrame]:
    """Hard negatives for (anchor, positive) pairs, as `mine_hard_negatives(dataset, model, corpus=corpus, ...)`
    mines them, from stored embeddings: yields, for each block of `batch_size` distinct queries, the rows that
    `mine_hard_negatives(...).to_pandas()` holds for those queries, in the same order.

    Args:
        dataset: (anchor, positive) rows: a `datasets.Dataset`, a `pandas.DataFrame` or a dict of lists; a query on
            several rows has several positives.
        query_embeddings: one L2-normalised row per distinct query of `dataset`, in first-seen order (the library's
            `list(dict.fromkeys(queries))`); a memmap is read one block at a time.
        corpus: the distinct texts searched for negatives, every positive among them (the library would append
            missing positives; here they would have no embedding).
        corpus_embeddings: one L2-normalised row per `corpus` text, in the same order.
        output_format: "n-tuple", "labeled-pair" or "labeled-list", as in the library (include_positives forces
            "n-tuple").
        range_min, range_max, max_score, min_score, absolute_margin, relative_margin, num_negatives,
            sampling_strategy, include_positives: as in `mine_hard_negatives`.
        batch_size: distinct queries per search block. The exact search holds a batch_size x corpus_batch_size
            float32 score block; FAISS its own blocks. Each block's selection holds batch_size x
            (range_max + max_positives) candidates.
        corpus_batch_size: documents per score block of the exact search; None scores the whole corpus at once.
        use_faiss: search with FAISS (exact inner product, as the library's IndexFlatIP) instead of torch.
        index: with use_faiss, a FAISS index of `corpus_embeddings` (`reranker.mining.nearest.corpus_index`, e.g.
            IVF) to search instead, approximately; the selection after the search is the same.
        show_progress_bar: show a progress bar over the queries (on a terminal only). It advances once a block's
            rows are consumed, so it also counts what the caller does with each block (e.g. a teacher's scoring).
        desc: the progress bar's description.
        with_ranks: also write each negative's first-stage rank (1-based, in the search's order, positives
            included), for the false-negative audit (reranker.mining.suspects): a `rank` column (0 on a positive's row)
            for labelled pairs, `rank_1..rank_n` for n-tuples, `ranks` (0 for the positive) for labelled lists. The
            library has no such column; off, the rows are the library's.

    Returns:
        An iterator of pandas DataFrames, one per block of queries; their concatenation is the library's output.
        The options and the data are checked when this is called, the blocks mined as they are iterated.

    Example:
        ::

            import random

            import pandas as pd
            from sentence_transformers import SentenceTransformer

            from reranker.mining.in_blocks import mine_hard_negatives_in_blocks

            model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
            dataset = {"query": ["what is a caldera?", "who wrote hamlet?"],
                       "document": ["A basin left by a collapsed volcano.", "Shakespeare wrote Hamlet."]}
            corpus = dataset["document"] + ["Volcanoes erupt lava.", "Macbeth is a tragedy.", "Rome is in Italy."]
            random.seed(12)  # the random sampling strategy draws from Python's random, as the library does
            blocks = mine_hard_negatives_in_blocks(
                dataset,
                model.encode_query(dataset["query"], normalize_embeddings=True),
                corpus,
                model.encode_document(corpus, normalize_embeddings=True),
                output_format="labeled-pair",
                num_negatives=2,
                batch_size=1,
            )
            pd.concat(blocks, ignore_index=True)
            # 6 rows (query, document, label): each query's positive, label 1, then its 2 negatives, label 0
    """
    if include_positives:
        output_format = "n-tuple"  # as the library sets it, to keep the ranking order
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"Invalid output_format: {output_format}. Must be one of {', '.join(OUTPUT_FORMATS)} "
                         "(the library's 'triplet' is not re-implemented here).")
    if sampling_strategy not in ("top", "random"):
        raise ValueError(f"sampling_strategy must be 'top' or 'random', got {sampling_strategy!r}.")
    if len(dataset[anchor_column_name]) == 0:
        raise ValueError("The dataset is empty. Please provide a non-empty dataset.")
    queries = list(dataset[anchor_column_name])
    positives = list(dataset[positive_column_name])
    # The library counts rows per query, a duplicated (query, positive) row included (line 355)
    max_positives = max(Counter(queries).values())
    range_max = derived_range_max(num_negatives, range_min, range_max, max_score, absolute_margin, relative_margin,
                                  max_positives)

    corpus_index = {text: index for index, text in enumerate(corpus)}
    if len(corpus_index) != len(corpus) or len(corpus) != len(corpus_embeddings):
        raise ValueError(f"the corpus must be distinct texts, one per embedding row: {len(corpus)} texts, "
                         f"{len(corpus_index)} distinct, {len(corpus_embeddings)} embeddings")
    distinct_queries = list(dict.fromkeys(queries))
    if len(distinct_queries) != len(query_embeddings):
        raise ValueError(f"{len(query_embeddings)} query embeddings for {len(distinct_queries)} distinct queries")
    # The corpus row that is the query's own text is never its negative, unless include_positives keeps a query that
    # is its own positive (lines 433, 574-576, 634-635)
    own_rows = {query: corpus_index.get(query, -1) for query in distinct_queries}
    positive_indices: dict[str, list[int]] = {query: [] for query in distinct_queries}
    for query, positive in zip(queries, positives):
        if positive not in corpus_index:
            raise ValueError(f"the positive {positive[:80]!r} is not in the corpus")
        if corpus_index[positive] not in positive_indices[query]:
            positive_indices[query].append(corpus_index[positive])
        if include_positives and query == positive:
            own_rows[query] = -1
    del queries, positives
    selection = dict(range_min=range_min, range_max=range_max, max_score=max_score, min_score=min_score,
                     absolute_margin=absolute_margin, relative_margin=relative_margin, num_negatives=num_negatives,
                     sampling_strategy=sampling_strategy, include_positives=include_positives)
    output = dict(output_format=output_format, corpus=corpus, anchor_column_name=anchor_column_name,
                  positive_column_name=positive_column_name, num_negatives=num_negatives, with_ranks=with_ranks)
    search = dict(k=range_max + max_positives + 1, use_faiss=use_faiss, corpus_batch_size=corpus_batch_size,
                  index=index)
    return _blocks(distinct_queries, positive_indices, own_rows, query_embeddings, corpus_embeddings, batch_size,
                   show_progress_bar, desc, search, selection, output)


def _blocks(queries: list[str], positive_indices: dict[str, list[int]], own_rows: dict[str, int],
            query_embeddings: np.ndarray,
            corpus_embeddings: np.ndarray, batch_size: int, show_progress_bar: bool, desc: str, search: dict,
            selection: dict, output: dict) -> Iterator[pd.DataFrame]:
    """Search, select and write the rows of batch_size queries at a time."""
    with tqdm(total=len(queries), desc=desc, unit="query", disable=None if show_progress_bar else True) as bar:
        for start in range(0, len(queries), batch_size):
            block = queries[start:start + batch_size]
            block_embeddings = np.ascontiguousarray(query_embeddings[start:start + len(block)], dtype=np.float32)
            # The range_max + max_positives + 1 best documents of each query: room for the positives and the
            # query's own text (lines 367, 519)
            scores, indices = top_k(block_embeddings, corpus_embeddings, batch_size=len(block), **search)
            block_positives = [positive_indices[query] for query in block]
            own = np.array([own_rows[query] for query in block], dtype=np.int64)
            negatives, negative_scores, ranks = _select(scores, indices, block_embeddings, block_positives, own,
                                                        corpus_embeddings, **selection)
            yield _output_rows(block, block_positives, negatives, ~np.isinf(negative_scores), ranks, **output)
            bar.update(len(block))


def derived_range_max(num_negatives: int, range_min: int, range_max: int | None, max_score: float | None,
                      absolute_margin: float | None, relative_margin: float | None, max_positives: int) -> int:
    """range_max as `mine_hard_negatives` derives it when None, after the library's checks, with its messages
    (lines 361-409; min_score widens the range only with a cross_encoder, which is not re-implemented here).

    Example:
        >>> derived_range_max(3, 0, None, None, 0.0, None, max_positives=1)  # a margin: 10 candidates a negative
        31
    """
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
            "or range_min, or increasing range_max."
        )
    return range_max


def _select(scores: np.ndarray, indices: np.ndarray, query_embeddings: np.ndarray, positives: list[list[int]],
            own: np.ndarray, corpus_embeddings: np.ndarray, *, range_min: int, range_max: int, max_score: float | None,
            min_score: float | None, absolute_margin: float | None, relative_margin: float | None,
            num_negatives: int, sampling_strategy: str,
            include_positives: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The negatives (corpus indices), their scores and their first-stage ranks (1-based) for one block of queries,
    best first; a score of -inf marks no negative. The library's lines 587-726, on numpy arrays; float32
    throughout, as the library's tensors."""
    counts = np.array([len(query_positives) for query_positives in positives])
    # Each (query, positive) pair's score; a margin compares with the query's lowest (lines 587-590, 646-656)
    flat_positives = np.concatenate([np.asarray(query_positives, dtype=np.int64) for query_positives in positives])
    owners = np.repeat(np.arange(len(positives)), counts)
    positive_scores = np.einsum("ij,ij->i", query_embeddings[owners], read_rows(corpus_embeddings, flat_positives))

    scores = scores.copy()
    scores[indices == -1] = -np.inf  # padding where the corpus holds fewer documents than searched (line 631)
    scores[indices == own[:, None]] = -np.inf  # the query's own text (lines 634-635)
    if not include_positives:  # lines 633-641
        padded = np.full((len(positives), counts.max()), -2, dtype=np.int64)  # -2: matches no index, not even -1
        for row, query_positives in enumerate(positives):
            padded[row, :len(query_positives)] = query_positives
        scores[(indices[:, :, None] == padded[:, None, :]).any(axis=2)] = -np.inf
    if absolute_margin is not None or relative_margin is not None:  # lines 646-677
        lowest_positive = np.minimum.reduceat(positive_scores, np.concatenate([[0], np.cumsum(counts)[:-1]]))
        if absolute_margin is not None:
            scores[scores + np.float32(absolute_margin) > lowest_positive[:, None]] = -np.inf
        if relative_margin is not None:
            threshold = lowest_positive - np.abs(lowest_positive) * np.float32(relative_margin)
            scores[scores > threshold[:, None]] = -np.inf
    if max_score is not None:  # lines 680-690
        scores[scores > np.float32(max_score)] = -np.inf
    if min_score is not None:  # lines 692-702
        scores[scores < np.float32(min_score)] = -np.inf

    # The range_max best candidates left, best first, then skip range_min (lines 704-709)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :range_max]
    negative_scores = np.take_along_axis(scores, order, axis=1)[:, range_min:]
    negatives = np.take_along_axis(indices, order, axis=1)[:, range_min:]
    ranks = order[:, range_min:] + 1  # the search returns the best first: a column is a rank
    if sampling_strategy == "top":  # lines 712-714
        return negatives[:, :num_negatives], negative_scores[:, :num_negatives], ranks[:, :num_negatives]
    # "random" (lines 716-726): among the candidates with a score when there are enough, as many random.sample
    # calls as the library makes, in the same query order, so that a seeded run draws the same negatives
    options = np.maximum(negatives.shape[1] - np.isinf(negative_scores).sum(axis=1), num_negatives)
    sampled = np.array([random.sample(range(int(count)), k=num_negatives) for count in options], dtype=np.int64)
    sampled = sampled.reshape(len(positives), num_negatives)
    negatives = np.take_along_axis(negatives, sampled, axis=1)
    negative_scores = np.take_along_axis(negative_scores, sampled, axis=1)
    ranks = np.take_along_axis(ranks, sampled, axis=1)
    resorted = np.argsort(-negative_scores, axis=1, kind="stable")
    return (np.take_along_axis(negatives, resorted, axis=1), np.take_along_axis(negative_scores, resorted, axis=1),
            np.take_along_axis(ranks, resorted, axis=1))


def _output_rows(queries: list[str], positives: list[list[int]], negatives: np.ndarray, found: np.ndarray,
                 ranks: np.ndarray, *, output_format: str, corpus: list[str], anchor_column_name: str,
                 positive_column_name: str, num_negatives: int, with_ranks: bool) -> pd.DataFrame:
    """The library's rows for these queries (lines 783-878): `found` marks the negatives with a score; with
    `with_ranks`, the negatives' first-stage `ranks` beside them."""
    if output_format == "labeled-pair":  # each positive (label 1), then each negative found (label 0)
        anchors, documents, labels, row_ranks = [], [], [], []
        for query, query_positives, query_negatives, query_found, query_ranks in zip(queries, positives, negatives,
                                                                                      found, ranks):
            for document in [*query_positives, *query_negatives[query_found]]:
                anchors.append(query)
                documents.append(corpus[document])
            labels += [1] * len(query_positives) + [0] * int(query_found.sum())
            row_ranks += [0] * len(query_positives) + list(query_ranks[query_found])
        frame = pd.DataFrame({anchor_column_name: _texts(anchors), positive_column_name: _texts(documents),
                              "label": np.array(labels, dtype=np.int64)})
        return frame.assign(rank=np.array(row_ranks, dtype=np.int64)) if with_ranks else frame

    # n-tuple and labeled-list: one row per (query, positive), with the query's negatives
    rows = [(query, positive, query_negatives, query_found, query_ranks)
            for query, query_positives, query_negatives, query_found, query_ranks
            in zip(queries, positives, negatives, found, ranks)
            for positive in query_positives]
    if output_format == "n-tuple":  # only rows with all num_negatives negatives
        rows = [row for row in rows if row[3].all()]
        frame = pd.DataFrame({
            anchor_column_name: _texts([query for query, *_ in rows]),
            positive_column_name: _texts([corpus[positive] for _, positive, *_ in rows]),
            **{f"negative_{column + 1}": _texts([corpus[row[2][column]] for row in rows])
               for column in range(num_negatives)},
        })
        if with_ranks:
            frame = frame.assign(**{f"rank_{column + 1}": np.array([row[4][column] for row in rows], dtype=np.int64)
                                    for column in range(num_negatives)})
        return frame
    rows = [row for row in rows if row[3].any()]  # labeled-list: the positive, then the negatives found
    documents = [[corpus[positive], *(corpus[negative] for negative in row_negatives[row_found])]
                 for _, positive, row_negatives, row_found, _ in rows]
    frame = pd.DataFrame({
        anchor_column_name: _texts([query for query, *_ in rows]),
        positive_column_name: pd.Series(documents, dtype=object),
        "labels": pd.Series([[1] + [0] * int(row[3].sum()) for row in rows], dtype=object),
    })
    if with_ranks:
        frame["ranks"] = pd.Series([[0, *(int(r) for r in row[4][row[3]])] for row in rows], dtype=object)
    return frame


def _texts(values: list[str]) -> pd.Series:
    """A text column with the dtype pandas gives the library's Arrow strings (`str` in pandas 3, object before),
    also when a block has no rows."""
    return pd.Series(values, dtype=str)
