"""Several training data sets at once (download.more_sources): each one's relevant pairs join download.source's,
checked like it before any work."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pyarrow as pa
import pytest

from conftest import make_repo, run, set_params
from reranker.data.loading import relevant_pairs


def test_relevant_pairs_keep_the_relevant_documents_of_each_shape():
    labelled = pa.table({"query": ["q1", "q1", "q2"], "document": ["a", "b", "c"], "label": [1.0, 0.0, 0.5]})
    assert relevant_pairs(labelled, "labelled_pairs").to_pylist() == [
        {"query": "q1", "document": "a"}, {"query": "q2", "document": "c"}]
    lists = pa.table({"query": ["q1", "q2"], "documents": [["a", "b", "c"], ["d", "a"]],
                      "labels": [[0.0, 1.0, 1.0], [0.0, 0.0]]})
    assert relevant_pairs(lists, "listwise").to_pylist() == [
        {"query": "q1", "document": "b"}, {"query": "q1", "document": "c"}]
    pairs = pa.table({"query": ["q1", "q1"], "document": ["a", "a"]})
    assert relevant_pairs(pairs, "pairs").to_pylist() == [{"query": "q1", "document": "a"}]


def more_sources_repo(tmp_path):
    repo = make_repo(tmp_path / "repo")
    pd.DataFrame({"question": ["which labelled?", "which labelled?", "other labelled?"],
                  "answer": ["the relevant one", "an irrelevant one", "not relevant"],
                  "label": [1, 0, 0]}).to_csv(repo / "labelled.csv", index=False)
    pd.DataFrame({"claim": ["a listed claim"], "docs": [["evidence one", "no evidence", "evidence two"]],
                  "labels": [[1.0, 0.0, 1.0]]}).to_parquet(repo / "lists.parquet")
    return repo


def stages(repo):
    checked = run(repo, sys.executable, "-m", "stages.check", "data/check", check=False)
    if checked.returncode != 0:
        return checked
    return run(repo, sys.executable, "-m", "stages.download", "data/download", "--metrics", "metrics/download.json",
               check=False)


LABELLED = {"source": "labelled.csv", "shape": "labelled_pairs",
            "columns": {"query": "question", "document": "answer", "label": "label"}}
LISTS = {"source": "lists.parquet", "shape": "listwise", "columns": {"query": "claim", "documents": "docs",
                                                                     "labels": "labels"}}


@pytest.mark.e2e
def test_more_sources_add_their_relevant_pairs_to_the_training_data(tmp_path):
    repo = more_sources_repo(tmp_path)
    set_params(repo, {"download.more_sources": [LABELLED, LISTS]})
    result = stages(repo)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = pd.concat([pd.read_parquet(repo / "data/download" / f"{split}.parquet") for split in ("train", "dev")])
    pairs = set(zip(rows["query"], rows["document"]))
    assert {("which labelled?", "the relevant one"), ("a listed claim", "evidence one"),
            ("a listed claim", "evidence two")} <= pairs
    assert not {document for _, document in pairs} & {"an irrelevant one", "not relevant", "no evidence"}
    metrics = json.loads((repo / "metrics/download.json").read_text())
    counts = metrics["rows_per_source"]
    assert counts["labelled.csv"] == 1 and counts["lists.parquet"] == 2
    assert metrics["source_rows"] == sum(counts.values())


@pytest.mark.e2e
@pytest.mark.parametrize("overrides, words", [
    ({"download.more_sources": [{**LABELLED, "columns": {**LABELLED["columns"], "document": "reply"}}]},
     ["download.more_sources[0].columns.document", "no column 'reply'"]),
    ({"download.more_sources": [LABELLED, {**LISTS, "source": "no-such-lists.parquet"}]},
     ["download.more_sources[1].source", "does not exist"]),
    ({"download.more_sources": [LABELLED], "download.shape": "labelled_pairs",
      "download.columns": {"query": "question", "document": "answer", "label": "label"},
      "download.source": "labelled.csv"},
     ["download.more_sources", "download.shape", "pairs"]),
])
def test_a_bad_more_source_is_one_line_before_any_output(tmp_path, overrides, words):
    repo = more_sources_repo(tmp_path)
    set_params(repo, overrides)
    result = stages(repo)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and all(word in last for word in words), last
    assert not (repo / "data/download").exists()
