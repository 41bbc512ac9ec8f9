"""Two experiments with different learning rates, compared the DVC way."""

from __future__ import annotations

import csv
import io
import shutil

from conftest import dvc, run


def test_exp_show_and_diff_compare_two_learning_rates(reproduced, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(reproduced, repo, symlinks=True)
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "baseline run")
    dvc(repo, "exp", "run", "-n", "lr-low", "-S", "train.args.learning_rate=1e-5")
    dvc(repo, "exp", "run", "-n", "lr-high", "-S", "train.args.learning_rate=2e-4")

    table = list(csv.DictReader(io.StringIO(dvc(repo, "exp", "show", "--csv").stdout)))
    rows = {row["Experiment"]: row for row in table if row["Experiment"]}
    assert {"lr-low", "lr-high"} <= set(rows)
    for name, learning_rate in (("lr-low", "1e-05"), ("lr-high", "0.0002")):
        row = rows[name]
        assert row["train.args.learning_rate"] == learning_rate
        # the primary metrics are columns of their own
        for column in ("dev.trained.ndcg@10", "NanoBEIR_R4_mean.trained.ndcg@10", "dev.delta.ndcg@10"):
            assert 0 <= abs(float(row[column])) <= 1, column
    assert rows["lr-low"]["dev.trained.ndcg@10"] != rows["lr-high"]["dev.trained.ndcg@10"]

    diff = dvc(repo, "exp", "diff", "lr-low", "lr-high").stdout
    assert "metrics/evaluate.json" in diff and "dev.trained.ndcg@10" in diff
    assert "train.args.learning_rate" in diff and "1e-05" in diff and "0.0002" in diff
