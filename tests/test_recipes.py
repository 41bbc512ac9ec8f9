"""Each recipe that reproduces a reference model card, composed by DVC's Hydra support exactly as a user selects it
(`dvc exp run -S recipe=NAME -S +offline=NAME`), run end to end at tiny scale on the shared stand-in data,
and checked for the metrics its card reports.

The five run as one sweep, as a team runs one on a GPU box: `dvc exp run --queue` for each, then
`dvc queue start -j 2`. Queued experiments run in temporary copies under .dvc/tmp/exps, so this also checks
that the recipes' data and NanoBEIR paths outside the repository (../shared/data) resolve there."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import time
from pathlib import Path

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
# In queue order: gooaq-bce-bert-tiny last, so that it finds gooaq-bce-minilm-l12's data stages (same stand-in data)
# in the run cache
NANO = ["NanoClimateFEVER_R4", "NanoBEIR_R4_mean"]
RECIPES = {
    "gooaq-bce-minilm-l12": ("BinaryCrossEntropyLoss", ["gooaq-dev", *NANO], "document", 90),
    "msmarco-listmle-minilm-l12": ("PListMLELoss", NANO, "documents", 60),
    "pairs-continue-minilm-l6": ("BinaryCrossEntropyLoss", ["eval"], "document", 200),
    "msmarco-bce-gte-multilingual": ("BinaryCrossEntropyLoss", NANO, "document", 200),
    "gooaq-bce-bert-tiny": ("BinaryCrossEntropyLoss", ["gooaq-dev", *NANO], "document", 90),
}
TINY = ["download.dev_queries=8", "mine.dev_candidates=6", "mine.train.num_negatives=2", "tokenize.max_length=64",
        "train.args.max_steps=6", "train.args.per_device_train_batch_size=16", "train.args.eval_steps=3",
        "train.args.save_steps=3", "train.args.logging_steps=3", "export.variants=[]"]



def overrides(recipe: str) -> list[str]:
    _, evaluators, _, limit = RECIPES[recipe]
    values = [f"recipe={recipe}", f"+offline={recipe}", f"download.limit={limit}", *(f"++{o}" for o in TINY)]
    if any(name.startswith("Nano") for name in evaluators):
        values.append("evaluate.nanobeir.rerank_k=4")
    if "NanoBEIR" in str(yaml.safe_load((ROOT / "conf/offline" / f"{recipe}.yaml").read_text())):
        values.append("++train.args.metric_for_best_model=eval_NanoBEIR_R4_mean_ndcg@10")
    return [arg for value in values for arg in ("-S", value)]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A repository in which every recipe ran as a queued experiment named after it, and the queue's status."""
    repo = make_repo(tmp_path_factory.mktemp("recipes") / "repo", hydra=True)
    for recipe in RECIPES:
        dvc(repo, "exp", "run", "--queue", "-n", recipe, *overrides(recipe))
    start_workers(repo)
    deadline = time.time() + 1500  # the sweep takes about 4 to 5 minutes on 2 cores
    idle_since = None
    try:
        while "Running" in (status := dvc(repo, "queue", "status", timeout=300).stdout) or "Queued" in status:
            assert time.time() < deadline, status + worker_logs(repo)
            idle_since = None if "Running" in status else idle_since or time.time()
            if idle_since and time.time() - idle_since > 60:
                # Workers that stop with tasks still queued (treeverse/dvc#8165) leave a sweep waiting for ever; a
                # user runs `dvc queue start` again, which starts only the workers that are not running. A minute
                # idle, not at once: a worker just started is not running a task yet, and a second one of its name
                # would be started
                start_workers(repo)
                idle_since = None
            time.sleep(5)
    finally:
        dvc(repo, "queue", "stop", "--kill", check=False, timeout=300)
        kill_workers(repo)
    return repo, status


