"""Training queries that are also evaluation queries: the download stage compares them by normalised text, refuses
by default with one line, drops their training rows with download.drop_evaluation_queries, and reports the overlap
in metrics/download.json and on the card."""

from __future__ import annotations

import json
import shutil
import sys

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, SHARED_DATA, dvc, make_repo, requires_shared, set_params
from reranker.data.leakage import normalise, shared_queries
from stages import card, download

NANO = SHARED_DATA / "beir/climatefever-nano"
CLIMATE_FEVER = {"download.source": str(SHARED_DATA / "climate-fever/train.parquet"), "download.shape": "listwise",
                 "download.columns": {"query": "query", "documents": "docs", "labels": "labels"},
                 "download.limit": None, "download.dev_queries": 60, "train.loss": "ListNetLoss",
                 "train.loss_args": {}, "evaluate.nanobeir": None,
                 "evaluate.collections": [{"name": "climatefever", "source": str(NANO), "first_stage": "run_file",
                                           "run_file": str(NANO / "bm25.trec"), "k": 4}]}


def test_normalise_folds_case_width_punctuation_and_whitespace():
    assert normalise("  Is CO2 a Greenhouse\tgas?") == "is co2 a greenhouse gas"
    assert normalise("\u2018Global warming\u2019 and \u201cclimate\u201d") == "global warming and climate"
    assert normalise("ＣＯ２ levels") == "co2 levels"  # NFKC: full-width letters and digits
    assert normalise("Straße U.S. don't") == normalise("STRASSE us dont")
    assert normalise("a - b") == "a b"  # a lone dash goes, the spaces around it collapse
    assert normalise("CO2 levels") != normalise("CO3 levels")


def test_shared_queries_are_the_training_texts_that_match():
    training = ["What is BM25?", "what is bm25", "What is a reranker?", "What is BM25?"]
    assert shared_queries(["What is  BM25"], training) == ["What is BM25?", "what is bm25"]
    assert shared_queries(["unrelated"], training) == []


def write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def tiny_case(tmp_path, monkeypatch, overrides: dict | None = None):
    """12 Q/A pairs and a 3-query BEIR collection whose query q1 is the training question 'Why is the sky blue?' in
    other case and punctuation, and whose q3 is a training question without a relevant judgment (not evaluated)."""
    questions = [f"Question number {i}?" for i in range(10)] + ["Why is the sky blue?", "How do tides work?"]
    (tmp_path / "qa").mkdir()
    write_jsonl(tmp_path / "qa/pairs.jsonl", [{"question": q, "answer": f"Answer to {q}"} for q in questions]
                + [{"question": "Why is the sky blue?", "answer": "Rayleigh scattering."}])
    collection = tmp_path / "collection"
    (collection / "qrels").mkdir(parents=True)
    write_jsonl(collection / "corpus.jsonl", [{"_id": f"d{i}", "text": f"document {i}"} for i in range(3)])
    write_jsonl(collection / "queries.jsonl", [{"_id": "q1", "text": "why is the SKY blue"},
                                               {"_id": "q2", "text": "Where do rivers start?"},
                                               {"_id": "q3", "text": "How do tides work?"}])
    (collection / "qrels/test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td0\t1\nq2\td1\t2\nq3\td2\t0\n")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    set_params(tmp_path, {"download.source": str(tmp_path / "qa"), "download.dev_queries": 2, "download.limit": None,
                          "evaluate.nanobeir": None,
                          "evaluate.collections": [{"name": "tiny", "source": str(collection), "k": 3}],
                          **(overrides or {})})
    monkeypatch.chdir(tmp_path)


def run_download(tmp_path, monkeypatch) -> dict:
    monkeypatch.setattr(sys, "argv", ["download", str(tmp_path / "out"), "--metrics", str(tmp_path / "m.json"),
                                      "--summary", str(tmp_path / "s.json")])
    download.main()
    return json.loads((tmp_path / "m.json").read_text())


