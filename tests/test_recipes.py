"""Each seed card's recipe, composed by DVC's Hydra support exactly as a user selects it
(`dvc exp run -S recipe=NAME -S +offline=NAME`), run end to end at tiny scale on the shared stand-in data,
and checked for the metrics its card reports."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from conftest import ROOT, dvc, make_repo

CARD_METRICS = {
    "reranking": {"map", "mrr@10", "ndcg@10"},
    "classification": {"accuracy", "accuracy_threshold", "f1", "f1_threshold", "precision", "recall",
                       "average_precision"},
}
# recipe -> (loss, evaluators in metrics/evaluate.json, a column of the training data, row limit)
RECIPES = {
    "gooaq-bce-minilm-l12": ("BinaryCrossEntropyLoss", ["gooaq-dev", "NanoClimateFEVER_R4", "NanoBEIR_R4_mean"], "document", 90),
    "gooaq-bce-bert-tiny": ("BinaryCrossEntropyLoss", ["gooaq-dev", "NanoClimateFEVER_R4", "NanoBEIR_R4_mean"], "document", 90),
    "msmarco-listmle-minilm-l12": ("PListMLELoss", ["NanoClimateFEVER_R4", "NanoBEIR_R4_mean"], "documents", 60),
    "pairs-continue-minilm-l6": ("BinaryCrossEntropyLoss", ["eval"], "document", 200),
    "msmarco-bce-gte-multilingual": ("BinaryCrossEntropyLoss", ["NanoClimateFEVER_R4", "NanoBEIR_R4_mean"], "document", 200),
}
TINY = ["download.dev_queries=8", "mine.dev_candidates=6", "mine.train.num_negatives=2", "tokenize.max_length=64",
        "train.args.max_steps=6", "train.args.per_device_train_batch_size=16", "train.args.eval_steps=3",
        "train.args.save_steps=3", "train.args.logging_steps=3"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_runs_offline_and_reports_its_card_metrics(recipe, tmp_path):
    loss, evaluators, column, limit = RECIPES[recipe]
    repo = make_repo(tmp_path / "repo", hydra=True)
    overrides = [f"recipe={recipe}", f"+offline={recipe}", f"download.limit={limit}", *(f"++{o}" for o in TINY)]
    if any(name.startswith("Nano") for name in evaluators):
        overrides.append("evaluate.nanobeir.rerank_k=4")
    if "NanoBEIR" in str(yaml.safe_load((ROOT / "conf/offline" / f"{recipe}.yaml").read_text())):
        overrides.append("++train.args.metric_for_best_model=eval_NanoBEIR_R4_mean_ndcg@10")
    dvc(repo, "exp", "run", *(arg for override in overrides for arg in ("-S", override)))

    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["recipe"] == recipe and params["train"]["loss"] == loss
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    assert [name for name in metrics if name != "seconds"] == evaluators
    for name in evaluators:
        expected = CARD_METRICS["classification" if name == "eval" else "reranking"]
        assert set(metrics[name]["trained"]) == expected and set(metrics[name]["delta"]) == expected
    train = json.loads((repo / "metrics/train.json").read_text())
    assert train["steps"] > 0
    assert column in pd.read_parquet(repo / "data/mine/train.parquet").columns
    assert (repo / "data/card/README.md").read_text().count(params["card"]["model_name"]) >= 1


def test_committed_params_are_the_composed_default_recipe(tmp_path):
    from dvc.utils.hydra import compose_and_dump

    compose_and_dump(str(tmp_path / "params.yaml"), str(ROOT / "conf"), None, "config", "", [])
    assert (tmp_path / "params.yaml").read_text() == (ROOT / "params.yaml").read_text(), \
        "params.yaml is stale: regenerate it from conf/ (see README, 'Recipes')"
