"""Bad data and bad params: a one-line error naming the problem and the fix, a non-zero exit, and no output
left behind."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from conftest import make_repo, run, set_params


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo")


def download(repo):
    return run(repo, sys.executable, "-m", "stages.download", "data/download", check=False)


def assert_clean_failure(result, repo, output, *words):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr[-2000:]
    for word in words:
        assert word in lines[-1], (word, lines[-1])
    assert not (repo / output).exists(), "a failed stage must leave no output"
    assert not list((repo / output).parent.glob(f".{(repo / output).name}.partial*"))


def test_missing_column(repo):
    set_params(repo, {"download.columns": {"query": "question", "document": "reply"}})
    assert_clean_failure(download(repo), repo, "data/download", "no column 'reply'", "download.columns.document")


def test_empty_data(repo):
    empty = pd.DataFrame({"question": pd.Series([], dtype=str), "answer": pd.Series([], dtype=str)})
    empty.to_parquet(repo / "empty.parquet")
    set_params(repo, {"download.source": "empty.parquet", "download.limit": None})
    assert_clean_failure(download(repo), repo, "data/download", "no rows")


def test_label_that_is_not_a_number(repo):
    (repo / "labelled.csv").write_text("question,answer,label\nwhat?,that,yes\nwho?,them,no\nwhy?,so,yes\n")
    set_params(repo, {"download.source": "labelled.csv", "download.shape": "labelled_pairs", "download.dev_queries": 1,
                      "download.columns": {"query": "question", "document": "answer", "label": "label"}})
    assert_clean_failure(download(repo), repo, "data/download", "non-numeric values", "label")


def test_listwise_rows_with_fewer_labels_than_documents(repo):
    pd.DataFrame({"q": ["a?", "b?", "c?"], "docs": [["x", "y"], ["z"], ["u", "v"]], "rel": [[1, 0], [1], [1]]}
                 ).to_parquet(repo / "lists.parquet")
    set_params(repo, {"download.source": "lists.parquet", "download.shape": "listwise", "download.dev_queries": 1,
                      "download.limit": None, "train.loss": "ListNetLoss", "train.loss_args": {},
                      "download.columns": {"query": "q", "documents": "docs", "labels": "rel"}})
    assert_clean_failure(download(repo), repo, "data/download", "'docs'/'rel'", "as many numeric labels")


def test_source_that_does_not_exist(repo):
    set_params(repo, {"download.source": "./no/such/file.parquet"})
    assert_clean_failure(download(repo), repo, "data/download", "does not exist")


def test_unknown_params_key(repo):
    set_params(repo, {"download.limitt": 5})
    assert_clean_failure(download(repo), repo, "data/download", "unknown key 'download.limitt'", "limit")


def test_wrong_params_type(repo):
    set_params(repo, {"download.dev_queries": "ten"})
    assert_clean_failure(download(repo), repo, "data/download", "download.dev_queries")


def test_model_path_that_does_not_exist(repo):
    assert download(repo).returncode == 0
    set_params(repo, {"embed.model": "./models/missing"})
    result = run(repo, sys.executable, "-m", "stages.embed", "data/download", "data/embeddings", check=False)
    assert_clean_failure(result, repo, "data/embeddings", "./models/missing", "does not exist")


def test_bf16_without_a_gpu_that_has_it(repo):
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        pytest.skip("this machine has bf16")
    set_params(repo, {"train.args.bf16": True})
    result = run(repo, sys.executable, "-m", "stages.train", "data/tokenize", "data/mine",
                 "data/checkpoints", "data/model", "data/train/log.json", "metrics/train.json", "dvclive/train",
                 "emissions/train.json", check=False)
    assert_clean_failure(result, repo, "data/model", "train.args.bf16", "bf16=false")
