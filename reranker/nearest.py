"""Nearest neighbours by inner product (cosine on the normalised embeddings the embed stage stores), in bounded
memory: an exact search over chunks of queries (and, optionally, of the corpus), or FAISS.

Both return the k best documents of each query, best first, as float32 scores and int64 corpus indices; a
query with fewer than k documents is padded with score -inf and index -1, as sentence-transformers'
mine_hard_negatives pads its own search results (hard_negatives.py, "Pad back up ... with index -1").

Memory beyond the inputs and the (n_queries, k) results:
- exact: one float32 score block of batch_size x corpus_batch_size (the whole corpus when corpus_batch_size is
  None), plus its top k; so batch_size=256 over a 1M corpus is a 1 GiB block, and corpus_batch_size caps it
  whatever the corpus size.
- FAISS: the search's own blocks (faiss computes inner products in blocks of 4096 queries x 1024 documents)
  and the batch_size x k results; the corpus is searched where it lies, not copied into an index.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from tqdm.auto import tqdm

from reranker.errors import PipelineError

FAISS_MISSING = ("mine.use_faiss is true but faiss is not installed; pip install -e '.[faiss]' "
                 "or set mine.use_faiss false")


def _rows(array, start: int, stop: int) -> torch.Tensor:
    """Rows start:stop as a float32 tensor (a memmap's rows are read from disk here, a float32 array's are a view)."""
    rows = np.ascontiguousarray(array[start:stop], dtype=np.float32)
    with warnings.catch_warnings():  # a read-only memmap: torch warns that it could write to it, which we never do
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(rows)


def _pad(scores: np.ndarray, indices: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    missing = k - scores.shape[1]
    if missing > 0:
        scores = np.concatenate([scores, np.full((len(scores), missing), -np.inf, np.float32)], axis=1)
        indices = np.concatenate([indices, np.full((len(indices), missing), -1, np.int64)], axis=1)
    return scores, indices


def _exact(queries: torch.Tensor, corpus, k: int, corpus_batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of one chunk of queries, the corpus taken corpus_batch_size documents at a time and each
    block's top k merged into the running top k."""
    best_scores = best_indices = None
    for start in range(0, len(corpus), corpus_batch_size):
        scores = queries @ _rows(corpus, start, start + corpus_batch_size).T
        scores, indices = torch.topk(scores, k=min(k, scores.shape[1]), dim=1)
        indices += start
        if best_scores is not None:
            merged = torch.cat([best_scores, scores], dim=1)
            scores, picked = torch.topk(merged, k=min(k, merged.shape[1]), dim=1)
            indices = torch.gather(torch.cat([best_indices, indices], dim=1), 1, picked)
        best_scores, best_indices = scores, indices
    return best_scores.numpy(), best_indices.numpy()


def _import_faiss():
    try:
        import faiss
    except ImportError:
        raise PipelineError(FAISS_MISSING) from None
    return faiss


def _order(scores: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best first and, among equal scores, the lower corpus index first, so that the order does not depend on
    how a search breaks ties (torch's topk and FAISS's heaps order tied documents differently). Which of several
    documents tied at the k-th score gets in is still the search's choice."""
    order = np.lexsort((np.where(indices < 0, np.iinfo(np.int64).max, indices), -scores), axis=1)
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(indices, order, axis=1)


def top_k(query_embeddings, corpus_embeddings, k: int, batch_size: int, use_faiss: bool = False,
          corpus_batch_size: int | None = None, show_progress_bar: bool = False,
          desc: str = "Nearest neighbours") -> tuple[np.ndarray, np.ndarray]:
    """The k corpus rows of highest inner product with each query row: (scores, indices), each (n_queries, k).

    query_embeddings/corpus_embeddings: 2-D float32 arrays or memmaps (read batch_size query rows at a time).
    batch_size: queries per search call, which bounds the score block (exact) or the result block (FAISS).
    use_faiss: search with FAISS's exact inner-product search (the routine IndexFlatIP.search runs, called on
    the corpus in place instead of on a copy held by an index); else with torch matrix products.
    corpus_batch_size: exact search only, documents per score block; None scores the whole corpus at once.
    """
    if k < 1 or batch_size < 1 or (corpus_batch_size is not None and corpus_batch_size < 1):
        raise ValueError(f"k, batch_size and corpus_batch_size must be positive, got {k}, {batch_size}, "
                         f"{corpus_batch_size}")
    n_queries, n_corpus = len(query_embeddings), len(corpus_embeddings)
    if n_queries and n_corpus and query_embeddings.shape[1] != corpus_embeddings.shape[1]:
        raise ValueError(f"query embeddings have {query_embeddings.shape[1]} dimensions, corpus embeddings "
                         f"{corpus_embeddings.shape[1]}")
    scores_out = np.full((n_queries, k), -np.inf, np.float32)
    indices_out = np.full((n_queries, k), -1, np.int64)
    if n_queries == 0 or n_corpus == 0:
        return scores_out, indices_out
    if use_faiss:
        faiss = _import_faiss()
        corpus = np.ascontiguousarray(corpus_embeddings, dtype=np.float32)  # a float32 memmap stays a view
    with tqdm(total=n_queries, desc=desc, unit="query", disable=not show_progress_bar) as progress:
        for start in range(0, n_queries, batch_size):
            queries = _rows(query_embeddings, start, start + batch_size)
            if use_faiss:
                scores, indices = faiss.knn(queries.numpy(), corpus, min(k, n_corpus),
                                            metric=faiss.METRIC_INNER_PRODUCT)
            else:
                scores, indices = _exact(queries, corpus_embeddings, k, corpus_batch_size or n_corpus)
            scores, indices = _pad(scores, indices.astype(np.int64, copy=False), k)
            scores[indices < 0] = -np.inf
            scores, indices = _order(scores, indices)
            scores_out[start:start + len(queries)] = scores
            indices_out[start:start + len(queries)] = indices
            progress.update(len(queries))
    return scores_out, indices_out
