"""Whether a model card's provenance is what a revision of the repository recorded, and the weights beside it are
the ones trained there: `rerank verify`.

Each row of the card's provenance (`provenance.json` beside it, reranker/card/provenance.py) is checked against
dvc.lock and the files at that revision, read through DVC (Git's files, or DVC's cache for a tracked output); nothing
is rerun. Files outside the repository (a collection under ../shared, a run file) are hashed where they are now. A hub
revision is recorded, not checked: that needs the hub. The weights are checked twice: the md5s the card records for
each file of data/model must hash to the train stage's data/model entry, and the files beside the card must have
those md5s.

Example::

    checks = verify(Path("data/hub"), repo=Path("."), rev="HEAD")
    [check.item for check in checks if check.status == "mismatch"]  # [] for a card of that revision
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from reranker.card.provenance import code_files, file_md5, lock_md5, path_md5, tree_md5
from reranker.card.render import LOADER_FILE, PROVENANCE_FILE
from reranker.core.errors import PipelineError

CARD_FILE = "README.md"  # the card replaces data/model's own README.md in the hub folder: not a weight file


@dataclass
class Check:
    item: str
    status: str  # ok, mismatch, or unchecked (a hub revision, a package not installed here)
    detail: str


def card_rows(model_dir: Path) -> list[dict]:
    """The provenance rows the card stage wrote beside the card in `model_dir`."""
    card_path, rows_path = model_dir / CARD_FILE, model_dir / PROVENANCE_FILE
    if not card_path.is_file():
        raise PipelineError(f"{card_path} does not exist; give the folder of a card (default data/hub)")
    if not rows_path.is_file():
        raise PipelineError(f"{rows_path} does not exist beside the card; render it with `dvc repro card`")
    try:
        rows = json.loads(rows_path.read_text())
    except json.JSONDecodeError as error:
        raise PipelineError(f"{rows_path} is not JSON ({error.msg}, line {error.lineno}); render it again with "
                            "`dvc repro -f card`") from None
    if not isinstance(rows, list) or not rows or not all(isinstance(row, dict) and "item" in row for row in rows):
        raise PipelineError(f"{rows_path} holds no provenance rows (expected a list of rows with an 'item'); render "
                            "it again with `dvc repro -f card`")
    return rows


class Revision:
    """The repository's files at `rev` (None: the workspace), through DVC's file system."""

    def __init__(self, repo: Path, rev: str | None):
        from dvc.api import DVCFileSystem

        self.repo, self.rev = repo, rev
        self.label = rev or "the workspace"
        self.fs = DVCFileSystem(str(repo), rev=rev)
        try:
            self.lock = (yaml.safe_load(self.fs.read_text("dvc.lock")) or {}).get("stages", {})
        except FileNotFoundError:
            raise PipelineError(f"no dvc.lock in {repo} at {self.label}; give the repository and revision of the "
                                "run (--repo, --rev)") from None

    def md5(self, path: str) -> str | None:
        """What dvc.lock would record for `path` at this revision; None where it does not exist. A path outside the
        repository (absolute, or ../ from its root) is hashed where it is now."""
        if os.path.isabs(os.path.expanduser(path)) or path.startswith(".."):
            local = Path(os.path.normpath(self.repo / os.path.expanduser(path)))
            return path_md5(local) if local.exists() else None
        return path_md5(path, self.fs) if self.fs.exists(path) else None


def compare(item: str, card: str | None, found: str | None, where: str) -> Check:
    if found is None:
        return Check(item, "mismatch", f"card md5 {card}, but {where} has no such entry or file")
    if card != found:
        return Check(item, "mismatch", f"card md5 {card}, {where} {found}")
    return Check(item, "ok", f"{found} ({where})")


def card_written(name: str) -> bool:
    """A file of data/hub that the card stage adds to the trained model's: a per-query gains picture, the
    provenance rows, an export variant or the loader that serves it.

    Example: ``card_written("per_query_gains_dev.svg")`` is True."""
    return (name.startswith(("onnx/", "openvino/")) or name in (LOADER_FILE, PROVENANCE_FILE)
            or (name.startswith("per_query_gains_") and name.endswith(".svg")))


def check_weights(entry: dict, model_dir: Path, revision: Revision) -> Check:
    """The card's per-file md5s hash to the train stage's data/model, and are the files beside the card."""
    item, files = entry["item"], entry.get("files", {})
    locked = lock_md5(revision.lock, "train", "data/model")
    if tree_md5(files) != locked:
        return Check(item, "mismatch", f"the card's data/model files hash to {tree_md5(files)}, dvc.lock at "
                                       f"{revision.label} records {locked}")
    expected = {name: md5 for name, md5 in files.items() if name != CARD_FILE}
    present = {path.relative_to(model_dir).as_posix(): path for path in model_dir.rglob("*") if path.is_file()}
    for name, md5 in sorted(expected.items()):
        if name not in present:
            return Check(item, "mismatch", f"{model_dir / name} is missing")
        if file_md5(present[name]) != md5:
            return Check(item, "mismatch", f"{model_dir / name} has md5 {file_md5(present[name])}, the train stage "
                                           f"wrote {md5}")
    # beside the weights the card stage writes its own files: the per-query pictures and the export variants that
    # passed the gate (their folders, in the library's layout); anything else was not trained there
    extra = sorted(name for name in set(present) - set(expected) - {CARD_FILE} if not card_written(name))
    if extra:
        return Check(item, "mismatch", f"{model_dir / extra[0]} is not a file the train stage wrote")
    return Check(item, "ok", f"{len(expected)} files, data/model {locked} (dvc.lock at {revision.label})")


def check_code(entry: dict, revision: Revision) -> Check:
    item, stage = entry["item"], entry["stage"]
    locked = code_files(revision.lock, stage)
    card = entry.get("files", {})
    if not locked:
        return Check(item, "mismatch", f"dvc.lock at {revision.label} has no stage {stage}")
    for path in sorted(set(card) | set(locked)):
        if card.get(path) != locked.get(path):
            return Check(item, "mismatch", f"{path}: card md5 {card.get(path)}, dvc.lock at {revision.label} "
                                           f"{locked.get(path)} (if the stage reran with other code to the same "
                                           "outputs, `dvc repro -f card` re-records it)")
    return Check(item, "ok", f"{len(locked)} files (dvc.lock at {revision.label})")


def check_package(entry: dict) -> Check:
    """A pkg: model as installed here: the environment, not the revision, so a difference is reported only."""
    import importlib.metadata

    from reranker.card.provenance import model_row

    try:
        here = model_row(entry["item"], entry["source"])
    except (PipelineError, importlib.metadata.PackageNotFoundError):
        return Check(entry["item"], "unchecked", f"{entry['source']} {entry.get('revision')} is not installed here")
    if (here.get("revision"), here.get("md5")) != (entry.get("revision"), entry.get("md5")):
        return Check(entry["item"], "unchecked", f"installed here: {here.get('revision')} {here.get('md5')}; the "
                                                 f"card's: {entry.get('revision')} {entry.get('md5')}")
    return Check(entry["item"], "ok", f"{entry['source']} {entry.get('revision')} {entry.get('md5')} (installed)")


def check_row(entry: dict, model_dir: Path, revision: Revision) -> Check:
    item, kind = entry["item"], entry["check"]
    if kind == "lock":
        where = f"dvc.lock at {revision.label} (stage {entry['stage']}, {entry['path']})"
        return compare(item, entry.get("md5"), lock_md5(revision.lock, entry["stage"], entry["path"]), where)
    if kind in ("file", "params"):
        return compare(item, entry.get("md5"), revision.md5(entry["path"]), f"{entry['path']} at {revision.label}")
    if kind == "code":
        return check_code(entry, revision)
    if kind == "weights":
        return check_weights(entry, model_dir, revision)
    if kind == "package":
        return check_package(entry)
    if kind == "hub":
        pinned = entry.get("revision")
        return Check(item, "unchecked", f"{entry['source']} at {pinned} on the hub" if pinned else
                     f"{entry['source']} on the hub, no revision recorded (not in the local hub cache)")
    return Check(item, "mismatch", f"unknown check {kind!r}; the card was written by another version")


def verify(model_dir: Path, repo: Path = Path("."), rev: str | None = None) -> list[Check]:
    """Every provenance row of the card in `model_dir`, checked against `repo` at `rev` (None: the workspace)."""
    rows = card_rows(model_dir)
    revision = Revision(repo, rev)
    return [check_row(entry, model_dir, revision) for entry in rows]


def as_json(model_dir: Path, rev: str | None, checks: list[Check]) -> dict:
    return {"model_dir": str(model_dir), "rev": rev, "ok": all(check.status != "mismatch" for check in checks),
            "checks": [asdict(check) for check in checks]}
