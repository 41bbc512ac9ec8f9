"""A whole `dvc repro` of the tiny project: its outputs, its caching, and the card it renders."""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import yaml
from sentence_transformers.cross_encoder import CrossEncoder

from conftest import dvc, set_params

STAGES = {"download", "embed", "mine", "tokenize", "train", "evaluate_base", "evaluate", "card"}


def ran(result) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", result.stdout))


def copy(repo, tmp_path):
    # A copy with its DVC cache and outputs, so a test can change params without touching the others' repo
    target = tmp_path / "repo"
    shutil.copytree(repo, target, symlinks=True)
    return target


def test_repro_trains_a_model_that_loads_and_ranks(reproduced):
    model = CrossEncoder(str(reproduced / "data/model"))
    scores = model.predict([("What is a caldera?", "A caldera is a basin left by a collapsed volcano summit."),
                            ("What is a caldera?", "Jazz grew out of blues and ragtime in New Orleans.")])
    assert scores.shape == (2,)


def test_metrics_hold_base_trained_and_delta_per_evaluator(reproduced):
    metrics = json.loads((reproduced / "metrics/evaluate.json").read_text())
    base = json.loads((reproduced / "metrics/evaluate_base.json").read_text())
    assert {"dev", "NanoClimateFEVER_R4", "NanoBEIR_R4_mean"} <= set(metrics)
    for name in ("dev", "NanoBEIR_R4_mean"):
        for side in ("trained", "base_model", "delta", "retrieval"):
            assert set(metrics[name][side]) == {"map", "mrr@10", "ndcg@10"}, (name, side)
        assert metrics[name]["base_model"] == base[name]["base_model"]
        assert metrics[name]["kind"] == base[name]["kind"] == ("reranking" if name == "dev" else "nanobeir_mean")
        for metric, delta in metrics[name]["delta"].items():
            assert abs(metrics[name]["trained"][metric] - metrics[name]["base_model"][metric] - delta) < 1e-3
    tokenize = json.loads((reproduced / "metrics/tokenize.json").read_text())
    assert tokenize["pairs"] == len(pd.read_parquet(reproduced / "data/tokenize/train.parquet"))
    assert 0 < tokenize["tokens_mean"] <= tokenize["tokens_p95"] and 0 <= tokenize["truncated_share"] <= 1


def test_train_stage_reads_token_ids_not_text(reproduced):
    ids = pd.read_parquet(reproduced / "data/tokenize/train.parquet")
    assert list(ids.columns) == ["query_ids", "document_ids", "label"]
    assert all(isinstance(token, (int,)) or hasattr(token, "dtype") for token in ids["query_ids"].iloc[0])


def test_second_repro_runs_nothing(reproduced):
    assert ran(dvc(reproduced, "repro")) == set()
    assert "up to date" in dvc(reproduced, "status").stdout


def test_learning_rate_change_reruns_train_evaluate_card_only(reproduced, tmp_path):
    repo = copy(reproduced, tmp_path)
    base_metrics = (repo / "metrics/evaluate_base.json").read_text()
    set_params(repo, {"train.args.learning_rate": 1e-4})
    assert ran(dvc(repo, "repro")) == {"train", "evaluate", "card"}
    assert (repo / "metrics/evaluate_base.json").read_text() == base_metrics  # read from the cache, not recomputed
    log = json.loads((repo / "data/train/log.json").read_text())
    assert log["all_args"]["learning_rate"] == 1e-4


def test_sampling_param_remines_without_reencoding_and_is_seeded(reproduced, tmp_path):
    repo = copy(reproduced, tmp_path)
    set_params(repo, {"mine.train.sampling_strategy": "random", "mine.train.range_max": 8})
    stages = ran(dvc(repo, "repro", "mine"))
    assert stages == {"mine"}, "changing a sampling param must not re-encode the corpus"
    # a cache miss would write new embeddings into embed's output, which DVC would report as changed
    assert "up to date" in dvc(repo, "status", "embed").stdout
    first = pd.read_parquet(repo / "data/mine/train.parquet")
    dvc(repo, "repro", "--force", "--single-item", "mine")
    second = pd.read_parquet(repo / "data/mine/train.parquet")
    pd.testing.assert_frame_equal(first, second)
    old = pd.read_parquet(reproduced / "data/mine/train.parquet")
    assert not first.equals(old), "random sampling should pick other negatives than top sampling"


def test_dev_set_holds_out_queries_and_keeps_retrieval_order(reproduced):
    train = pd.read_parquet(reproduced / "data/download/train.parquet")
    dev = pd.read_parquet(reproduced / "data/download/dev.parquet")
    assert not set(train["query"]) & set(dev["query"])
    samples = pd.read_parquet(reproduced / "data/mine/dev.parquet")
    assert len(samples) == 8 and all(len(documents) == 6 for documents in samples["documents"])
    mine = json.loads((reproduced / "metrics/mine.json").read_text())
    assert mine["dev_queries"] == 8 and 0 < mine["dev_positive_retrieved"] <= 1


def test_card_has_the_seed_sections_and_a_valid_model_index(reproduced):
    card = (reproduced / "data/card/README.md").read_text()
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["pipeline_tag"] == "text-ranking" and meta["library_name"] == "sentence-transformers"
    assert "loss:BinaryCrossEntropyLoss" in meta["tags"] and meta["co2_eq_emissions"]["source"] == "codecarbon"
    results = meta["model-index"][0]["results"]
    assert {r["dataset"]["type"] for r in results} == {"dev", "NanoClimateFEVER_R4", "NanoBEIR_R4_mean"}
    for result in results:  # the NanoBEIR mean has a task type of its own, as in seeds 001 and 004
        mean = result["dataset"]["type"] == "NanoBEIR_R4_mean"
        assert result["task"]["type"] == ("cross-encoder-nano-beir" if mean else "cross-encoder-reranking")
        assert {m["type"] for m in result["metrics"]} == {"map", "mrr@10", "ndcg@10"}
        assert all(isinstance(m["value"], float) for m in result["metrics"])
    for heading in ("## Usage", "model.predict(pairs)", "model.rank(", "## Evaluation", "#### Cross Encoder Reranking",
                    "#### Cross Encoder Nano BEIR", "### Training Dataset", "* Loss: [BinaryCrossEntropyLoss]",
                    "#### Non-Default Hyperparameters", "#### All Hyperparameters", "### Training Logs",
                    "### Environmental Impact", "### Training Hardware", "### Framework Versions", "## Citation"):
        assert heading in body, heading
    best = json.loads((reproduced / "data/train/log.json").read_text())["best_global_step"]
    assert re.search(rf"^\| \*\*[0-9.]+\*\* \| \*\*{best}\*\* \|", body, re.MULTILINE), "best step row in bold"
    assert "**ndcg@10**" in body and re.search(r"\*\*0\.\d{4} \([+-]0\.\d{4}\)\*\*", body)
