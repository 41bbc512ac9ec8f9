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
- an approximate FAISS index (`faiss_index` other than "Flat", e.g. "IVF4096,Flat"): the index itself (for
  "IVF...,Flat" a copy of the corpus; "IVF...,SQ8" a quarter of it), built once by `corpus_index`.

Exact search costs n_queries x n_corpus inner products whatever the engine; an IVF index scans nprobe of its
nlist clusters, about nprobe / nlist of the corpus, for each query. On a 2-core machine: 100k queries against 1M
documents of 1024 dimensions, 26 minutes exact against 6 with IVF4096 (bench/scale.py --seed-000-shape); 1M
queries against 1M documents of 32, 110 minutes against 2 (bench/ann_recall.py). The price is missing some true
neighbours (a mined negative is then a slightly less hard one).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from reranker.core.errors import PipelineError


def _rows(array, start: int, stop: int) -> torch.Tensor:
    """Rows start:stop as a float32 tensor (a memmap's rows are read from disk here, a float32 array's are a view)."""
    rows = np.ascontiguousarray(array[start:stop], dtype=np.float32)
    with warnings.catch_warnings():  # a read-only memmap: torch warns that it could write to it, which we never do
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(rows)


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
        raise PipelineError("mine.use_faiss is true but faiss is not installed; pip install -e '.[faiss]' or set "
                            "mine.use_faiss false") from None
    return faiss


def corpus_index(corpus_embeddings, faiss_index: str, nprobe: int, train_rows: int = 262_144, seed: int = 0):
    """A FAISS index over the corpus from an index-factory string (inner product), for `top_k(index=...)`: trained,
    when the kind needs it, on up to `train_rows` corpus rows drawn with `seed`, filled a chunk at a time, searching
    `nprobe` clusters. A PipelineError names a string FAISS cannot build for these vectors.

    Example::

        index = corpus_index(corpus_embeddings, "IVF1024,Flat", nprobe=32)
        scores, indices = top_k(queries, corpus_embeddings, k=10, batch_size=1024, use_faiss=True, index=index)
    """
    faiss = _import_faiss()
    count, dim = corpus_embeddings.shape
    try:
        index = faiss.index_factory(dim, faiss_index, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1][:160] if str(error).strip() else "unknown"
        raise PipelineError(f"mine.faiss_index {faiss_index!r} is not a FAISS index for {dim}-dimensional vectors "
                            f"({reason}); give an index factory string such as 'Flat' or 'IVF1024,Flat'") from None
    if not index.is_trained:
        rows = np.sort(np.random.default_rng(seed).choice(count, size=min(count, train_rows), replace=False))
        try:
            index.train(np.ascontiguousarray(corpus_embeddings[rows], dtype=np.float32))
        except RuntimeError as error:  # e.g. more clusters than documents
            reason = str(error).strip().splitlines()[-1].split("failed: ")[-1][:160]
            raise PipelineError(f"mine.faiss_index {faiss_index!r} cannot be trained on this corpus of {count} "
                                f"documents ({reason}); use fewer clusters (about 40 documents a cluster) or "
                                "'Flat'") from None
    for start in range(0, count, 65536):
        index.add(np.ascontiguousarray(corpus_embeddings[start:start + 65536], dtype=np.float32))
    try:
        faiss.ParameterSpace().set_index_parameter(index, "nprobe", nprobe)
    except RuntimeError:  # an index without clusters (Flat, HNSW, ...) has no nprobe to set
        pass
    return index


def _order(scores: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best first and, among equal scores, the lower corpus index first, so that the order does not depend on
    how a search breaks ties (torch's topk and FAISS's heaps order tied documents differently). Which of several
    documents tied at the k-th score gets in is still the search's choice."""
    order = np.lexsort((np.where(indices < 0, np.iinfo(np.int64).max, indices), -scores), axis=1)
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(indices, order, axis=1)


def top_k(query_embeddings, corpus_embeddings, k: int, batch_size: int, use_faiss: bool = False,
          corpus_batch_size: int | None = None, index=None) -> tuple[np.ndarray, np.ndarray]:
    """The k corpus rows of highest inner product with each query row: (scores, indices), each (n_queries, k).

    query_embeddings/corpus_embeddings: 2-D float32 arrays or memmaps (read batch_size query rows at a time).
    batch_size: queries per search call, which bounds the score block (exact) or the result block (FAISS).
    use_faiss: search with FAISS's exact inner-product search (the routine IndexFlatIP.search runs, called on
    the corpus in place instead of on a copy held by an index); else with torch matrix products.
    corpus_batch_size: exact search only, documents per score block; None scores the whole corpus at once.
    index: with use_faiss, a FAISS index of the corpus (`corpus_index`) searched instead of the exact search.
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
    for start in range(0, n_queries, batch_size):
        queries = _rows(query_embeddings, start, start + batch_size)
        if use_faiss and index is not None:
            scores, indices = index.search(queries.numpy(), min(k, n_corpus))
        elif use_faiss:
            scores, indices = faiss.knn(queries.numpy(), corpus, min(k, n_corpus), metric=faiss.METRIC_INNER_PRODUCT)
        else:
            scores, indices = _exact(queries, corpus_embeddings, k, corpus_batch_size or n_corpus)
        scores[indices < 0] = -np.inf
        scores, indices = _order(scores, indices.astype(np.int64, copy=False))
        # fewer than k documents: the rest of the row keeps its padding (-inf, -1)
        scores_out[start:start + len(queries), :scores.shape[1]] = scores
        indices_out[start:start + len(queries), :indices.shape[1]] = indices
    return scores_out, indices_out
