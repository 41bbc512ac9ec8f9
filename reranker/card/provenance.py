"""What the trained model was made from, each input with a content hash: the rows of the card's provenance.

Gathered by the card stage from dvc.lock, params and the files it reads itself. The card stage runs last and has no
lock entry of its own yet, but every stage before it has one: `dvc repro` writes a stage's lock entry as soon as that
stage succeeds (dvc/repo/reproduce.py: `stage.dump()` after each `stage.reproduce()`), and a stage it skips already
has one that matches its outputs. No git commit is recorded: the commit that holds a run's dvc.lock is made after
the card, so the code is named by the hashes the lock records for each stage's code files instead.

Each row says how `rerank verify` checks it (`check`):

    lock     `md5` is dvc.lock's hash of `path`, a dep or out of `stage`
    file     `md5` is the hash of the file or folder at `path` (inside the repository: at the revision checked)
    params   `md5` is the hash of params.yaml
    code     `files` are the code deps (scripts, wings, modules) and hashes dvc.lock records for `stage`; `md5`
             their digest
    weights  `files` hash to the train stage's data/model out, and are the files beside the card
    package  `source` is pkg:MODULE, `revision` the package's version, `md5` its model/ folder's hash
    hub      `source` is a hub id and `revision` the commit the local hub cache resolved (null: not in the cache)

Example::

    rows = gather(load_params(), Path("data/model"))
    next(row for row in rows if row["item"] == "trained model")["md5"]  # dvc.lock's data/model hash
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import os
import posixpath
import re
from pathlib import Path

import yaml
from dvc_data.hashfile.hash import file_md5
from dvc_data.hashfile.tree import Tree
from dvc_objects.fs import localfs

from reranker.core.paths import outside_path, resolve_model
from reranker.data.collections import locate
from reranker.data.sources import local_files
from reranker.evaluation.first_stage import bm25_run

COMMIT = re.compile(r"^[0-9a-f]{40}$")
CODE = ("reranker/", "stages/")  # a stage's code deps: its script, the wings (folders) and modules it imports
# what .dvcignore keeps out of a code folder's hash: Python's bytecode caches
IGNORED_IN_CODE = "__pycache__"


def tree_md5(files: dict[str, str]) -> str:
    """DVC's ".dir" hash of a folder from its files' md5s, keyed by "/"-separated relative path."""
    tree = Tree.from_list([{"md5": md5, "relpath": relpath} for relpath, md5 in files.items()])
    tree.digest()
    return tree.hash_info.value


def folder_files(folder: str | Path, fs=localfs) -> dict[str, str]:
    """Each file under `folder` (at any depth, on the file system `fs`) and its md5, sorted by relative path."""
    folder = os.fspath(folder)
    return {posixpath.relpath(path, folder): file_md5(path, fs) for path in sorted(fs.find(folder))}


def path_md5(path: str | Path, fs=localfs) -> str:
    """What dvc.lock would record for `path`: a file's md5, or a folder's ".dir" hash."""
    return tree_md5(folder_files(path, fs)) if fs.isdir(os.fspath(path)) else file_md5(os.fspath(path), fs)


def read_lock(path: str | Path = "dvc.lock") -> dict:
    """dvc.lock's stages, or {} where there is none (a stage run by hand, outside DVC)."""
    path = Path(path)
    return (yaml.safe_load(path.read_text()) or {}).get("stages", {}) if path.exists() else {}


def lock_md5(lock: dict, stage: str, path: str) -> str | None:
    """The hash dvc.lock records for `path` as a dep or out of `stage`; None where it records none."""
    entries = lock.get(stage, {})
    return next((entry.get("md5") for entry in entries.get("deps", []) + entries.get("outs", [])
                 if entry["path"] == path), None)


def code_files(lock: dict, stage: str) -> dict[str, str]:
    """The code deps (files and folders) dvc.lock records for `stage`, with their md5s."""
    return {entry["path"]: entry["md5"] for entry in lock.get(stage, {}).get("deps", [])
            if entry["path"].startswith(CODE)}


def code_md5(path: str | Path) -> str:
    """What dvc.lock records for a code dep: a file's md5, or a folder's ".dir" hash without the bytecode caches
    that .dvcignore leaves out."""
    if not Path(path).is_dir():
        return file_md5(os.fspath(path))
    return tree_md5({name: md5 for name, md5 in folder_files(path).items()
                     if IGNORED_IN_CODE not in name.split("/")})


def digest(files: dict[str, str]) -> str:
    """One hash for a set of (path, md5) pairs: what the card's table shows for a stage's code."""
    return hashlib.md5("".join(f"{path} {md5}\n" for path, md5 in sorted(files.items())).encode()).hexdigest()


