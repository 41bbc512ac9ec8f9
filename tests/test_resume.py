"""A training run killed with SIGKILL resumes from its last checkpoint on the next `dvc repro`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import dvc, env

pytestmark = pytest.mark.e2e


def test_killed_training_resumes_and_matches_an_uninterrupted_run(reproduced, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(reproduced, repo, symlinks=True)
    log = open(tmp_path / "killed.log", "w")
    training = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "--force", "--single-item", "train"],
                                cwd=repo, env=env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    # tiny params: 16 steps, a checkpoint every 6; kill once the step-12 checkpoint is complete
    checkpoint = repo / "data/checkpoints/checkpoint-12"
    deadline = time.time() + 600
    while not (checkpoint / "trainer_state.json").exists():
        assert training.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
        assert time.time() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.5)
    os.killpg(training.pid, signal.SIGKILL)
    training.wait()
    assert not (repo / "data/model").exists(), "a killed run must not leave a model that looks done"

    # The copied repository already ran these exact inputs, so DVC's run cache would restore that run
    resumed = dvc(repo, "repro", "--no-run-cache")
    assert "train: resuming from data/checkpoints/checkpoint-12" in resumed.stdout, resumed.stdout[-3000:]
    killed = json.loads((repo / "metrics/train.json").read_text())
    assert killed["steps"] == 16
    # the loss of the whole run, not of the 4 steps after the checkpoint alone
    uninterrupted_loss = json.loads((reproduced / "metrics/train.json").read_text())["train_loss"]
    assert abs(killed["train_loss"] - uninterrupted_loss) < 0.15 * uninterrupted_loss, (killed, uninterrupted_loss)
    trained = json.loads((repo / "metrics/evaluate.json").read_text())["dev"]["trained"]
    uninterrupted = json.loads((reproduced / "metrics/evaluate.json").read_text())["dev"]["trained"]
    for metric, value in uninterrupted.items():
        assert abs(trained[metric] - value) < 0.02, (metric, trained[metric], value)
    assert not list((repo / "data/checkpoints").glob("checkpoint-*")), \
        "checkpoints are dropped once the model is saved"