def test_a_trained_evaluation_query_stops_the_download_with_one_line(tmp_path, monkeypatch, capsys):
    tiny_case(tmp_path, monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        run_download(tmp_path, monkeypatch)
    assert exit_.value.code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: 1 of the 2 queries of evaluation collection 'tiny' are in the training data")
    assert "'Why is the sky blue?'" in line and "download.drop_evaluation_queries: true" in line
    assert not (tmp_path / "out").exists()


def test_the_drop_param_drops_the_rows_and_says_so(tmp_path, monkeypatch):
    tiny_case(tmp_path, monkeypatch, {"download.drop_evaluation_queries": True})
    metrics = run_download(tmp_path, monkeypatch)
    queries = (pq.read_table(tmp_path / "out/train.parquet")["query"].to_pylist()
               + pq.read_table(tmp_path / "out/dev.parquet")["query"].to_pylist())
    assert "Why is the sky blue?" not in queries and "How do tides work?" in queries  # q3 is judged 0: not evaluated
    assert metrics["evaluation"]["tiny"] == {"kind": "collection", "compared": True, "queries": 2, "found": 1,
                                             "example": "Why is the sky blue?", "dropped_rows": 2, "in_training": 0}
    assert metrics["source_rows"] == 13 and metrics["dropped_rows"] == 2
    assert metrics["train_rows"] + metrics["dev_rows"] == 11
    assert json.loads((tmp_path / "s.json").read_text()) == {"evaluation_queries_in_training": 0, "dropped_rows": 2}


def test_a_training_query_equal_to_a_dev_query_once_normalised(tmp_path, monkeypatch, capsys):
    # 'Question number 3?' and 'QUESTION NUMBER 3' are distinct queries, so the split may put them apart
    tiny_case(tmp_path, monkeypatch, {"evaluate.collections": []})
    records = [json.loads(line) for line in (tmp_path / "qa/pairs.jsonl").read_text().splitlines()]
    records += [{"question": record["question"].upper().rstrip("?"), "answer": "a copy"} for record in records]
    write_jsonl(tmp_path / "qa/pairs.jsonl", records)
    with pytest.raises(SystemExit):
        run_download(tmp_path, monkeypatch)
    assert "error: 2 of the 2 dev queries are in the training data" in capsys.readouterr().err
    set_params(tmp_path, {"download.drop_evaluation_queries": True})
    metrics = run_download(tmp_path, monkeypatch)
    assert metrics["dev"]["found"] == 2 and metrics["dev"]["dropped_rows"] == 2 and metrics["dropped_rows"] == 2
    train = {normalise(q) for q in pq.read_table(tmp_path / "out/train.parquet")["query"].to_pylist()}
    assert not train & {normalise(q) for q in pq.read_table(tmp_path / "out/dev.parquet")["query"].to_pylist()}


def test_a_hub_collection_that_cannot_be_read_is_noted_not_compared(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tiny_case(tmp_path, monkeypatch, {"evaluate.collections": [{"name": "hub", "source": "no-such-org/no-such-set"}]})
    metrics = run_download(tmp_path, monkeypatch)
    assert metrics["evaluation"]["hub"]["compared"] is False
    assert "download: hub: not compared with the training queries" in capsys.readouterr().out


def test_the_card_shows_the_overlap_per_evaluation_set(tmp_path, monkeypatch):
    fixtures = ROOT / "tests/fixtures/card"
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    set_params(tmp_path, {"tokenize.max_length": 64, "evaluate.nanobeir": None, "evaluate.collections": [],
                          "download.source": str(ROOT / "sample/qa")})
    # the fixture's metrics name a NanoBEIR evaluator; these params have none, and the card reads at_k from them
    final = {name: value for name, value in json.loads((fixtures / "evaluate.json").read_text()).items()
             if not isinstance(value, dict) or value.get("kind") in ("reranking", "collection")}
    (tmp_path / "evaluate.json").write_text(json.dumps(final))
    entry = {"kind": "collection", "compared": True, "queries": 50, "found": 50, "example": "a claim",
             "dropped_rows": 51, "in_training": 0}
    metrics = {"evaluation": {"climatefever": entry, "NanoMSMARCO": {"kind": "nanobeir", "compared": False,
                                                                     "note": "no network"}},
               "dev": {**entry, "queries": 60, "found": 0, "dropped_rows": 0}}
    (tmp_path / "download.json").write_text(json.dumps(metrics))
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["card", str(fixtures / "train.parquet"), str(fixtures / "log.json"),
                                      str(fixtures / "evaluate_base.json"), str(tmp_path / "evaluate.json"),
                                      str(fixtures / "emissions.json"), str(model), str(tmp_path / "hub"),
                                      "--download-metrics", str(tmp_path / "download.json")])
    card.main()
    text = (tmp_path / "hub/README.md").read_text()
    block = text[text.index("### Training Queries in Evaluation"):text.index("## Training Details")]
    assert "* climatefever: 0 of 50 (50 found in the training data; their 51 training rows dropped)\n" in block
    assert "* NanoMSMARCO: not compared (no network)\n" in block and "* dev: 0 of 60\n" in block


@requires_shared
def test_climate_fever_listwise_rows_hold_every_claim_of_climatefever_nano(tmp_path, monkeypatch, capsys):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    set_params(tmp_path, CLIMATE_FEVER)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        run_download(tmp_path, monkeypatch)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: 50 of the 50 queries of evaluation collection 'climatefever' are in the training "
                           "data, e.g. ")
    assert line.endswith("set download.drop_evaluation_queries: true to drop their training rows")

    set_params(tmp_path, {"download.drop_evaluation_queries": True})
    metrics = run_download(tmp_path, monkeypatch)
    entry = metrics["evaluation"]["climatefever"]
    assert (entry["queries"], entry["found"], entry["in_training"]) == (50, 50, 0)
    assert entry["dropped_rows"] == 51  # one claim is in the data twice, once without its final full stop
    assert metrics["dev"]["in_training"] == 0 and metrics["dev_rows"] == 60
    kept = pq.read_table(tmp_path / "out/train.parquet")["query"].to_pylist()
    kept += pq.read_table(tmp_path / "out/dev.parquet")["query"].to_pylist()
    claims = [json.loads(line)["text"] for line in
              (SHARED_DATA / "beir/climatefever-nano/queries.jsonl").read_text().splitlines()]
    assert not shared_queries(claims, kept)
    assert metrics["source_rows"] - metrics["dropped_rows"] == len(kept)


