"""The default pipeline needs nothing beside the clone: its params point inside the repository, and a copy of the
project with no ../shared runs the check and the first stages, and retrieves its shipped collection's candidates."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from conftest import ROOT, dvc, make_repo

pytestmark = pytest.mark.e2e


def paths_in(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from paths_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from paths_in(value)
    elif isinstance(node, str) and ("/" in node or node.startswith(".")):
        yield node


def test_no_default_param_points_outside_the_repository():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    outside = [path for path in paths_in(params) if path.startswith(("..", "/", "~"))]
    assert not outside, outside


def test_a_clone_without_shared_data_runs_the_default_first_stages(tmp_path):
    repo = make_repo(tmp_path / "clone", tiny=False)
    assert not (tmp_path / "shared").exists()
    result = dvc(repo, "repro", "download", "retrieve")
    assert "Running stage 'check'" in result.stdout
    train = pd.read_parquet(repo / "data/download/train.parquet")
    dev = pd.read_parquet(repo / "data/download/dev.parquet")
    assert len(train) + len(dev) == 352 and dev["query"].nunique() == 60
    candidates = pd.read_parquet(next((repo / "data/retrieve").rglob("*.parquet")))
    assert candidates["query_id"].nunique() == 176 and candidates.groupby("query_id").size().max() == 30
    assert "up to date" in dvc(repo, "status", "download", "retrieve").stdout
