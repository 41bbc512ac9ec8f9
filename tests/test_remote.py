"""Shared remote cache: `dvc push` to a remote, then a fresh `git clone` + `dvc pull` on another checkout.

Run for a local-directory remote and for an SSH remote served by a real sshd on loopback. The clone gets
every cached output back, is up to date (`dvc repro` runs nothing), sees the pushed experiment through
the git remote (`dvc exp push`/`pull`) and loads the pulled model. Checkpoints, kept only for resuming,
never reach the remote, and nothing large goes into git.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sentence_transformers.cross_encoder import CrossEncoder

from conftest import dvc, run

pytestmark = pytest.mark.e2e

SSHD = Path("/usr/sbin/sshd")
PAIRS = [("What is a caldera?", "A caldera is a basin left by a collapsed volcano summit."),
         ("What is a caldera?", "Jazz grew out of blues and ragtime in New Orleans.")]
CACHED_OUTS = ["data/download/train.parquet", "data/download/dev.parquet", "data/mine/train.parquet",
               "data/mine/dev.parquet", "data/tokenize/train.parquet", "data/model/model.safetensors",
               "data/train/log.json", "data/hub/README.md", "data/retrieve/wikiqa/candidates.parquet",
               "data/evaluate_base/dev.parquet"]
IN_GIT = ["dvc.lock", "dvc.yaml", "params.yaml", ".dvc/config", "metrics/evaluate.json", "metrics/train.json",
          "metrics/summary/evaluate.json", "emissions/train.json", "dvclive/train/metrics.json",
          "runs/dev/trained.trec", "metrics/per_query/dev.csv"]


# --- helpers -------------------------------------------------------------------------------------------

def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def ran(result) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", result.stdout))


def pushed(result) -> int:
    """The file count `dvc push` ("N files pushed") or `dvc exp push` ("N files uploaded") reports."""
    return sum(int(n) for n in re.findall(r"(\d+) files? (?:pushed|uploaded)", result.stdout + result.stderr))


def remote_objects(remote: Path) -> list[Path]:
    return sorted(path for path in remote.rglob("*") if path.is_file())


def plant_checkpoint(repo: Path, tag: str) -> str:
    """A resume-only checkpoint with content no other file has; returns its md5 (its name in a DVC remote)."""
    folder = repo / "data/checkpoints" / f"checkpoint-{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trainer_state.json").write_text(json.dumps({"planted": tag, "nonce": os.urandom(16).hex()}))
    return md5(folder / "trainer_state.json")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- an sshd on loopback -------------------------------------------------------------------------------

@dataclass
class Sshd:
    port: int
    user: str
    client_key: Path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not SSHD.exists():
        pytest.skip(f"{SSHD} is absent: install openssh-server (.ci/run does) to test the SSH remote; this test "
                    "starts its own sshd on loopback")
    home = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(home / name)],
                       check=True, capture_output=True)
    (home / "authorized_keys").write_text((home / "client_key.pub").read_text())
    port = free_port()
    config = home / "sshd_config"
    config.write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {home / 'host_key'}
AuthorizedKeysFile {home / 'authorized_keys'}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile {home / 'sshd.pid'}
Subsystem sftp internal-sftp
""")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # its privilege separation directory
    log = open(home / "sshd.log", "w")
    process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:
            assert process.poll() is None, f"sshd exited {process.returncode}:\n{(home / 'sshd.log').read_text()}"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                    if sock.recv(64).startswith(b"SSH-"):
                        break
            except OSError:
                pass
            assert time.time() < deadline, f"sshd not listening on {port}:\n{(home / 'sshd.log').read_text()}"
            time.sleep(0.2)
        yield Sshd(port=port, user=getpass.getuser(), client_key=home / "client_key")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# --- the team workflow, once per remote kind -------------------------------------------------------------

@dataclass
class Shared:
    kind: str
    repo: Path                   # the checkout that pushed
    clone: Path                  # a fresh `git clone` of origin, after `dvc pull`
    remote: Path                 # the remote's storage directory (local, or the SSH server's disk)
    files_pushed: int            # as `dvc push` / `dvc exp push` reported, all pushes together
    planted: list[str]           # md5s of resume-only checkpoint files present at push time
    baseline: dict[str, str]     # md5 of each cached output of the commit pushed
    lr_high: dict[str, str]      # the same for the experiment lr-high
    clone_checkpoints: list[str]  # what data/checkpoints holds in the clone right after pull
    remote_config: str           # the clone's .dvc/config as git brought it


