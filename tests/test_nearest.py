"""reranker.mining.nearest.top_k: exact chunked search and FAISS agree, chunking changes nothing, the batch sizes bound
what is computed at once, and a missing faiss is one line naming the install."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from reranker.core.errors import PipelineError
from reranker.mining import nearest
from reranker.mining.nearest import top_k

TOLERANCE = 1e-5  # float32 inner products of unit vectors summed in a different order differ by ~1e-7


def unit_rows(rng, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def embeddings():
    rng = np.random.default_rng(0)
    return unit_rows(rng, 300, 16), unit_rows(rng, 2000, 16)


def assert_same_neighbours(expected, actual, queries, corpus):
    """Same scores; every returned document truly scores what is reported; the same documents in the same
    order wherever no other document scores within TOLERANCE (a near-tie may be broken either way), the last
    excepted."""
    (scores, indices), (other_scores, other_indices) = expected, actual
    np.testing.assert_allclose(other_scores, scores, atol=TOLERANCE)
    true = np.einsum("qd,qkd->qk", queries, corpus[other_indices])
    np.testing.assert_allclose(true, other_scores, atol=TOLERANCE)
    gaps = np.diff(scores, axis=1)
    clear = np.ones_like(scores, dtype=bool)
    clear[:, 1:] &= -gaps > TOLERANCE
    clear[:, :-1] &= -gaps > TOLERANCE
    clear[:, -1] = False  # the last may tie with a document neither returned, which either search may keep
    assert (indices[clear] == other_indices[clear]).all()


def brute_force(queries, corpus, k):
    scores = queries @ corpus.T
    indices = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, indices, axis=1), indices


def test_exact_matches_brute_force(embeddings):
    queries, corpus = embeddings
    result = top_k(queries, corpus, k=10, batch_size=64)
    assert result[0].shape == result[1].shape == (300, 10)
    assert result[0].dtype == np.float32 and result[1].dtype == np.int64
    assert (np.diff(result[0], axis=1) <= 0).all()  # best first
    assert_same_neighbours(brute_force(queries, corpus, 10), result, queries, corpus)


def test_exact_and_faiss_agree(embeddings):
    pytest.importorskip("faiss")
    queries, corpus = embeddings
    exact = top_k(queries, corpus, k=25, batch_size=50)
    with_faiss = top_k(queries, corpus, k=25, batch_size=50, use_faiss=True)
    assert_same_neighbours(exact, with_faiss, queries, corpus)


def test_faiss_gives_what_an_index_flat_ip_gives(embeddings):
    faiss = pytest.importorskip("faiss")
    queries, corpus = embeddings
    index = faiss.IndexFlatIP(corpus.shape[1])
    index.add(corpus)
    assert_same_neighbours(index.search(queries, 10), top_k(queries, corpus, 10, 300, use_faiss=True), queries, corpus)


def test_ivf_index_probing_every_cluster_is_exact_and_fewer_is_approximate(embeddings):
    pytest.importorskip("faiss")
    queries, corpus = embeddings
    exact = top_k(queries, corpus, k=10, batch_size=64)
    every = nearest.corpus_index(corpus, "IVF16,Flat", nprobe=16)
    assert_same_neighbours(exact, top_k(queries, corpus, 10, 64, use_faiss=True, index=every), queries, corpus)
    one = nearest.corpus_index(corpus, "IVF16,Flat", nprobe=1)
    scores, indices = top_k(queries, corpus, 10, 64, use_faiss=True, index=one)
    found = indices >= 0
    np.testing.assert_allclose(np.einsum("qd,qkd->qk", queries, corpus[np.where(found, indices, 0)])[found],
                               scores[found], atol=TOLERANCE)  # what it returns is true, best first
    assert (np.diff(scores, axis=1)[found[:, 1:]] <= 0).all()
    recall = np.mean([len(set(row) & set(true)) / 10 for row, true in zip(indices, exact[1])])
    assert 0.2 < recall < 1.0  # 1 of 16 clusters: a real approximation, not the exact search


def test_a_faiss_index_string_faiss_cannot_build_is_one_line(embeddings):
    pytest.importorskip("faiss")
    _, corpus = embeddings
    # unknown; 16 dimensions do not split into 5 sub-vectors; more clusters than the 2,000 documents
    for spec in ("IVF16,Flatt", "PQ5", "IVF4096,Flat"):
        with pytest.raises(PipelineError) as error:
            nearest.corpus_index(corpus, spec, nprobe=4)
        assert "\n" not in str(error.value) and repr(spec) in str(error.value) and "'Flat'" in str(error.value)


@pytest.mark.parametrize("batch_size, corpus_batch_size", [(1, None), (7, None), (300, 13), (64, 500), (1000, 5000)])
def test_chunking_changes_nothing(embeddings, batch_size, corpus_batch_size):
    queries, corpus = embeddings
    whole = top_k(queries, corpus, k=12, batch_size=len(queries))
    chunked = top_k(queries, corpus, k=12, batch_size=batch_size, corpus_batch_size=corpus_batch_size)
    assert_same_neighbours(whole, chunked, queries, corpus)


def test_ties_go_to_the_lower_index_both_ways():
    rng = np.random.default_rng(1)
    corpus = unit_rows(rng, 50, 8)
    corpus[[7, 30, 41]] = corpus[3]  # four identical documents
    queries = corpus[[3]]
    searches = [top_k(queries, corpus, 6, 1), top_k(queries, corpus, 6, 1, corpus_batch_size=9)]
    if _has_faiss():
        searches.append(top_k(queries, corpus, 6, 1, use_faiss=True))
    for _, indices in searches:
        assert indices[0, :4].tolist() == [3, 7, 30, 41]


def test_fewer_documents_than_k_are_padded(embeddings):
    queries, corpus = embeddings
    for use_faiss in (False, True) if _has_faiss() else (False,):
        scores, indices = top_k(queries[:5], corpus[:4], k=6, batch_size=2, use_faiss=use_faiss)
        assert (indices[:, 4:] == -1).all() and np.isneginf(scores[:, 4:]).all()
        assert sorted(indices[0, :4].tolist()) == [0, 1, 2, 3]


def test_memmapped_embeddings(tmp_path, embeddings):
    queries, corpus = embeddings
    np.save(tmp_path / "q.npy", queries)
    np.save(tmp_path / "c.npy", corpus)
    mapped = (np.load(tmp_path / "q.npy", mmap_mode="r"), np.load(tmp_path / "c.npy", mmap_mode="r"))
    for use_faiss in (False, True) if _has_faiss() else (False,):
        in_memory = top_k(queries, corpus, 8, 32, use_faiss=use_faiss)
        from_disk = top_k(*mapped, 8, 32, use_faiss=use_faiss, corpus_batch_size=None if use_faiss else 700)
        assert_same_neighbours(in_memory, from_disk, queries, corpus)


def test_batch_sizes_bound_each_search_call(monkeypatch, embeddings):
    queries, corpus = embeddings
    blocks = []
    real_rows = nearest._rows

    def rows(array, start, stop):
        block = real_rows(array, start, stop)
        blocks.append((array is corpus, tuple(block.shape)))
        return block

    monkeypatch.setattr(nearest, "_rows", rows)
    top_k(queries, corpus, k=5, batch_size=40, corpus_batch_size=300)
    query_blocks = [shape for is_corpus, shape in blocks if not is_corpus]
    corpus_blocks = [shape for is_corpus, shape in blocks if is_corpus]
    assert max(rows for rows, _ in query_blocks) == 40 and sum(rows for rows, _ in query_blocks) == 300
    assert max(rows for rows, _ in corpus_blocks) == 300
    assert len(corpus_blocks) == len(query_blocks) * 7  # 2000 documents in blocks of 300, for each query chunk

    if _has_faiss():
        import faiss

        searched = []
        real_knn = faiss.knn

        def knn(xq, xb, k, **kwargs):
            searched.append(len(xq))
            return real_knn(xq, xb, k, **kwargs)

        monkeypatch.setattr(faiss, "knn", knn)
        top_k(queries, corpus, k=5, batch_size=64, use_faiss=True)
        assert searched == [64, 64, 64, 64, 44]


def test_peak_memory_follows_batch_size_not_corpus(tmp_path):
    """In a fresh process: 3,000 queries against 400,000 documents (a 4.8 GB score matrix if scored at once) in
    chunks of 16 queries grow the resident memory by about a 16 x 400,000 block (26 MB), nowhere near the matrix."""
    script = textwrap.dedent("""
        import resource, sys
        import numpy as np
        from reranker.mining.nearest import top_k
        rng = np.random.default_rng(0)
        corpus = rng.standard_normal((400_000, 8)).astype(np.float32)
        queries = rng.standard_normal((3_000, 8)).astype(np.float32)
        top_k(queries[:16], corpus, 10, 16)  # warm up torch's thread pool and allocator
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        top_k(queries, corpus, 10, 16)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
    """)
    grown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           cwd=Path(nearest.__file__).parents[1])
    assert int(grown.stdout.split()[-1]) < 200 * 2**20


def test_missing_faiss_is_one_line(monkeypatch, embeddings):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError
    queries, corpus = embeddings
    with pytest.raises(PipelineError) as error:
        top_k(queries, corpus, 5, 10, use_faiss=True)
    message = str(error.value)
    assert "\n" not in message and "pip install -e '.[faiss]'" in message


def test_bad_sizes_are_refused(embeddings):
    queries, corpus = embeddings
    for kwargs in (dict(k=0, batch_size=1), dict(k=1, batch_size=0), dict(k=1, batch_size=1, corpus_batch_size=0)):
        with pytest.raises(ValueError):
            top_k(queries, corpus, **kwargs)
    with pytest.raises(ValueError, match="dimensions"):
        top_k(queries, corpus[:, :8], 3, 10)


def _has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class HashingModel:
    """Stands in for a SentenceTransformer: a text's embedding is a fixed random unit vector seeded by the text
    (plus the prompt), so results are known without a model."""

    def __init__(self, dim: int = 12):
        self.dim, self.calls = dim, []

    def get_embedding_dimension(self) -> int:
        return self.dim

    def embed(self, texts, role, prompt=None, prompt_name=None, batch_size=32, normalize_embeddings=False, **kwargs):
        self.calls.append((role, len(texts), batch_size, normalize_embeddings))
        import zlib

        rows = [np.random.default_rng(zlib.crc32(f"{role}|{prompt}|{t}".encode())).standard_normal(self.dim)
                for t in texts]
        rows = np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True) if normalize_embeddings else rows

    def encode_query(self, texts, **kwargs):
        return self.embed(texts, "query", **kwargs)

    def encode_document(self, texts, **kwargs):
        return self.embed(texts, "document", **kwargs)


def test_stored_embeddings_feed_the_search(tmp_path):
    """embeddings.encode_to_file writes the rows in text order, a chunk at a time, and the memmap it loads back
    searches like the arrays themselves."""
    from reranker.mining import embeddings

    model = HashingModel()
    documents = [f"document {i} " + "x" * (i % 17) for i in range(1000)]
    queries = [f"query {i}" for i in range(50)]
    corpus_file = embeddings.encode_to_file(model, documents, tmp_path / "corpus.npy", role="document",
                                            batch_size=16, chunk_size=128, show_progress_bar=False)
    query_file = embeddings.encode_to_file(model, queries, tmp_path / "queries.npy", role="query", batch_size=16,
                                           prompt="query: ", show_progress_bar=False)
    assert [size for role, size, _, _ in model.calls if role == "document"] == [128] * 7 + [1000 - 7 * 128]
    assert all(normalized for *_, normalized in model.calls)
    corpus, stored_queries = embeddings.load(corpus_file), embeddings.load(query_file)
    assert isinstance(corpus.vectors, np.memmap) and corpus.vectors.shape == (1000, 12)
    assert corpus.texts() == documents and stored_queries.manifest["prompt"] == "query: "
    np.testing.assert_allclose(corpus.vectors, model.encode_document(documents, normalize_embeddings=True), atol=1e-6)
    embeddings.check_texts(corpus, documents, "corpus")
    with pytest.raises(ValueError, match="re-run the embed stage"):
        embeddings.check_texts(corpus, documents[::-1], "corpus")
    in_memory = (model.encode_query(queries, prompt="query: ", normalize_embeddings=True),
                 model.encode_document(documents, normalize_embeddings=True))
    assert_same_neighbours(top_k(*in_memory, 10, 7), top_k(stored_queries.vectors, corpus.vectors, 10, 7),
                           *in_memory)
