"""End to end: the pipeline against the plain sentence-transformers script it replaces.

One recipe, run two ways, one after the other:

- plain: ``bench/plain_script.py``, the script a user writes after the library's training examples (load pairs,
  ``mine_hard_negatives``, ``CrossEncoder`` + ``BinaryCrossEntropyLoss`` + ``CrossEncoderTrainer`` with text in
  and the library's defaults, ``CrossEncoderRerankingEvaluator`` before and after training, save), run as its own
  process. It has no cache: changing the learning rate reruns all of it, so its one run is also what a
  learning-rate change costs it.
- pipeline: a fresh copy of this project's working tree in a temporary git + DVC repository (empty DVC cache,
  Hydra composition on, as in the project), run with ``dvc exp run`` and ``-S`` overrides that give the same
  recipe (cold), then again after changing only ``train.args.learning_rate``.

The recipe: the first ``--questions`` + ``--dev-queries`` SQuAD pairs (``../shared/data/squad-pairs``), the dev
questions drawn with seed 12 and held out; each training question with its answer and 3 hard negatives mined by
all-MiniLM-L6-v2 among the training answers (``absolute_margin`` 0, ``range_max`` 100, top); each dev question's
top 20 of all answers reranked; the packaged all-MiniLM-L6-v2 with a new score head, ``max_length`` 256, batch 32,
one epoch, learning rate 2e-5 with 10% warmup, BCE with ``pos_weight`` 3, seed 12, checkpoints every 40 steps.
The pipeline evaluates only its dev set (``evaluate.collections=[]``, ``evaluate.nanobeir=null``), as the script.

Where the two differ (by design; ``--pipeline-set`` can undo the first):
- attention dropout: the pipeline trains with ``attention_probs_dropout_prob`` 0 (its default,
  ``train.config_kwargs``), the plain script with the model's 0.1;
- the pipeline feeds token ids (identical tensors, see docs/architecture.md) and its evaluate stages score each
  distinct pair once, batched by length, and add TREC runs, per-query files, bootstrap intervals and a model card.

It prints, as a Markdown table: each run's wall time, its training time (``trainer.train()`` alone, the plain
script's own clock and the pipeline's ``metrics/train.json``), pipeline/plain ratios against the pipeline's goals
(cold <= 0.7x, learning-rate rerun <= 0.5x), the dev ndcg@10 of each (trained / untrained / retrieval), the
pipeline's time per stage (from the timestamps of ``dvc exp run``'s "Running stage" lines) and its overhead (every
stage but train, plus DVC's own work), and the load average at the start and the end. Runs are sequential, so
load from other jobs falls on them unevenly: read the load averages printed beside each run.

    .venv/bin/python bench/end_to_end.py                                   # full size: ~25-35 min on 2 quiet cores
    .venv/bin/python bench/end_to_end.py --questions 60 --dev-queries 10 --steps 3   # a check: 5 min at load 4-7
    .venv/bin/python bench/end_to_end.py --pipeline-set train.config_kwargs.attention_probs_dropout_prob=0.1

Measured figures, each with its date, machine and command: docs/benchmarks.md. Under load from other jobs, expect
up to twice a quiet machine's times. With ``--pipeline-set train.config_kwargs.attention_probs_dropout_prob=0.1``
the pipeline trains exactly as the plain script (checked at 3 steps: the same train loss and dev metrics to the
4th decimal). Logs (each line with its second) and outputs stay in ``--workdir`` (default a temporary folder,
deleted after a successful run unless ``--keep``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SQUAD = ROOT.parent / "shared" / "data" / "squad-pairs" / "train.parquet"
PROJECT_FILES = ["dvc.yaml", "params.yaml", "conf", "reranker", "stages", "sample", ".dvcignore"]
STAGES = ["download", "embed", "mine", "tokenize", "train", "retrieve", "evaluate_base", "evaluate", "card"]
STAGE_SECONDS = {"mine": "mine", "train": "train", "evaluate_base": "evaluate_base", "evaluate": "evaluate"}
RUNNING = re.compile(r"^Running stage '([^']+)'")
SKIPPED = re.compile(r"^Stage '([^']+)' (?:didn't change|is cached)")
GOALS = {"cold": 0.7, "rerun": 0.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=600, help="training questions (4 pairs each)")
    parser.add_argument("--dev-queries", type=int, default=100, help="held-out dev questions")
    parser.add_argument("--steps", type=int, default=None, help="stop training after this many steps (a quick check)")
    parser.add_argument("--only", choices=["plain", "pipeline"], default=None, help="run one side only")
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--rerun-learning-rate", type=float, default=None,
                        help="the pipeline's second run (default: twice --learning-rate)")
    parser.add_argument("--pipeline-set", action="append", default=[], metavar="KEY=VALUE",
                        help="another `dvc exp run -S` override for both pipeline runs (repeatable)")
    parser.add_argument("--data", type=Path, default=SQUAD, help="Parquet with question and answer columns")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where runs, logs and outputs go (kept); default a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder after a successful run")
    options = parser.parse_args()
    options.rerun_learning_rate = options.rerun_learning_rate or 2 * options.learning_rate
    check_data(options)

    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="end-to-end-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        raise SystemExit(f"--workdir {workdir} is not empty")
    load_start = os.getloadavg()
    print(f"end to end: {options.questions} questions x 4 pairs, {options.dev_queries} dev queries, "
          f"{'max ' + str(options.steps) + ' steps' if options.steps else 'one epoch'}, learning rate "
          f"{options.learning_rate:g} (pipeline rerun {options.rerun_learning_rate:g}); {os.cpu_count()} CPUs, "
          f"load average {fmt_load(load_start)}; work in {workdir}", flush=True)

    plain = run_plain(options, workdir / "plain") if options.only != "pipeline" else None
    cold = rerun = None
    if options.only != "plain":
        repo = make_repo(workdir / "pipeline" / "repo")
        cold = run_pipeline(repo, "cold", overrides(options, options.learning_rate), workdir / "pipeline")
        rerun = run_pipeline(repo, "lr-rerun", overrides(options, options.rerun_learning_rate), workdir / "pipeline")
    load_end = os.getloadavg()

    report(options, plain, cold, rerun, load_start, load_end)
    if options.workdir is None and not options.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"\nlogs and outputs: {workdir}")


# --- the recipe ---

def check_data(options) -> None:
    """Both sides read the first questions + dev-queries rows; the comparison holds when those are distinct
    questions (the pipeline drops exact duplicate rows, the plain script does not)."""
    import pyarrow.parquet as pq

    rows = options.questions + options.dev_queries
    table = pq.read_table(options.data, columns=["question", "answer"]).slice(0, rows)
    if table.num_rows < rows:
        raise SystemExit(f"{options.data} has {table.num_rows} rows, fewer than {rows}")
    if len(set(table["question"].to_pylist())) < rows:
        raise SystemExit(f"the first {rows} rows of {options.data} repeat a question: the two sides would differ")
    if len(set(table["answer"].to_pylist())) <= 20:
        raise SystemExit("20 dev candidates need more than 20 distinct answers: raise --questions")


def overrides(options, learning_rate: float) -> list[str]:
    """`dvc exp run -S` values that make the pipeline's BCE recipe the plain script's (bench/plain_script.py); most
    repeat the recipe's own value, to show the correspondence."""
    steps = options.steps
    values = {
        # BCE on mined pairs, as the plain script (the default recipe distils the embedding model instead)
        "recipe": "sample-bce-minilm-l6",
        "download.source": str(options.data.resolve()),
        "card.model_name": "bench end-to-end reranker",  # not the sample recipe's: other data
        "card.model_id": "bench/end-to-end-reranker",
        "download.limit": options.questions + options.dev_queries,
        "download.dev_queries": options.dev_queries,
        "download.seed": 12,
        "embed.batch_size": 64,
        "mine.train.num_negatives": 3,
        "mine.train.range_min": 0,
        "mine.train.range_max": 100,
        "mine.train.absolute_margin": 0.0,
        "mine.train.sampling_strategy": "top",
        "mine.dev_candidates": 20,
        "tokenize.max_length": 256,
        "train.loss": "BinaryCrossEntropyLoss",
        "train.loss_args.pos_weight": 3,
        "train.args.seed": 12,
        "train.args.per_device_train_batch_size": 32,
        "train.args.num_train_epochs": 1,
        "train.args.learning_rate": learning_rate,
        "train.args.warmup_steps": 0.1,
        "train.args.eval_strategy": "no",
        "train.args.load_best_model_at_end": "false",
        "train.args.metric_for_best_model": "null",
        # the pipeline refuses save or logging steps beyond the run's end; the plain script's trainer ignores them
        "train.args.save_steps": min(40, steps) if steps else 40,
        "train.args.logging_steps": min(5, steps) if steps else 5,
        "evaluate.collections": "[]",
        "evaluate.nanobeir": "null",
    }
    if steps:
        values["++train.args.max_steps"] = steps
    return [f"{key}={value}" for key, value in values.items()] + list(options.pipeline_set)


