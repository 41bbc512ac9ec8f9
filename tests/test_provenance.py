"""The card's provenance (content hashes from dvc.lock and of what the card stage reads) and `rerank verify`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml
from huggingface_hub import ModelCard
from test_card import render

from conftest import ROOT, SHARED_DATA, dvc, run, set_params
from reranker.card.provenance import (
    code_md5,
    eval_result_fields,
    file_md5,
    hub_datasets,
    lock_md5,
    path_md5,
    read_lock,
    source_label,
    tree_md5,
)


def front_matter(text: str) -> dict:
    return yaml.safe_load(text.split("---\n")[1])


def verify(repo, *args: str) -> subprocess.CompletedProcess:
    return run(repo, sys.executable, "-m", "reranker.cli", "verify", *args, check=False)


def mismatches(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("mismatch ")]


def test_hashes_are_those_dvc_lock_records():
    lock = read_lock(ROOT / "dvc.lock")
    assert path_md5(ROOT / "sample/qa") == lock_md5(lock, "download", "sample/qa")
    assert path_md5(ROOT / "sample/heldout-topics") == lock_md5(lock, "retrieve", "sample/heldout-topics")
    assert path_md5(ROOT / "stages/download.py") == lock_md5(lock, "download", "stages/download.py")
    assert code_md5(ROOT / "reranker/core") == lock_md5(lock, "download", "reranker/core")
    assert tree_md5({"b": "1" * 32, "a": "2" * 32}) == tree_md5({"a": "2" * 32, "b": "1" * 32})


def test_local_sources_never_read_as_hub_ids():
    assert source_label("sample/qa") == "local folder sample/qa"
    assert source_label("sample/qa/part-1.jsonl") == "local file sample/qa/part-1.jsonl"
    assert source_label("BeIR/scifact") == "hub data set BeIR/scifact"
    rows = [{"item": "training data", "check": "lock", "source": "sample/qa"},
            {"item": "collection scifact", "check": "hub", "source": "BeIR/scifact", "revision": "a" * 40,
             "split": "test"},
            {"item": "collection local", "check": "file", "source": "sample/heldout-topics", "split": "test"},
            {"item": "base model", "check": "hub", "source": "cross-encoder/x"}]
    assert hub_datasets(rows) == ["BeIR/scifact"]
    assert eval_result_fields("scifact", rows) == {"dataset_type": "BeIR/scifact", "dataset_revision": "a" * 40,
                                                   "dataset_split": "test"}
    assert eval_result_fields("local", rows) == {"dataset_split": "test"}


def test_provenance_rows_sit_beside_the_card_and_in_its_body_not_in_its_front_matter(tmp_path, monkeypatch):
    text = render(tmp_path, monkeypatch)
    assert "provenance" not in front_matter(text)  # the hub shows front matter as metadata
    written = json.loads((tmp_path / "hub/provenance.json").read_text())
    items = {row["item"]: row for row in written}
    assert items["params"]["md5"] == file_md5(tmp_path / "params.yaml")
    assert items["training data"]["md5"] == path_md5(ROOT / "sample/qa")
    assert items["trained model"]["files"] == {"README.md": file_md5(tmp_path / "model/README.md"),
                                               "model.safetensors": file_md5(tmp_path / "model/model.safetensors")}
    assert items["base model"]["check"] == "package" and items["base model"]["revision"]
    body = text.split("## Provenance", 1)[1]
    assert f"| params | params.yaml | - | `{items['params']['md5']}` |" in body
    assert "#### Unnamed Dataset" not in text
    assert "- **Training Dataset:** local folder" in text


# End to end: the tiny pipeline's card


@pytest.mark.e2e
def test_card_hashes_equal_dvc_lock(reproduced):
    lock = read_lock(reproduced / "dvc.lock")
    card = ModelCard.load(reproduced / "data/hub/README.md")
    rows = {row["item"]: row for row in json.loads((reproduced / "data/hub/provenance.json").read_text())}
    for row in rows.values():
        if row["check"] == "lock":
            assert row["md5"] == lock_md5(lock, row["stage"], row["path"]), row["item"]
        if row["check"] == "code":
            locked = {dep["path"]: dep["md5"] for dep in lock[row["stage"]]["deps"]
                      if dep["path"].startswith(("reranker/", "stages/"))}
            assert row["files"] == locked, row["item"]
    assert {f"code {stage}" for stage in lock} <= set(rows)
    assert rows["trained model"]["md5"] == lock_md5(lock, "train", "data/model") == tree_md5(
        rows["trained model"]["files"])
    assert rows["downloaded splits"]["md5"] == lock_md5(lock, "download", "data/download")
    assert rows["params"]["md5"] == file_md5(reproduced / "params.yaml")
    assert rows["collection wikiqa qrels"]["md5"] == file_md5(SHARED_DATA / "beir/wikiqa-dev/qrels/test.tsv")
    assert rows["first stage wikiqa"]["source"].startswith("BM25 (bm25s ")
    # the collections' results name their split; a local path is not given as a hub dataset
    results = card.data.eval_results
    assert {result.dataset_split for result in results if result.dataset_type in ("wikiqa", "climatefever")} == {
        "test"}
    assert not card.data.datasets


@pytest.mark.e2e
def test_verify_passes_on_a_fresh_run_at_the_workspace_and_its_commit(reproduced, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(reproduced, repo, symlinks=True)
    result = verify(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "data/hub: every hash matches dvc.lock at the workspace"
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "run")
    report = json.loads(verify(repo, "--rev", "HEAD", "--json").stdout)
    assert report["ok"] and not [check for check in report["checks"] if check["status"] == "mismatch"]


@pytest.mark.e2e
def test_verify_names_an_edited_weight_file(reproduced, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(reproduced, repo, symlinks=True)
    weights = repo / "data/hub/model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.unlink()  # data/hub may be a link into DVC's cache: replace it, never write through it
    weights.write_bytes(bytes(data))
    result = verify(repo)
    assert result.returncode == 1
    (line,) = mismatches(result)
    assert line.startswith("mismatch  trained model:") and "model.safetensors" in line


@pytest.fixture(scope="module")
def own_collections(reproduced, tmp_path_factory):
    """A copy of the tiny project whose collections are copies of its own, re-evaluated (no retraining)."""
    root = tmp_path_factory.mktemp("own-collections")
    repo = root / "repo"
    shutil.copytree(reproduced, repo, symlinks=True)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    collections = []
    for collection in params["evaluate"]["collections"]:
        copy = root / "collections" / collection["name"]
        shutil.copytree(collection["source"], copy)
        moved = {**collection, "source": str(copy)}
        if collection.get("run_file"):
            moved["run_file"] = str(copy / "bm25.trec")
        collections.append(moved)
    set_params(repo, {"evaluate.collections": collections})
    dvc(repo, "repro")
    return repo


@pytest.mark.e2e
def test_verify_names_an_edited_qrels_file(own_collections):
    assert verify(own_collections).returncode == 0
    qrels = own_collections.parent / "collections/wikiqa/qrels/test.tsv"
    original = qrels.read_bytes()
    try:
        qrels.write_bytes(original + original.splitlines(keepends=True)[-1])
        result = verify(own_collections)
    finally:
        qrels.write_bytes(original)
    assert result.returncode == 1
    # the folder's hash and its qrels file's both change; the qrels line names the file
    assert {line.split(":")[0] for line in mismatches(result)} == {
        "mismatch  collection wikiqa", "mismatch  collection wikiqa qrels"}


@pytest.mark.e2e
def test_verify_rejects_a_card_of_another_experiment(reproduced, own_collections, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(reproduced, repo, symlinks=True)
    for name in ("README.md", "provenance.json"):  # the other experiment's card and its provenance rows
        (repo / "data/hub" / name).unlink()
        shutil.copy(own_collections / "data/hub" / name, repo / "data/hub" / name)
    result = verify(repo)
    assert result.returncode == 1
    (line,) = mismatches(result)
    assert line.startswith("mismatch  params:")