@pytest.mark.e2e
@requires_shared
def test_dvc_refuses_the_climate_fever_recipe_then_runs_it_without_the_claims(tmp_path):
    overrides = {key: value for key, value in CLIMATE_FEVER.items() if key != "download.dev_queries"}
    # the first 100 rows hold 4 of the claims
    repo = make_repo(tmp_path / "repo", {**overrides, "download.limit": 100, "download.dev_queries": 8})
    refused = dvc(repo, "repro", check=False)
    assert refused.returncode != 0
    assert "queries of evaluation collection 'climatefever' are in the training data" in refused.stderr
    assert not (repo / "data/mine").exists()  # refused before any stage that works

    set_params(repo, {"download.drop_evaluation_queries": True})
    dvc(repo, "repro")
    summary = json.loads((repo / "metrics/summary/download.json").read_text())
    assert summary["evaluation_queries_in_training"] == 0 and summary["dropped_rows"] > 0
    assert "* climatefever: 0 of 50 (" in (repo / "data/hub/README.md").read_text()
    assert "download" in dvc(repo, "metrics", "show").stdout

    # another collection reruns download, whose Parquet is byte-identical: no stage before retrieve reruns
    collections = [*CLIMATE_FEVER["evaluate.collections"],
                   {"name": "wikiqa", "source": str(SHARED_DATA / "beir/wikiqa-dev"), "first_stage": "bm25", "k": 4}]
    set_params(repo, {"evaluate.collections": collections})
    before = {path.name: path.read_bytes() for path in (repo / "data/download").iterdir()}
    dvc(repo, "repro", "download")
    assert {path.name: path.read_bytes() for path in (repo / "data/download").iterdir()} == before
    status = dvc(repo, "status").stdout
    for stage in ("embed", "mine", "tokenize", "train"):
        assert f"{stage}:" not in status, status
    assert "retrieve:" in status