def hub_revision(repo_id: str, repo_type: str, revision: str | None) -> str | None:
    """The commit of a hub repository: `revision` itself where it is one, else the commit the local hub cache
    resolved it to (what was loaded, offline or not); None where the cache does not hold it."""
    if revision and COMMIT.match(revision):
        return revision
    from huggingface_hub import constants

    ref = Path(constants.HF_HUB_CACHE) / f"{repo_type}s--{repo_id.replace('/', '--')}" / "refs" / (revision or "main")
    return ref.read_text().strip() if ref.is_file() else None


def row(item: str, check: str, **fields) -> dict:
    """A provenance row without its empty fields (the card's front matter stays short)."""
    return {"item": item, "check": check, **{key: value for key, value in fields.items() if value is not None}}


def model_row(item: str, spec: str) -> dict:
    """A model param: a pkg:MODULE's version and model files' hash, a local folder's hash, or a hub revision."""
    if spec.startswith("pkg:"):
        module = spec[4:]
        distribution = importlib.metadata.packages_distributions().get(module.split(".")[0], [module])[0]
        return row(item, "package", source=spec, revision=importlib.metadata.version(distribution),
                   md5=path_md5(resolve_model(spec)))
    folder = Path(outside_path(spec)).expanduser()
    if folder.exists():
        return row(item, "file", source=spec, path=spec, md5=path_md5(folder))
    return row(item, "hub", source=spec, revision=hub_revision(spec, "model", None))


def local_row(item: str, stage: str, path: str, lock: dict) -> dict:
    """A local input: checked against dvc.lock where `stage` depends on it (inside the repository), else against
    the file itself."""
    recorded = lock_md5(lock, stage, path)
    if recorded is not None:
        return row(item, "lock", source=path, stage=stage, path=path, md5=recorded)
    return row(item, "file", source=path, path=path, md5=path_md5(Path(outside_path(path)).expanduser()))


def data_rows(params, lock: dict) -> list[dict]:
    """The training data's source, the downloaded splits and the mined training data."""
    download = params.download
    if local_files(download.source) is None:
        source = row("training data", "hub", source=download.source, config=download.config,
                     split=download.split, revision=hub_revision(download.source, "dataset", download.revision))
    else:
        source = {**local_row("training data", "download", download.source, lock), "split": download.split}
    return [source,
            row("downloaded splits", "lock", stage="download", path="data/download",
                md5=lock_md5(lock, "download", "data/download")),
            row("mined training data", "lock", stage="mine", path="data/mine",
                md5=lock_md5(lock, "mine", "data/mine"))]


def model_rows(params, model_dir: Path, lock: dict) -> list[dict]:
    """The teacher (when the loss learns one's scores), the base model and the trained weights."""
    rows = []
    teacher = params.mine.teacher
    if teacher is not None:
        spec = params.embed.model if teacher.kind == "embedding" else teacher.model
        rows.append({**model_row("teacher", spec), "kind": teacher.kind})
    rows.append(model_row("base model", params.train.base_model))
    # Each file's md5, so that the weights beside the card can be checked file by file; their folder hash is
    # what dvc.lock records for data/model
    files = folder_files(model_dir)
    rows.append(row("trained model", "weights", stage="train", path="data/model",
                    md5=lock_md5(lock, "train", "data/model") or tree_md5(files), files=files))
    return rows


def collection_rows(params, lock: dict) -> list[dict]:
    """Each evaluation collection: its folder (or hub id and revision), and its corpus, queries and qrels."""
    rows = []
    for collection in params.evaluate.collections:
        item = f"collection {collection.name}"
        layout, path = locate(collection.name, collection.source)
        if layout == "hub":
            rows.append(row(item, "hub", source=collection.source, split=collection.split,
                            revision=hub_revision(collection.source, "dataset", collection.revision)))
            if collection.qrels:
                qrels_id, _, qrels_revision = collection.qrels.partition("@")
                rows.append(row(f"{item} qrels", "hub", source=qrels_id, split=collection.split,
                                revision=hub_revision(qrels_id, "dataset", qrels_revision or None)))
            continue
        rows.append({**local_row(item, "retrieve", collection.source, lock), "split": collection.split})
        if layout == "beir":
            for part, name in (("corpus", "corpus.jsonl"), ("queries", "queries.jsonl"),
                               ("qrels", f"qrels/{collection.split}.tsv")):
                rows.append(row(f"{item} {part}", "file", path=f"{collection.source}/{name}",
                                md5=file_md5(os.path.join(path, name))))
    return rows


