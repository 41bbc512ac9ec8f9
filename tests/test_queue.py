"""A sweep through `dvc exp run --queue` and `dvc queue start`: queued runs execute in a temporary copy of
the repository, where params paths that leave it (../shared/data) must still resolve."""

from __future__ import annotations

import csv
import io
import shutil
import time

from conftest import SHARED_DATA, dvc, run, set_params


def test_queued_experiment_resolves_paths_outside_the_repository(reproduced, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(reproduced, repo, symlinks=True)
    (tmp_path / "shared").symlink_to(SHARED_DATA.parent)  # ../shared beside the checkout, as on our machines
    set_params(repo, {"evaluate.nanobeir.dataset_id": "../shared/data/nano-local"})
    dvc(repo, "repro")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "baseline with a relative path outside the repository")

    dvc(repo, "exp", "run", "--queue", "-n", "queued-lr", "-S", "train.args.learning_rate=1e-4")
    dvc(repo, "queue", "start")
    deadline = time.time() + 900
    while "Running" in (status := dvc(repo, "queue", "status").stdout) or "Queued" in status:
        assert time.time() < deadline, status
        time.sleep(5)
    assert "Success" in status, status + dvc(repo, "queue", "logs", "queued-lr", check=False).stdout[-3000:]
    dvc(repo, "queue", "stop", "--kill", check=False)

    rows = {row["Experiment"]: row for row in csv.DictReader(io.StringIO(dvc(repo, "exp", "show", "--csv").stdout))}
    queued = rows["queued-lr"]
    assert queued["train.args.learning_rate"] == "0.0001"
    assert float(queued["NanoBEIR_R4_mean.trained.ndcg@10"]) > 0, "NanoBEIR from ../shared resolved in the temp copy"
