"""A real copy of the project in a temporary git + DVC repository, with params small enough that a whole
`dvc repro` runs in about a minute on 2 cores."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from dvc.utils.hydra import compose_and_dump

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
# The BEIR collections and stand-in data sets beside the checkout (../shared/data): CI has them, a user's clone has
# not. A test that reads them skips without them: `@requires_shared` on a test or a module's pytestmark, or
# skip_without_shared() in a fixture or for one parametrized case (marks do not reach those).
SHARED_MISSING = (f"../shared/data is absent: this test reads the shared BEIR collections and stand-in data sets "
                  f"expected at {SHARED_DATA}")
requires_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=SHARED_MISSING)


def skip_without_shared() -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip(SHARED_MISSING)


def reads_shared(value) -> bool:
    """Whether params (or any value) name a path under ../shared/data."""
    return str(SHARED_DATA) in str(value) or "../shared/data" in str(value)


PROJECT_FILES = ["dvc.yaml", "params.yaml", "conf", "reranker", "stages", "sample", "verdicts", ".dvcignore"]

# The tiny pipeline trains the BCE recipe: one (query, document) pair a row gives enough steps on 90 rows for the
# checkpoint, resume and card tests. The default recipe's distillation (MarginMSE on the embedding model's scores)
# runs from mined pairs to a card in test_losses.
TINY_RECIPE = "sample-bce-minilm-l6"
TINY_PARAMS = {
    "download.limit": 90,
    "download.dev_queries": 8,
    "mine.train.num_negatives": 2,
    "mine.dev_candidates": 6,
    "tokenize.max_length": 64,
    "train.args.num_train_epochs": 1,
    "train.args.per_device_train_batch_size": 16,
    "train.args.eval_steps": 6,
    "train.args.save_steps": 6,
    "train.args.logging_steps": 3,
    "evaluate.collections": [
        {"name": "climatefever", "source": str(SHARED_DATA / "beir/climatefever-nano"), "first_stage": "run_file",
         "run_file": str(SHARED_DATA / "beir/climatefever-nano/bm25.trec"), "k": 4},
        {"name": "wikiqa", "source": str(SHARED_DATA / "beir/wikiqa-dev"), "first_stage": "bm25", "k": 4},
    ],
    "evaluate.significance.resamples": 2000,
    # a model of its own: tests point download.source at other data, which the sample recipe's card would misname
    "card.model_name": "tiny test reranker",
    "card.model_id": "test-org/tiny-reranker",
    # no export variant but in the shared reproduced pipeline, which builds the cheapest one; calibration and timing
    # at a tiny scale: seconds, not minutes
    "export.variants": [],
    "export.calibration_pairs": 16,
    "export.latency.rounds": 1,
    "export.latency.max_queries": 4,
    "export.latency.throughput_pairs": 32,
}


def set_params(repo: Path, overrides: dict) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        section = params
        for parent in parents:
            section = section[parent]
        section[key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def env() -> dict:
    # Stages run `python`: make it this interpreter, whatever PATH the test runner was started with
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "DVC_NO_ANALYTICS": "1"}


# Every command of the suite finishes in a tenth of this on 2 cores: one that runs past it has hung (a stalled DVC
# queue worker, a deadlocked stage) and fails with what it printed, instead of holding the whole run
COMMAND_TIMEOUT = 1200


def run(repo: Path, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
    # Output to files, not pipes: a daemon the command starts inherits its output (DVC's queue workers, through a
    # parent that waits on them), and a pipe would stay open until the daemon exits, which may be never. The
    # command's own exit is what is waited for. Its own process group: on a timeout the command and every child it
    # started are killed.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(args, cwd=repo, env=env(), stdout=out, stderr=err, start_new_session=True)
        try:
            process.wait(timeout=timeout)
            timed_out = None
        except subprocess.TimeoutExpired as expired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            timed_out = expired
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if timed_out:
        raise AssertionError(f"{' '.join(args)} did not finish in {timeout:.0f} s:\n"
                             f"{stdout[-3000:]}\n{stderr[-3000:]}") from timed_out
    result = subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def dvc(repo: Path, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
    return run(repo, sys.executable, "-m", "dvc", *args, check=check, timeout=timeout)


def make_repo(path: Path, overrides: dict | None = None, hydra: bool = False, tiny: bool = True) -> Path:
    """Without hydra, params.yaml is the tiny params and `dvc exp run -S` edits it; with hydra, DVC composes
    params.yaml from conf/ at each `dvc exp run`, as in the project, and ../shared resolves as in a checkout.
    With tiny=False, params.yaml is the repository's own, as a user's clone has it."""
    path.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy(source, path / name)
    (path / ".gitignore").write_text("/data/\n__pycache__/\n")
    if not hydra and tiny:
        compose_and_dump(str(path / "params.yaml"), str(ROOT / "conf"), None, "config", "", [f"recipe={TINY_RECIPE}"])
        set_params(path, {**TINY_PARAMS, **(overrides or {})})
        if reads_shared((path / "params.yaml").read_text()):
            skip_without_shared()
    elif hydra:
        skip_without_shared()  # the offline recipes read it through ../shared, as from a checkout
        if not (path.parent / "shared").exists():
            (path.parent / "shared").symlink_to(SHARED_DATA.parent)
    run(path, "git", "init", "-q")
    run(path, "git", "config", "user.email", "test@example.com")
    run(path, "git", "config", "user.name", "test")
    dvc(path, "init", "-q")
    dvc(path, "config", "core.autostage", "true")
    if hydra:
        dvc(path, "config", "hydra.enabled", "true")
    run(path, "git", "add", "-A")
    run(path, "git", "commit", "-qm", "project")
    return path


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory) -> Path:
    """The tiny project after one whole `dvc repro`, exporting the fp32 ONNX variant; tests that change it work on
    their own copy."""
    repo = make_repo(tmp_path_factory.mktemp("pipeline") / "repo", {"export.variants": ["onnx"]})
    dvc(repo, "repro")
    return repo
