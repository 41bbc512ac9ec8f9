"""The evaluation settings, checked before any stage works: NanoBEIR's names and folder, each collection's folder,
layout, split and size, and each first-stage run file read as TREC against the collection's ids, so that a wrong
collection or run file fails in seconds, not after training."""

from __future__ import annotations

import difflib
from pathlib import Path

from reranker.checks.data_source import check_hub_dataset
from reranker.core.errors import PipelineError
from reranker.core.paths import outside_path
from reranker.data import collections as loading
from reranker.data.collections import NANOBEIR_CONFIGS, NANOBEIR_SPLITS


def check_collection_source(name: str, source: str, split: str = "test", qrels_source: str | None = None) -> None:
    """The cheap checks of :func:`load_collection`, run when params load: the folder exists, its layout is BEIR or
    NanoBEIR, and the qrels split (BEIR) or the collection (NanoBEIR) is there. Reads no corpus and imports no
    ``datasets``; a hub id is not checked, as that needs the network.

    Args:
        name: The collection's name, for messages.
        source: A BEIR folder, a NanoBEIR folder or a hub id (see the module docstring).
        split: The qrels split (BEIR) or the collection (NanoBEIR: ``"climatefever"`` or ``"NanoClimateFEVER"``).
        qrels_source: The hub dataset with the qrels of a BEIR hub collection; None otherwise.

    Example::

        check_collection_source("wikiqa", "../shared/data/beir/wikiqa-dev", "test", None)
    """
    layout, path = loading.locate(name, source)
    if layout == "hub":
        return
    loading.no_hub_options(name, source, qrels_source, None)
    if layout == "beir":
        loading.require_file(name, source, path, "queries.jsonl")
        loading.qrels_file(name, source, path, split)
    else:
        configs = loading.readme_configs(name, source, path)
        for config in NANOBEIR_CONFIGS:
            loading.nanobeir_split(name, source, split, configs[config], config)


def check_evaluation(evaluate) -> None:
    """NanoBEIR's names and folder, and each collection's folder, layout and split, as cheaply as the evaluators
    would find them wrong only after training."""
    nanobeir = evaluate.nanobeir
    if nanobeir is not None:
        if not nanobeir.dataset_names:
            raise PipelineError("evaluate.nanobeir.dataset_names is empty; name collections such as climatefever, "
                                "or set evaluate.nanobeir: null")
        for name in nanobeir.dataset_names:
            if name.lower() not in NANOBEIR_SPLITS:
                close = difflib.get_close_matches(name.lower(), NANOBEIR_SPLITS, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(NANOBEIR_SPLITS)}"
                raise PipelineError(f"evaluate.nanobeir.dataset_names has '{name}', which is not a NanoBEIR "
                                    f"collection; {hint}")
            try:
                check_collection_source(name, nanobeir.dataset_id, name, None)
                check_bm25_config(name, nanobeir.dataset_id)
            except PipelineError as error:
                raise PipelineError(f"evaluate.nanobeir.dataset_id: {error}") from None
        if is_hub_id(nanobeir.dataset_id):
            check_hub_dataset("evaluate.nanobeir.dataset_id", nanobeir.dataset_id)
    names = [collection.name for collection in evaluate.collections]
    if duplicated := sorted({name for name in names if names.count(name) > 1}):
        raise PipelineError(f"evaluate.collections names '{duplicated[0]}' twice; give each collection its own "
                            "name (it names its runs and metrics)")
    for index, collection in enumerate(evaluate.collections):
        key = f"evaluate.collections[{index}]"
        if not collection.name.strip() or any(c in collection.name for c in "/\\\n"):
            raise PipelineError(f"{key}.name {collection.name!r} must be a non-empty name without slashes (it names "
                                "files); give one such as scifact")
        try:
            check_collection_source(collection.name, collection.source, collection.split, collection.qrels)
        except PipelineError as error:
            raise PipelineError(f"{key}: {error}") from None
        if is_hub_id(collection.source):
            check_hub_dataset(f"{key}.source", collection.source)
            if collection.qrels:
                check_hub_dataset(f"{key}.qrels", collection.qrels.partition("@")[0])
        corpus = Path(outside_path(collection.source)).expanduser() / "corpus.jsonl"
        if corpus.is_file():  # a BEIR folder: its corpus size is a line count away (the retrieve stage checks all)
            with corpus.open("rb") as lines:
                documents = sum(1 for line in lines if line.strip())
            if collection.k > documents:
                raise PipelineError(f"{key}.k is {collection.k} but {collection.source} has {documents} documents; "
                                    f"lower k to at most {documents}")
        if collection.first_stage == "run_file":
            if not collection.run_file:
                raise PipelineError(f"{key}.first_stage is run_file but {key}.run_file is not set; give the TREC "
                                    "run file's path, or another first_stage")
            run_file = Path(outside_path(collection.run_file)).expanduser()
            if not run_file.is_file():
                raise PipelineError(f"{key}.run_file '{collection.run_file}' does not exist (looked for "
                                    f"{run_file.absolute()}); give an existing TREC run file")
            check_run_file(key, collection)
        elif collection.run_file:
            raise PipelineError(f"{key}.run_file is set but first_stage is {collection.first_stage}, which does "
                                "not read it; set first_stage: run_file or remove run_file")


def check_run_file(key: str, collection) -> None:
    """The run file read as the retrieve stage reads it (TREC lines naming the collection's ids), so that a bad line
    fails before training, not after. Local collections only: the retrieve stage fetches a hub one."""
    from reranker.evaluation.first_stage import read_trec_run

    if loading.locate(collection.name, collection.source)[0] == "hub":
        return
    try:
        loaded = loading.load_collection(collection.name, collection.source, split=collection.split)
        read_trec_run(outside_path(collection.run_file), loaded, collection.k)
    except PipelineError as error:
        raise PipelineError(f"{key}: {error}") from None


def is_hub_id(source: str) -> bool:
    return not source.startswith((".", "/", "~")) and not Path(outside_path(source)).expanduser().exists()


def check_bm25_config(name: str, dataset_id: str) -> None:
    """CrossEncoderNanoBEIREvaluator also reranks the bm25 config's candidates: a local folder must declare it."""
    folder = Path(outside_path(dataset_id)).expanduser()
    readme = folder / "README.md"
    if not readme.is_file():
        return  # a hub id
    splits = loading.readme_configs(name, dataset_id, str(folder), required=False).get("bm25")
    if splits is None:
        raise PipelineError(f"collection {name!r}: {readme} declares no 'bm25' config, whose candidates "
                            "CrossEncoderNanoBEIREvaluator reranks; add it (query-id, corpus-ids)")
    if (split := NANOBEIR_SPLITS[name.lower()]) not in splits:
        raise PipelineError(f"collection {name!r}: the bm25 config of {readme} has no split {split} (it has "
                            f"{', '.join(splits)}); add it")