# --- running ---

def env(cache: Path) -> dict:
    """Stages run `python`: make it this interpreter; offline; output unbuffered so that lines carry their time."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "DVC_NO_ANALYTICS": "1",
            "PYTHONUNBUFFERED": "1", "HF_DATASETS_CACHE": str(cache)}


def timed(argv: list[str], cwd: Path, log: Path, cache: Path) -> tuple[float, list[tuple[float, str]]]:
    """Run argv, writing each output line to `log` with the seconds since the start; (wall seconds, lines)."""
    lines = []
    started = time.perf_counter()
    with open(log, "w") as handle:
        process = subprocess.Popen(argv, cwd=cwd, env=env(cache), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, bufsize=1)
        for line in process.stdout:
            at = time.perf_counter() - started
            lines.append((at, line.rstrip("\n")))
            handle.write(f"{at:8.1f}  {line}")
        process.wait()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        tail = "\n".join(line for _, line in lines[-40:])
        raise SystemExit(f"{' '.join(argv[:6])} ... failed ({process.returncode}); log {log}:\n{tail}")
    return wall, lines


def run_plain(options, folder: Path) -> dict:
    folder.mkdir(parents=True)
    argv = [sys.executable, str(ROOT / "bench" / "plain_script.py"), "--data", str(options.data.resolve()),
            "--questions", str(options.questions), "--dev-queries", str(options.dev_queries),
            "--learning-rate", str(options.learning_rate), "--output-dir", str(folder / "model")]
    if options.steps:
        argv += ["--max-steps", str(options.steps)]
    load = os.getloadavg()[0]
    print(f"plain: running bench/plain_script.py (log {folder / 'plain.log'})", flush=True)
    wall, _ = timed(argv, folder, folder / "plain.log", folder / "hf-datasets-cache")
    results = json.loads((folder / "model" / "results.json").read_text())
    run = {"wall": wall, "train": results["train_seconds"], "steps": results["steps"],
           "train_loss": results["train_loss"], "learning_rate": options.learning_rate,
           "ndcg": (results["trained"]["squad-dev_ndcg@10"], results["base_model"]["squad-dev_ndcg@10"],
                    results["base_model"]["squad-dev_base_ndcg@10"]),
           "parts": results["seconds"], "load": (load, os.getloadavg()[0])}
    print(f"plain: {wall:.0f} s (train {run['train']:.0f} s), load average {run['load'][0]:.1f} -> "
          f"{run['load'][1]:.1f}", flush=True)
    return run


def make_repo(path: Path) -> Path:
    """The working tree's project files in a new git + DVC repository, Hydra composition on (as .dvc/config has
    it), nothing run: no dvc.lock, an empty cache."""
    path.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy(source, path / name)
    (path / ".gitignore").write_text("/data/\n__pycache__/\n")
    for argv in (["git", "init", "-q"], ["git", "config", "user.email", "bench@example.com"],
                 ["git", "config", "user.name", "bench"], [sys.executable, "-m", "dvc", "init", "-q"],
                 [sys.executable, "-m", "dvc", "config", "core.autostage", "true"],
                 [sys.executable, "-m", "dvc", "config", "hydra.enabled", "true"],
                 ["git", "add", "-A"], ["git", "commit", "-qm", "project"]):
        subprocess.run(argv, cwd=path, env=env(path.parent / "hf-datasets-cache"), check=True, capture_output=True)
    return path


def run_pipeline(repo: Path, name: str, sets: list[str], folder: Path) -> dict:
    argv = [sys.executable, "-m", "dvc", "exp", "run", "-n", name]
    for value in sets:
        argv += ["-S", value]
    log = folder / f"{name}.log"
    load = os.getloadavg()[0]
    print(f"pipeline {name}: dvc exp run (log {log})", flush=True)
    wall, lines = timed(argv, repo, log, folder / "hf-datasets-cache")
    stages = stage_times(lines, wall)
    train_metrics = json.loads((repo / "metrics" / "train.json").read_text())
    dev = json.loads((repo / "metrics" / "evaluate.json").read_text())["dev"]
    own = {stage: json.loads((repo / "metrics" / f"{file}.json").read_text()).get("seconds")
           for stage, file in STAGE_SECONDS.items() if (repo / "metrics" / f"{file}.json").exists()}
    run = {"wall": wall, "train": train_metrics["seconds"], "steps": train_metrics["steps"],
           "train_loss": train_metrics["train_loss"], "learning_rate": learning_rate_of(sets),
           "ndcg": (dev["trained"]["ndcg@10"], dev["base_model"]["ndcg@10"], dev["first_stage"]["ndcg@10"]),
           "stages": stages, "own": own, "load": (load, os.getloadavg()[0])}
    ran = [stage for stage, entry in stages.items() if entry["ran"] and stage != "dvc"]
    print(f"pipeline {name}: {wall:.0f} s (train {run['train']:.0f} s), ran {', '.join(ran)}; load average "
          f"{run['load'][0]:.1f} -> {run['load'][1]:.1f}", flush=True)
    return run


def learning_rate_of(sets: list[str]) -> float:
    return float(next(value.split("=", 1)[1] for value in sets if value.startswith("train.args.learning_rate=")))


def stage_times(lines: list[tuple[float, str]], wall: float) -> dict:
    """Each stage's wall time from `dvc exp run`'s output: from its "Running stage" (or "didn't change") line to the
    next stage's, the last one to its last "Updating lock file" line (so each includes DVC hashing and caching its
    outputs); "dvc" is the rest: composing params before the first stage, committing the experiment after."""
    marks = []
    for at, line in lines:
        if match := RUNNING.match(line):
            marks.append((at, match.group(1), True))
        elif match := SKIPPED.match(line):
            marks.append((at, match.group(1), False))
    if not marks:
        return {"dvc": {"seconds": wall, "ran": True}}
    lock_updates = [at for at, line in lines if line.startswith("Updating lock file") and at >= marks[-1][0]]
    end = lock_updates[-1] if lock_updates else wall
    times = {}
    for (at, stage, ran), following in zip(marks, marks[1:] + [(end, None, None)]):
        times[stage] = {"seconds": following[0] - at, "ran": ran}
    times["dvc"] = {"seconds": wall - sum(entry["seconds"] for entry in times.values()), "ran": True}
    return times


# --- the report ---

def report(options, plain, cold, rerun, load_start, load_end) -> None:
    print(f"\n## End to end: {options.questions} questions x 4 pairs, {options.dev_queries} dev queries, "
          f"{'max ' + str(options.steps) + ' steps' if options.steps else 'one epoch'}\n")
    print(f"Load average (1, 5, 15 min): {fmt_load(load_start)} at the start, {fmt_load(load_end)} at the end; "
          f"{os.cpu_count()} CPUs.\n")
    print("| run | learning rate | wall | train (`trainer.train()`) | not training | wall vs plain | goal | train vs "
          "plain | steps | final train loss | dev ndcg@10 trained / untrained / retrieval | load start→end |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = [("plain script", plain, None), ("pipeline, cold", cold, "cold"),
            ("pipeline, learning rate changed", rerun, "rerun")]
    for label, run, goal in rows:
        if run is None:
            continue
        if run is plain:
            ratio = train_ratio = "1×"
            goal_text = "–"
        elif plain:
            ratio = f"{run['wall'] / plain['wall']:.2f}×"
            train_ratio = f"{run['train'] / plain['train']:.2f}×" if plain["train"] else "–"
            goal_text = f"≤ {GOALS[goal]}×: {'met' if run['wall'] / plain['wall'] <= GOALS[goal] else 'missed'}"
        else:
            ratio = train_ratio = "–"
            goal_text = f"≤ {GOALS[goal]}×"
        print(f"| {label} | {run['learning_rate']:g} | {run['wall']:.0f} s | {run['train']:.0f} s "
              f"| {run['wall'] - run['train']:.0f} s | {ratio} | {goal_text} | {train_ratio} | {run['steps']} "
              f"| {run['train_loss']:.4f} | {' / '.join(f'{value:.3f}' for value in run['ndcg'])} "
              f"| {run['load'][0]:.1f}→{run['load'][1]:.1f} |")
    if plain and rerun:
        print("\nThe plain script has no cache: a learning-rate change reruns all of it, so the rerun's ratio is "
              "taken against its one run.")
    if plain:
        print("\nPlain script, seconds per step: " + ", ".join(f"{step} {value:.0f}"
                                                          for step, value in plain["parts"].items())
              + " (the rest of its wall time: Python start-up and imports).")
    if cold:
        print("\n### The pipeline per stage (wall time from `dvc exp run`'s output; a stage's own clock where it "
              "writes one)\n")
        print("| stage | cold | own clock | learning rate changed | own clock |")
        print("| --- | --- | --- | --- | --- |")
        for stage in [*STAGES, "dvc"]:
            cells = []
            for run in (cold, rerun):
                entry = run["stages"].get(stage) if run else None
                if entry is None:
                    cells += ["–", "–"]
                    continue
                seconds = f"{entry['seconds']:.1f} s" + ("" if entry["ran"] else " (skipped)")
                own = run["own"].get(stage) if entry["ran"] else None
                cells += [seconds, f"{own:.1f} s" if own is not None else "–"]
            label = "dvc itself (params, hashing, experiment commit)" if stage == "dvc" else stage
            print(f"| {label} | " + " | ".join(cells) + " |")
        for name, run in (("cold", cold), ("learning rate changed", rerun)):
            if run is None:
                continue
            outside = sum(entry["seconds"] for stage, entry in run["stages"].items() if stage != "train")
            train_stage = run["stages"].get("train", {}).get("seconds", 0.0)
            print(f"\nOverhead, {name}: {outside:.0f} s outside the train stage (every other stage and DVC itself), "
                  f"plus {train_stage - run['train']:.0f} s of the train stage outside `trainer.train()` (start-up, "
                  f"loading, saving); {run['wall'] - run['train']:.0f} s of {run['wall']:.0f} s in all.")


def fmt_load(load: tuple[float, float, float]) -> str:
    return ", ".join(f"{value:.2f}" for value in load)


if __name__ == "__main__":
    main()