def first_stage_rows(params) -> list[dict]:
    """Each reranking set's first stage, and the hash of the candidates' run the evaluate stage wrote from it."""
    defaults = inspect.signature(bm25_run).parameters
    bm25 = (f"BM25 (bm25s {importlib.metadata.version('bm25s')}, k1 {defaults['k1'].default}, "
            f"b {defaults['b'].default})")
    sets = []
    if params.evaluate.reranking is not None:
        sets.append((params.evaluate.reranking.name,
                     f"embedding model {params.embed.model}, top {params.mine.dev_candidates}", None))
    for collection in params.evaluate.collections:
        method = {"bm25": bm25, "dense": f"embedding model {params.embed.model}",
                  "run_file": f"run file {collection.run_file}"}[collection.first_stage]
        sets.append((collection.name, f"{method}, top {collection.k}", collection.run_file))
    rows = []
    for name, method, run_file in sets:
        run = f"runs/{name}/first_stage.trec"
        if run_file is not None:
            rows.append(row(f"run file {name}", "file", source=run_file, path=run_file,
                            md5=file_md5(Path(outside_path(run_file)).expanduser())))
        if Path(run).is_file():
            rows.append(row(f"first stage {name}", "file", source=method, path=run, md5=file_md5(run)))
    return rows


def code_rows(lock: dict, dvc_yaml: Path) -> list[dict]:
    """Each stage's code as dvc.lock records it; the card stage's own, which has no entry yet, hashed here from the
    files dvc.yaml lists (DVC hashes the same files once the stage succeeds)."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"] if dvc_yaml.exists() else {}
    rows = []
    for stage, spec in stages.items():
        if stage == "card":
            files = {dep: code_md5(dep) for dep in spec.get("deps", []) if dep.startswith(CODE) and Path(dep).exists()}
        else:
            files = code_files(lock, stage)
        if files:
            rows.append(row(f"code {stage}", "code", stage=stage, md5=digest(files), files=files))
    return rows


def gather(params, model_dir: Path, lock_path: str | Path = "dvc.lock", params_path: str | Path = "params.yaml",
           dvc_yaml: str | Path = "dvc.yaml") -> list[dict]:
    """Every provenance row of a run, from the repository root: params, data, models, collections, first stages
    and code. Without dvc.lock (a stage run by hand), the rows it would back hold no hash."""
    lock = read_lock(lock_path)
    return [row("params", "params", path=str(params_path), md5=file_md5(params_path)),
            *data_rows(params, lock), *model_rows(params, Path(model_dir), lock), *collection_rows(params, lock),
            *first_stage_rows(params), *code_rows(lock, Path(dvc_yaml))]


def hub_datasets(rows: list[dict]) -> list[str] | None:
    """The hub data sets the model was trained and evaluated on, for the card's `datasets`: hub ids only."""
    ids = [entry["source"] for entry in rows if entry["check"] == "hub" and entry["item"] != "teacher"
           and entry["item"] != "base model"]
    return list(dict.fromkeys(ids)) or None


def eval_result_fields(name: str, rows: list[dict]) -> dict:
    """EvalResult's dataset fields for the reranking set `name`: a hub collection's id, revision and split; a local
    one's split only (a path is not a hub id, so dataset_type stays the set's name)."""
    found = next((entry for entry in rows if entry["item"] == f"collection {name}"), None)
    if found is None:
        return {}
    if found["check"] == "hub":
        return {"dataset_type": found["source"], "dataset_revision": found.get("revision"),
                "dataset_split": found["split"]}
    return {"dataset_split": found["split"]}


def source_label(source: str) -> str:
    """How the card names a data source: a local path says it is one, so that it never reads as a hub id.

    Example: ``source_label("sample/qa")`` is "local folder sample/qa"; ``source_label("BeIR/scifact")`` is
    "hub data set BeIR/scifact".
    """
    path = Path(outside_path(source)).expanduser()
    if path.is_dir():
        return f"local folder {source}"
    return f"local file {source}" if path.exists() else f"hub data set {source}"


def recorded_in(entry: dict) -> str:
    """Where a row's hash comes from, as the card's table says it."""
    return {"lock": f"dvc.lock, stage {entry.get('stage')}: {entry.get('path')}",
            "file": f"the file {entry.get('path')}",
            "params": "params.yaml",
            "code": f"dvc.lock, stage {entry.get('stage')}: {len(entry.get('files', {}))} code files",
            "weights": "dvc.lock, stage train: data/model (each file's md5 in the front matter)",
            "package": "the installed package's model/ folder",
            "hub": "the hub" if entry.get("revision") else "the hub (revision not in the local cache)"}[entry["check"]]
