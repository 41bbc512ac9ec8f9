"""The check and steps stages: every check runs before the stage it protects and in seconds, and a change to the
checks reruns no stage that does work. The checks keep only the rules the libraries do not enforce themselves; each
is held against the library."""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
import tempfile
import time

import pytest
import yaml

from conftest import ROOT, SHARED_DATA, dvc, run, set_params
from reranker.checks.params import check_params
from reranker.core.errors import PipelineError

VALIDATION_MODULES = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "reranker/checks").glob("*.py")
                            if path.name != "__init__.py") + ["stages/check.py", "stages/steps.py"]
CHECKING_STAGES = {"check", "steps"}
BASE_ARGS = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]["args"]

# Values CrossEncoderTrainingArguments takes but cannot train with: the checks refuse them, and the library must
# still accept each (else the library enforces the rule itself and the check's copy should go).
KEPT_RULES = [
    {"learning_rate": 0.0}, {"learning_rate": math.nan}, {"per_device_train_batch_size": 0},
    {"gradient_accumulation_steps": 0}, {"num_train_epochs": -1.0}, {"weight_decay": -0.1}, {"adam_beta1": 1.5},
    {"seed": -1}, {"seed": 2**40}, {"max_steps": 0}, {"max_steps": -5}, {"num_train_epochs": 0.0},
    {"warmup_steps": 2.5}, {"warmup_ratio": 2.0}, {"warmup_ratio": 0.1, "warmup_steps": 5},
    {"save_strategy": "best", "eval_strategy": "no", "load_best_model_at_end": False},
]


@pytest.mark.parametrize("values", KEPT_RULES, ids=lambda values: ",".join(f"{k}={v}" for k, v in values.items()))
def test_each_kept_training_rule_is_one_the_library_does_not_enforce(values):
    from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

    from reranker.checks.training import check_training_args

    args = {**BASE_ARGS, "load_best_model_at_end": False, **values}
    with tempfile.TemporaryDirectory() as folder:
        CrossEncoderTrainingArguments(output_dir=folder, report_to="none", use_cpu=True, **args)  # the library: ok
    with pytest.raises(PipelineError) as error:
        check_training_args(args)
    assert "\n" not in str(error.value) and f"train.args.{next(iter(values))}" in str(error.value), str(error.value)


@pytest.mark.parametrize("lines, words", [
    ("Q1 Q0 D1 1 2.5\n", ["line 1 has 5 fields", "qid Q0 docid rank score tag"]),
    ("no-such-query Q0 D1 1 2.5 bm25\n", ["names 1 queries not in collection"]),
    ("{query} Q0 no-such-doc 1 2.5 bm25\n", ["names 1 documents not in collection"]),
])
def test_a_bad_run_file_fails_the_check_before_any_stage_works(tmp_path, monkeypatch, lines, words):
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent: this test reads its ClimateFEVER collection")
    source = SHARED_DATA / "beir/climatefever-nano"
    query = json.loads((source / "queries.jsonl").read_text().splitlines()[0])["_id"]
    (tmp_path / "run.trec").write_text(lines.format(query=query))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["evaluate"]["collections"] = [{"name": "cf", "source": str(source), "first_stage": "run_file",
                                          "run_file": str(tmp_path / "run.trec"), "k": 10}]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(ROOT)
    with pytest.raises(PipelineError) as error:
        check_params(tmp_path / "params.yaml")
    message = str(error.value)
    assert "\n" not in message and "evaluate.collections[0]" in message, message
    assert all(word in message for word in words), message


