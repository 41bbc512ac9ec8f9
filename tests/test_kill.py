"""A `dvc repro` killed with SIGKILL inside any stage, while that stage's `.NAME.partial` exists, leaves nothing that
is taken as done: rerun, it gives the outputs of an unkilled run, no partial is left anywhere, and `dvc status` is
clean."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, dvc, make_repo
from reranker.core.outputs import atomic_output

STAGES = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])

# Loaded by every Python process of a `dvc repro` through PYTHONPATH. In a stage's process (DVC names the stage in
# DVC_STAGE), it follows the stage's writes through audit events and SIGKILLs the whole process group (the stage,
# its shell and `dvc repro`) at the first event once the stage's first `.NAME.partial` holds something (a folder its
# first file, a file its text), at the latest just before its rename into place. Each stage is killed once: those
# killed are listed in $KILL_LOG with their partial; $KILL_STAGES, when set, names the only stages to kill.
KILLER = r'''
import os
import signal
import sys


def _partial(event, args):
    if event not in ("os.mkdir", "open", "os.rename") or not args or isinstance(args[0], int):
        return None
    path = os.fsdecode(args[0])
    name = os.path.basename(path)
    return os.path.abspath(path) if name.startswith(".") and name.endswith(".partial") else None


def _killed(log):
    try:
        with open(log) as lines:
            return {line.split("\t")[0] for line in lines}
    except FileNotFoundError:
        return set()


def _watch(stage, log):
    state = {"partial": None, "busy": False}

    def hook(event, args):
        if state["busy"]:  # an event of the checks below
            return
        state["busy"] = True
        touched = _partial(event, args)
        partial = state["partial"] = state["partial"] or touched
        renaming = event == "os.rename" and touched == partial
        if partial and os.path.lexists(partial) and (renaming or not os.path.isdir(partial) or os.listdir(partial)):
            with open(log, "a") as lines:
                lines.write(f"{stage}\t{partial}\n")
            os.killpg(os.getpgrp(), signal.SIGKILL)
        state["busy"] = False

    sys.addaudithook(hook)


_stage, _log, _only = os.environ.get("DVC_STAGE"), os.environ.get("KILL_LOG"), os.environ.get("KILL_STAGES")
if _stage and _log and _stage not in _killed(_log) and (_only is None or _stage in _only.split(",")):
    _watch(_stage, _log)
'''

# Outputs that differ between two unkilled runs of the same inputs: timings, throughputs and emissions, and what holds
# them (the library's README in the model folder states the training time). The model's weights are compared apart.
TIMED = {"data/model", "data/train/log.json", "metrics/train.json", "metrics/summary/train.json", "dvclive/train",
         "metrics/mine.json", "metrics/evaluate_base.json", "metrics/evaluate.json", "metrics/export.json",
         "data/export", "data/hub", "emissions/mine.json", "emissions/train.json", "emissions/evaluate_base.json",
         "emissions/evaluate.json"}
# In the model folder beside the weights: the library's README (the training time; the dev metrics and training logs
# only when it evaluated in that process) and the tokenizer, which records the truncation and padding of the last
# call made through it. A train stage killed after training resumes from its last checkpoint, trains no more and
# evaluates nothing, so both differ from an unkilled run's while the weights do not.
NOT_WEIGHTS = {"README.md", "tokenizer.json"}


def out_hashes(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {out["path"]: out.get("md5") or out.get("hash") for stage in lock.values() for out in stage.get("outs", [])}


def killed_run(repo: Path, log: Path, *args: str) -> tuple[str, Path]:
    """`dvc repro` with the killer armed: the stage it killed and the partial that stage was writing."""
    result = dvc(repo, "repro", *args, check=False)
    assert result.returncode == -signal.SIGKILL, (result.returncode, result.stdout[-3000:], result.stderr[-3000:])
    stage, partial = log.read_text().splitlines()[-1].split("\t")
    return stage, Path(partial)


def test_the_sweep_removes_the_partials_of_declared_outputs_and_nothing_else(tmp_path):
    from stages.check import remove_stale_partials

    stages = {"a": {"cmd": "a", "outs": ["data/a", {"metrics/a.json": {"cache": False}}],
                    "metrics": [{"metrics/summary/a.json": {"cache": False}}]}}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    stale = ["data/.a.partial", "metrics/.a.json.partial", "metrics/summary/.a.json.partial"]
    # a partial of an undeclared path, one inside an output, names that only look alike
    kept = ["data/.b.partial", "data/a/.x.partial", "data/a.partial", ".a.partial", "metrics/.a.json.partial.bak"]
    (tmp_path / "data/.a.partial").mkdir(parents=True)  # a folder output's, half-written
    (tmp_path / "data/.a.partial/train.parquet").write_text("half")
    for name in stale[1:] + kept:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("half")
    assert sorted(remove_stale_partials(tmp_path / "dvc.yaml")) == sorted(map(Path, stale))
    assert [name for name in stale if (tmp_path / name).exists()] == []
    assert [name for name in kept if not (tmp_path / name).exists()] == []
    assert remove_stale_partials(tmp_path / "dvc.yaml") == []
    assert remove_stale_partials(tmp_path / "elsewhere/dvc.yaml") == []
    with atomic_output(tmp_path / "data/a") as partial:  # the sweep's name for a partial is the one written
        assert partial == tmp_path / stale[0]
        partial.mkdir()


@pytest.mark.e2e
def test_a_repro_killed_in_each_stage_reruns_to_an_unkilled_runs_outputs_and_leaves_nothing_behind(
        reproduced, tmp_path, monkeypatch):
    # `reproduced`'s params but its export variant: what export writes holds timings, so it is not compared anyway
    repo = make_repo(tmp_path / "repo")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILLER)
    log = tmp_path / "killed.tsv"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("KILL_LOG", str(log))

    # One pipeline run, killed in each stage in turn: each rerun skips the stages done and is killed in the next.
    # Every stage writes its outputs through atomic_output, so every stage is killed (train after its training, when
    # it writes its first output; export, with no variant, just before its empty folder's rename).
    killed = []
    for _ in STAGES:
        stage, partial = killed_run(repo, log)
        killed.append(stage)
        assert partial.exists(), f"{stage} was not killed while writing {partial}"
        assert not partial.with_name(partial.name[1:].removesuffix(".partial")).exists(), \
            f"{stage}, killed while writing, left an output that looks done"
        lock = yaml.safe_load((repo / "dvc.lock").read_text()) if (repo / "dvc.lock").exists() else None
        assert stage not in (lock or {}).get("stages", {}), f"DVC recorded {stage}, which was killed"
    assert Counter(killed) == Counter(STAGES), killed
    dvc(repo, "repro")

    assert not list(repo.rglob("*.partial")), "a killed stage's partial outlived its rerun"
    assert "up to date" in dvc(repo, "status").stdout
    ours, unkilled = out_hashes(repo), out_hashes(reproduced)
    assert ours.keys() == unkilled.keys()
    differ = {path for path in ours if ours[path] != unkilled[path]} - TIMED
    assert not differ, f"outputs that differ from an unkilled run's: {sorted(differ)}"
    weights = sorted(path.name for path in (reproduced / "data/model").iterdir() if path.name not in NOT_WEIGHTS)
    assert "model.safetensors" in weights
    for name in weights:
        assert (repo / "data/model" / name).read_bytes() == (reproduced / "data/model" / name).read_bytes(), name

    # A forced rerun of a stage that ran before, killed: DVC restores that stage from its run cache at the next
    # `dvc repro`, running no stage's code, so the partial stays until the check stage sweeps it at its next run
    monkeypatch.setenv("KILL_LOG", str(tmp_path / "killed-again.tsv"))
    monkeypatch.setenv("KILL_STAGES", "embed")
    stage, partial = killed_run(repo, tmp_path / "killed-again.tsv", "--force", "--single-item", "embed")
    assert (stage, partial) == ("embed", repo / "data/.embeddings.partial")
    monkeypatch.delenv("KILL_LOG")
    restored = dvc(repo, "repro")
    assert "Running stage" not in restored.stdout and "embed' is cached" in restored.stdout, restored.stdout[-3000:]
    assert partial.exists()
    swept = dvc(repo, "repro", "--force", "--single-item", "check")
    assert "check: removed data/.embeddings.partial" in swept.stdout, swept.stdout[-3000:]

    assert not list(repo.rglob("*.partial"))
    assert "up to date" in dvc(repo, "status").stdout
    assert out_hashes(repo) == ours
