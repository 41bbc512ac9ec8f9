"""train.num_processes launches the train stage as a DDP run through torchrun (here: two CPU processes)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from sentence_transformers.cross_encoder import CrossEncoder

from conftest import dvc, set_params

pytestmark = pytest.mark.e2e


def test_two_processes_train_one_model(reproduced, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(reproduced, repo, symlinks=True)
    set_params(repo, {"train.num_processes": 2})
    result = dvc(repo, "repro", "train")
    assert "train: launching 2 processes" in result.stdout, result.stdout[-3000:]
    metrics = json.loads((repo / "metrics/train.json").read_text())
    pairs = len(pd.read_parquet(repo / "data/tokenize/train.parquet"))
    assert metrics["processes"] == 2
    # each step takes a per-device batch of 16 on each process; DDP drops the uneven last batch
    assert metrics["steps"] == pairs // (2 * 16)
    assert CrossEncoder(str(repo / "data/model")).predict([("a question?", "an answer.")]).shape == (1,)