@pytest.mark.parametrize("train, words", [
    ({"loss_args": {"activaton_fn": "torch.nn.Identity"}}, ["train.loss_args.activaton_fn", "MarginMSELoss",
                                                            "did you mean 'activation_fn'"]),
    ({"loss_args": {"activation_fn": "Identity"}}, ["train.loss_args.activation_fn", "not a dotted class path"]),
    ({"config_kwargs": {"attention_dropout_prob": 0.0}}, ["train.config_kwargs.attention_dropout_prob",
                                                          "is not a field of",
                                                          "did you mean 'attention_probs_dropout_prob'"]),
    ({"activation_fn": "torch.nn.Identiti"}, ["train.activation_fn", "torch.nn has no 'Identiti'"]),
])
def test_loss_and_model_arguments_are_checked_before_any_stage_works(train, words, tmp_path, monkeypatch):
    """The loss's constructor, the base model's config (AutoConfig) and the activation's module decide which names
    exist: one the train stage would fail on, or that transformers would drop without a word, stops the check
    stage instead."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(train)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(ROOT)
    with pytest.raises(PipelineError) as error:
        check_params(tmp_path / "params.yaml")
    message = str(error.value)
    assert "\n" not in message and all(word in message for word in words), message


def test_rerank_check_prints_json_and_exits_1_on_bad_params(tmp_path):
    good = run(ROOT, sys.executable, "-m", "reranker.cli", "check", "--json")
    assert json.loads(good.stdout) == {"params": "params.yaml", "ok": True, "recipe": "sample-distill-minilm-l6"}
    misspelt = (ROOT / "params.yaml").read_text().replace("    learning_rate:", "    learnig_rate:")
    (tmp_path / "params.yaml").write_text(misspelt)
    bad = run(ROOT, sys.executable, "-m", "reranker.cli", "check", str(tmp_path / "params.yaml"), "--json",
              check=False)
    assert bad.returncode == 1 and not json.loads(bad.stdout)["ok"]
    assert "Did you mean 'learning_rate'" in json.loads(bad.stdout)["error"]
    plain = run(ROOT, sys.executable, "-m", "reranker.cli", "check", str(tmp_path / "params.yaml"), check=False)
    assert plain.returncode == 1 and plain.stderr.strip().startswith("error: ") and "\n" not in plain.stderr.strip()


@pytest.mark.e2e
def test_a_change_to_any_check_reruns_only_the_checking_stages(reproduced, tmp_path):
    """Each validation module edited in turn (a reworded message): `dvc status` names only the check and steps
    stages, and `dvc repro` reruns them and nothing else."""
    repo = tmp_path / "repo"
    shutil.copytree(reproduced, repo, symlinks=True)
    assert "up to date" in dvc(repo, "status").stdout
    for module in VALIDATION_MODULES:
        path = repo / module
        text = path.read_text()
        path.write_text(text.replace("; ", "; please ", 1) + "\n# an added check's comment\n")
        status = set(json.loads(dvc(repo, "status", "--json").stdout))
        assert status and status <= CHECKING_STAGES, (module, status)
        path.write_text(text)
    data_checks = repo / "reranker/checks/training_data.py"
    data_checks.write_text(data_checks.read_text() + "\n# reworded\n")
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    started = time.perf_counter()
    result = dvc(repo, "repro")
    assert time.perf_counter() - started < 120
    assert set(re.findall(r"Running stage '([^']+)'", result.stdout)) == CHECKING_STAGES, result.stdout
    after = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert {name: stage["outs"] for name, stage in after.items() if name not in CHECKING_STAGES} == {
        name: stage["outs"] for name, stage in lock.items() if name not in CHECKING_STAGES}


@pytest.mark.e2e
def test_a_bad_run_file_stops_dvc_repro_in_seconds_before_training(reproduced, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(reproduced, repo, symlinks=True)
    (repo / "bad.trec").write_text("Q1 Q0 D1 1\n")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    collection = {**params["evaluate"]["collections"][0], "first_stage": "run_file",
                  "run_file": str(repo / "bad.trec")}
    set_params(repo, {"evaluate.collections": [collection], "train.args.learning_rate": 1e-4})
    lock = (repo / "dvc.lock").read_text()
    started = time.perf_counter()
    result = dvc(repo, "repro", check=False)
    assert result.returncode != 0 and time.perf_counter() - started < 60
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "line 1 has 4 fields" in errors[0], result.stdout + result.stderr
    assert "Running stage 'train'" not in result.stdout
    assert (repo / "dvc.lock").read_text() == lock


@pytest.mark.e2e
def test_a_collection_that_cannot_be_read_stops_dvc_repro_before_training(reproduced, tmp_path):
    """The check stage reads no corpus (a large one would take minutes); the retrieve stage reads it all, and is
    declared before the training stages so that DVC runs it before them."""
    repo = tmp_path / "repo"
    shutil.copytree(reproduced, repo, symlinks=True)
    shutil.copytree(repo / "sample/heldout-topics", repo / "broken-topics")
    with (repo / "broken-topics/corpus.jsonl").open("a") as corpus:
        corpus.write("{not json\n")
    collection = {"name": "broken", "source": "broken-topics", "first_stage": "bm25", "k": 10}
    set_params(repo, {"evaluate.collections": [collection], "train.args.learning_rate": 1e-4})
    result = dvc(repo, "repro", check=False)
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error: ")]
    assert result.returncode != 0 and len(errors) == 1, result.stdout + result.stderr
    assert "broken-topics/corpus.jsonl line" in errors[0] and "is not JSON" in errors[0], errors[0]
    assert "Running stage 'retrieve'" in result.stdout and "Running stage 'train'" not in result.stdout


# A run of 10 steps on 40 rows, 5 a epoch, and train.args that cannot happen on it -> what the one line says
RUN_OF_10 = {"per_device_train_batch_size": 8, "max_steps": 10, "eval_steps": 5, "save_steps": 5, "logging_steps": 5}
RUN_LENGTH_CASES = {
    "per_device_train_batch_size": ({"per_device_train_batch_size": 64}, "more than the 40 training rows"),
    "warmup_steps": ({"warmup_steps": 10}, "would never leave warmup"),
    "eval_steps": ({"eval_steps": 20, "save_steps": 20}, "no evaluation would run"),
    "logging_steps": ({"logging_steps": 20}, "no training loss would be logged"),
}


def run_steps_stage(folder, args: dict, labels: list[float], loss: str = "BinaryCrossEntropyLoss") -> None:
    """The steps stage on a tokenize folder of real Parquet files holding `labels`, against train.args as the
    library resolves them (the check stage's training.json)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from reranker.checks.training import build_training_arguments
    from reranker.checks.training_data import RUN_LENGTH_FIELDS
    from stages import steps

    resolved = build_training_arguments({**BASE_ARGS, **args}).to_dict()
    (folder / "training.json").write_text(json.dumps({"loss": loss, "num_labels": 3, "eval_loss": False,
                                                      "processes": 1,
                                                      **{field: resolved[field] for field in RUN_LENGTH_FIELDS}}))
    (folder / "tokenize").mkdir(exist_ok=True)
    pq.write_table(pa.table({"query_ids": [[i] for i in range(len(labels))], "label": labels}),
                   folder / "tokenize/train.parquet")
    sys.argv = ["steps", str(folder / "training.json"), str(folder / "tokenize"), str(folder / "steps.json")]
    steps.main()


@pytest.mark.parametrize("case", [*RUN_LENGTH_CASES, "class ids"])
def test_a_run_that_cannot_happen_on_its_data_stops_the_steps_stage(case, tmp_path, monkeypatch, capsys):
    """One line naming the key, exit 1, no output; a run that can happen counts its steps."""
    monkeypatch.setattr(sys, "argv", sys.argv)
    if case == "class ids":  # CrossEntropyLoss with 3 classes, and a label 3
        args, labels, loss, words = RUN_OF_10, [0.0, 1.0, 2.0, 3.0] * 10, "CrossEntropyLoss", "labels range over 0..3"
    else:
        (args, words), labels, loss = RUN_LENGTH_CASES[case], [0.0, 1.0] * 20, "BinaryCrossEntropyLoss"
        args = {**RUN_OF_10, **args}
    with pytest.raises(SystemExit) as exit:
        run_steps_stage(tmp_path, args, labels, loss)
    error = capsys.readouterr().err.strip()
    assert exit.value.code == 1 and "\n" not in error and words in error, error
    assert case == "class ids" or f"train.args.{case}" in error, error
    assert not (tmp_path / "steps.json").exists()

    run_steps_stage(tmp_path, RUN_OF_10, [0.0, 1.0, 2.0, 2.0] * 10, "CrossEntropyLoss")
    assert json.loads((tmp_path / "steps.json").read_text()) == {"rows": 40, "processes": 1, "steps": 10,
                                                                 "steps_per_epoch": 5}


@pytest.mark.e2e
def test_a_batch_larger_than_the_data_stops_dvc_repro_before_training(reproduced, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(reproduced, repo, symlinks=True)
    set_params(repo, {"train.args.per_device_train_batch_size": 100_000})
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    started = time.perf_counter()
    result = dvc(repo, "repro", check=False)
    assert result.returncode != 0 and time.perf_counter() - started < 60
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "per_device_train_batch_size 100000" in errors[0], result.stdout + result.stderr
    assert "Running stage 'steps'" in result.stdout and "Running stage 'train'" not in result.stdout
    # the check stage passed these params, and its entry says so; the failed stage and all after it are unchanged
    after = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert {name: stage for name, stage in after.items() if name != "check"} == {
        name: stage for name, stage in lock.items() if name != "check"}