def start_workers(repo) -> None:
    """`dvc queue start -j 2` with one torch thread per worker, as docs/team.md advises on a CPU box: two workers
    with torch's default of one thread per core would run four threads on the 2 cores."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        dvc(repo, "queue", "start", "-j", "2", timeout=300)


def kill_workers(repo) -> None:
    """Kill the queue's workers that are still alive once the sweep is over, by the pid files DVC keeps: a worker can
    log "shutting down due to empty queue" while its task runs, finish the task and stay. Only a process that is
    still a queue worker, as a pid may have been reused."""
    for info in (repo / ".dvc/tmp/exps/celery").glob("dvc-exp-worker-*.json"):
        pid = json.loads(info.read_text()).get("pid")
        with contextlib.suppress(OSError, TypeError):
            if b"queue-worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def worker_logs(repo) -> str:
    """The tail of each queue worker's log, to tell a stalled queue from a stalled stage."""
    return "".join(f"\n--- {log.name}\n{log.read_text(errors='replace')[-2000:]}"
                   for log in sorted((repo / ".dvc/tmp/exps/celery").glob("*.out")))


@pytest.mark.e2e
@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_runs_offline_and_reports_its_card_metrics(recipe, swept):
    repo, status = swept
    line = next((line for line in status.splitlines() if f" {recipe} " in f" {line} "), "")
    assert "Success" in line, status + dvc(repo, "queue", "logs", recipe, check=False).stdout[-4000:]
    dvc(repo, "exp", "apply", recipe)  # its params, metrics and outputs, into the workspace

    loss, evaluators, column, _ = RECIPES[recipe]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["recipe"] == recipe and params["train"]["loss"] == loss
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    assert [name for name in metrics if name != "seconds"] == evaluators
    for name in evaluators:
        expected = CARD_METRICS["classification" if name == "eval" else "reranking"]
        # a reranking set compares with its first stage and baselines; a library evaluator with the base model
        compared = metrics[name].get("vs_first_stage") or metrics[name]["delta"]
        assert set(metrics[name]["trained"]) == expected and set(compared) == expected
    train = json.loads((repo / "metrics/train.json").read_text())
    assert train["steps"] > 0
    assert column in pd.read_parquet(repo / "data/mine/train.parquet").columns
    assert (repo / "data/hub/README.md").read_text().count(params["card"]["model_name"]) >= 1


@pytest.mark.e2e
def test_exp_show_and_diff_tell_the_recipes_apart(swept):
    repo, _ = swept
    rows = {row["Experiment"]: row for row in csv.DictReader(io.StringIO(dvc(repo, "exp", "show", "--csv").stdout))}
    for recipe, (loss, evaluators, *_) in RECIPES.items():
        row = rows[recipe]
        assert row["recipe"] == recipe and row["train.loss"] == loss
        for name in evaluators:  # each evaluator's primary metric, trained and its gain, is a column of its own
            if name.startswith("Nano") and not name.endswith("_mean"):
                continue  # a NanoBEIR dataset's own entry is in metrics/evaluate.json only, not in the headline
            metric = "average_precision" if name == "eval" else "ndcg@10"
            gain = "vs_first_stage" if name == "gooaq-dev" else "vs_base_model"
            assert 0 <= float(row[f"{name}.{metric}"]) <= 1 and abs(float(row[f"{name}.{gain}"])) <= 1
            assert f"{name}.trained.{metric}" not in row  # the full metrics are not columns
    sources = {recipe: rows[recipe]["download.source"] for recipe in RECIPES}
    assert all(source.startswith("../shared/data/") for source in sources.values()), sources  # ran in temp copies
    assert sources["gooaq-bce-bert-tiny"] == sources["gooaq-bce-minilm-l12"], sources  # the same stand-in data

    # gooaq-bce-bert-tiny is gooaq-bce-minilm-l12 with bert-tiny's batch size and learning rate (the base model is
    # MiniLM offline)
    diff = dvc(repo, "exp", "diff", "gooaq-bce-minilm-l12", "gooaq-bce-bert-tiny").stdout
    assert "train.args.learning_rate" in diff and "2e-05" in diff and "0.0005" in diff, diff
    assert "metrics/summary/evaluate.json" in diff and "gooaq-dev.ndcg@10" in diff, diff


def test_committed_params_are_the_composed_default_recipe(tmp_path):
    from dvc.utils.hydra import compose_and_dump

    compose_and_dump(str(tmp_path / "params.yaml"), str(ROOT / "conf"), None, "config", "", [])
    assert (tmp_path / "params.yaml").read_text() == (ROOT / "params.yaml").read_text(), \
        "params.yaml is stale: regenerate it from conf/ (see docs/recipes.md)"