@pytest.fixture(scope="module", params=["local", "ssh"])
def shared(request, reproduced, tmp_path_factory) -> Shared:
    kind = request.param
    root = tmp_path_factory.mktemp(f"shared-{kind}")
    repo = root / "repo"
    shutil.copytree(reproduced, repo, symlinks=True)
    remote = root / "remote"

    # 1. Commit the pipeline's results and a DVC remote (its config in git), push the data, then the commit
    branch = run(repo, "git", "symbolic-ref", "--short", "HEAD").stdout.strip()
    origin = root / "origin.git"
    run(root, "git", "init", "-q", "--bare", f"--initial-branch={branch}", str(origin))
    run(repo, "git", "remote", "add", "origin", str(origin))
    if kind == "local":
        dvc(repo, "remote", "add", "-d", "storage", str(remote))
    else:
        server = request.getfixturevalue("sshd")
        remote.mkdir()
        dvc(repo, "remote", "add", "-d", "storage", f"ssh://{server.user}@127.0.0.1:{server.port}{remote}")
        # A key path is per machine: it goes to .dvc/config.local, which git ignores
        dvc(repo, "remote", "modify", "--local", "storage", "keyfile", str(server.client_key))
    run(repo, "git", "add", "-A")  # dvc.lock, metrics, dvclive, emissions, .dvc/config; data/ is git-ignored
    run(repo, "git", "commit", "-qm", f"reproduced, {kind} remote storage")
    baseline = {out: md5(repo / out) for out in CACHED_OUTS}
    planted = [plant_checkpoint(repo, "900")]
    files_pushed = pushed(dvc(repo, "push"))
    run(repo, "git", "push", "-q", "origin", f"HEAD:{branch}")

    # 2. One experiment: `dvc exp push` sends its git ref to origin and its outputs to the DVC remote
    dvc(repo, "exp", "run", "-n", "lr-high", "-S", "train.args.learning_rate=1e-4")
    lr_high = {out: md5(repo / out) for out in CACHED_OUTS}
    planted.append(plant_checkpoint(repo, "901"))
    result = dvc(repo, "exp", "push", "origin", "lr-high")
    assert "Pushed experiment lr-high to Git remote 'origin'" in result.stdout, result.stdout
    files_pushed += pushed(result)
    again = dvc(repo, "push")  # the workspace holds lr-high's outputs: exp push has sent them all
    assert pushed(again) == 0 and "Everything is up to date" in again.stdout, again.stdout

    # 3. Another checkout: git clone, remote config from git (plus the key, again local), dvc pull
    clone = root / "clone"
    run(root, "git", "clone", "-q", str(origin), str(clone))
    remote_config = (clone / ".dvc/config").read_text()
    if kind == "ssh":
        assert not (clone / ".dvc/config.local").exists() and "keyfile" not in remote_config
        dvc(clone, "remote", "modify", "--local", "storage", "keyfile", str(server.client_key))
    dvc(clone, "pull")
    checkpoints = clone / "data/checkpoints"
    clone_checkpoints = [str(p.relative_to(clone)) for p in [checkpoints, *checkpoints.rglob("*")] if p.exists()]
    return Shared(kind=kind, repo=repo, clone=clone, remote=remote, files_pushed=files_pushed, planted=planted,
                  baseline=baseline, lr_high=lr_high, clone_checkpoints=sorted(clone_checkpoints),
                  remote_config=remote_config)


# --- the checks (in this order: the last one changes the clone's workspace) ----------------------------------

def test_pull_restores_the_pushed_outputs_and_the_model_loads(shared):
    assert {out: md5(shared.clone / out) for out in CACHED_OUTS} == shared.baseline
    assert "storage" in shared.remote_config and ("ssh://" in shared.remote_config) == (shared.kind == "ssh")
    scores = CrossEncoder(str(shared.clone / "data/model")).predict(PAIRS)
    assert scores.shape == (2,) and scores[0] != scores[1]


def test_clone_is_up_to_date_and_repro_runs_nothing(shared):
    status = dvc(shared.clone, "status")
    assert "Data and pipelines are up to date." in status.stdout, status.stdout
    assert ran(dvc(shared.clone, "repro")) == set()


def test_remote_holds_dvc_cache_objects_only_and_no_checkpoint(shared):
    objects = remote_objects(shared.remote)
    assert objects, "nothing was pushed"
    names = {"".join(path.relative_to(shared.remote).parts[-2:]).removesuffix(".dir") for path in objects}
    for path in objects:
        parts = path.relative_to(shared.remote).parts
        assert parts[:2] == ("files", "md5") and len(parts) == 4, f"not a DVC cache object: {path}"
    assert len(objects) == shared.files_pushed, "the remote holds other files than those DVC reported pushing"
    for out in CACHED_OUTS:
        assert shared.baseline[out] in names and shared.lr_high[out] in names, out
    for planted in shared.planted:
        assert planted not in names, "a resume-only checkpoint was pushed"
    assert not [p for p in shared.clone_checkpoints if "checkpoint-" in p], shared.clone_checkpoints


def test_git_holds_small_files_only(shared):
    tracked = run(shared.clone, "git", "ls-files", "-z").stdout.split("\0")
    tracked = [name for name in tracked if name]
    sizes = {name: (shared.clone / name).stat().st_size for name in tracked}
    assert not {name: size for name, size in sizes.items() if size > 1_000_000}, "large file in git"
    assert not [name for name in tracked if name.startswith("data/")], "DVC outputs belong in the remote, not git"
    assert set(IN_GIT) <= set(tracked), set(IN_GIT) - set(tracked)
    assert (shared.clone / "metrics/evaluate.json").read_text() == \
        run(shared.repo, "git", "show", "HEAD:metrics/evaluate.json").stdout


def test_experiment_comes_through_the_git_remote(shared):
    clone = shared.clone
    assert "lr-high" not in dvc(clone, "exp", "show", "--csv").stdout, "no experiment before exp pull"
    dvc(clone, "exp", "pull", "origin", "lr-high")
    rows = list(csv.DictReader(io.StringIO(dvc(clone, "exp", "show", "--csv").stdout)))
    row = next((row for row in rows if row["Experiment"] == "lr-high"), None)
    assert row is not None, [r["Experiment"] for r in rows]
    assert float(row["train.args.learning_rate"]) == 1e-4
    # Its outputs came with it: applied with the remote out of reach, they are the pushed ones and load
    away = shared.remote.with_name("remote-away")
    shared.remote.rename(away)
    try:
        dvc(clone, "exp", "apply", "lr-high")
    finally:
        away.rename(shared.remote)
    assert {out: md5(clone / out) for out in CACHED_OUTS} == shared.lr_high
    assert shared.lr_high["data/model/model.safetensors"] != shared.baseline["data/model/model.safetensors"]
    assert json.loads((clone / "data/train/log.json").read_text())["all_args"]["learning_rate"] == 1e-4
    assert CrossEncoder(str(clone / "data/model")).predict(PAIRS).shape == (2,)
