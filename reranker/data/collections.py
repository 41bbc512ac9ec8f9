"""Retrieval collections: a corpus, queries and graded judgments, read from a BEIR or NanoBEIR folder or from the
Hugging Face Hub into one `Collection`, and checked while loading so that a bad collection fails with one line.

Where a collection comes from (``source``):

- a local folder in the BEIR layout: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``
- a local folder in the NanoBEIR layout: a datasets repository whose README.md declares the configs ``corpus``,
  ``queries`` and ``qrels``, with one split per collection (``NanoClimateFEVER``)
- a hub id: NanoBEIR-style (``sentence-transformers/NanoBEIR-en``) or, with ``qrels_source``, BEIR-style
  (``BeIR/scifact`` with ``BeIR/scifact-qrels``)

Example::

    from reranker.data.collections import load_collection

    collection = load_collection("climatefever", "../shared/data/nano-local", split="climatefever")
    len(collection.corpus), len(collection.queries)  # (5240, 50)

:func:`load_queries` reads the same queries and judgments without the corpus.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from reranker.core.errors import PipelineError, first_line
from reranker.core.paths import outside_path

# The short names that sentence-transformers' CrossEncoderNanoBEIREvaluator accepts and the split each one names
# (`Nano{DATASET_NAME_TO_HUMAN_READABLE[name]}`). A copy, because checking params must not import torch; the tests
# compare it with the evaluator's own table.
NANOBEIR_SPLITS = {
    "climatefever": "NanoClimateFEVER",
    "dbpedia": "NanoDBPedia",
    "fever": "NanoFEVER",
    "fiqa2018": "NanoFiQA2018",
    "hotpotqa": "NanoHotpotQA",
    "msmarco": "NanoMSMARCO",
    "nfcorpus": "NanoNFCorpus",
    "nq": "NanoNQ",
    "quoraretrieval": "NanoQuoraRetrieval",
    "scidocs": "NanoSCIDOCS",
    "arguana": "NanoArguAna",
    "scifact": "NanoSciFact",
    "touche2020": "NanoTouche2020",
}
NANOBEIR_CONFIGS = ("corpus", "queries", "qrels")
# What a reader returns: the corpus (None when not read), the queries, the judgments and where they came from
Read = tuple[dict[str, str] | None, dict[str, str], list[tuple[str, str, int]], str]


@dataclass
class Collection:
    """A retrieval collection, ready to evaluate on.

    Args:
        name: The name it is reported under, e.g. ``"climatefever"``.
        corpus: Document id -> text; ``"title text"`` where the document has a title, as BEIR does.
        queries: Query id -> text, only the queries with at least one judgment with score > 0.
        qrels: Query id -> {document id: relevance grade}, for the queries in ``queries``.
    """

    name: str
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


@dataclass
class JudgedQueries:
    """A collection's evaluated queries and their judgments, as in its `Collection` (same fields), without the
    corpus."""

    name: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_collection(name: str, source: str, split: str = "test", qrels_source: str | None = None,
                    revision: str | None = None) -> Collection:
    """Load a collection and check it: every qrels id must be in the corpus or the queries, and at least one query
    must have a relevant document. Queries without a judgment with score > 0 are left out.

    Args:
        name: The name it is reported under.
        source: A BEIR folder, a NanoBEIR folder or a hub id (see the module docstring); a path starting with
            ``..`` is resolved against ``DVC_ROOT`` (see :func:`reranker.core.paths.outside_path`).
        split: The qrels split (BEIR: ``qrels/<split>.tsv``, or the split of ``qrels_source``), or for NanoBEIR the
            collection, by its short name (``"climatefever"``, as CrossEncoderNanoBEIREvaluator) or its split name.
        qrels_source: For a BEIR collection on the hub, the hub dataset that holds its qrels (``"BeIR/scifact-qrels"``,
            ``"BeIR/scifact-qrels@<commit>"`` to pin it). None for the other sources.
        revision: The commit, branch or tag of a hub ``source``; None for the latest, and for local folders.

    Example::

        collection = load_collection("wikiqa", "../shared/data/beir/wikiqa-dev")
        len(collection.corpus), len(collection.queries)  # (9270, 126)
        collection = load_collection("scifact", "BeIR/scifact", "test", qrels_source="BeIR/scifact-qrels")
        collection = load_collection("scifact", "mteb/scifact", "test", qrels_source="mteb/scifact")  # qrels: default
    """
    corpus, queries, judgments, qrels_where = _read(name, source, split, qrels_source, revision, with_corpus=True)
    judged = _judged(name, qrels_where, corpus, queries, judgments)
    return Collection(name=name, corpus={_trec_id(doc_id): text for doc_id, text in corpus.items()},
                      queries=judged.queries, qrels=judged.qrels)


def load_queries(name: str, source: str, split: str = "test", qrels_source: str | None = None,
                 revision: str | None = None) -> JudgedQueries:
    """The queries that :func:`load_collection` evaluates and their judgments, read and checked as it reads and
    checks them but without the corpus: same arguments, and the same errors but for the corpus's (the judgments'
    documents are not looked up in it, and a NanoBEIR collection is looked up in the queries config's splits).

    Example::

        judged = load_queries("wikiqa", "../shared/data/beir/wikiqa-dev")
        len(judged.queries)  # 126, as load_collection's
    """
    _, queries, judgments, qrels_where = _read(name, source, split, qrels_source, revision, with_corpus=False)
    return _judged(name, qrels_where, None, queries, judgments)


def _read(name: str, source: str, split: str, qrels_source: str | None, revision: str | None,
          with_corpus: bool) -> Read:
    """The one reader of every layout, for load_collection and load_queries."""
    layout, path = locate(name, source)
    if layout != "hub":
        no_hub_options(name, source, qrels_source, revision)
    if layout == "beir":
        qrels_path = qrels_file(name, source, path, split)
        corpus = _read_jsonl(name, source, path, "corpus.jsonl") if with_corpus else None
        queries = _read_jsonl(name, source, path, "queries.jsonl")
        qrels_where = os.path.join(source, "qrels", f"{split}.tsv")
        return corpus, queries, _read_qrels_tsv(name, qrels_where, qrels_path), qrels_where
    # A local NanoBEIR folder goes through load_dataset exactly as a hub id does, so that the hub code runs here
    return _load_with_datasets(name, path, split, qrels_source, revision, with_corpus)


def locate(name: str, source: str) -> tuple[str, str]:
    """Return the layout ("beir", "nanobeir" or "hub") and the resolved path (the id itself for a hub id)."""
    if not source.strip():
        raise PipelineError(f"collection {name!r}: source is empty; give a BEIR or NanoBEIR folder, or a hub id such "
                            "as BeIR/scifact")
    path = os.path.expanduser(outside_path(source))
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "corpus.jsonl")):
            return "beir", path
        if os.path.isfile(os.path.join(path, "README.md")) and readme_configs(name, source, path, required=False):
            return "nanobeir", path
        if os.path.exists(os.path.join(path, "queries.jsonl")) or os.path.isdir(os.path.join(path, "qrels")):
            require_file(name, source, path, "corpus.jsonl")  # a BEIR folder without its corpus
        entries = ", ".join(sorted(os.listdir(path))[:5]) or "nothing"
        raise PipelineError(f"collection {name!r}: folder {source!r} (it has {entries}) is neither a BEIR folder "
                            "(corpus.jsonl) nor a NanoBEIR one (README.md declaring configs); point source at one")
    if os.path.exists(path):
        raise PipelineError(f"collection {name!r}: source {source!r} is a file; give the collection's folder")
    if source.startswith((".", "/", "~")):
        # Say where it looked: `..` paths are resolved against DVC_ROOT, which the user may not expect
        raise PipelineError(f"collection {name!r}: folder {source!r} does not exist (looked for "
                            f"{os.path.abspath(path)}); fix the path")
    return "hub", source


def no_hub_options(name: str, source: str, qrels_source: str | None, revision: str | None) -> None:
    # Silently ignoring these would suggest a pinned or separate qrels source that is not used
    if qrels_source is not None:
        raise PipelineError(f"collection {name!r}: qrels_source is for BEIR collections on the hub, and {source!r} is "
                            "a local folder with its own qrels; remove qrels_source")
    if revision is not None:
        raise PipelineError(f"collection {name!r}: revision pins a hub dataset, and {source!r} is a local folder; "
                            "remove revision")


def require_file(name: str, source: str, path: str, filename: str) -> str:
    file_path = os.path.join(path, filename)
    if not os.path.isfile(file_path):
        raise PipelineError(f"collection {name!r}: folder {source!r} has no {filename}; a BEIR folder needs "
                            "corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
    return file_path


def qrels_file(name: str, source: str, path: str, split: str) -> str:
    qrels_folder = os.path.join(path, "qrels")
    if not os.path.isdir(qrels_folder):
        raise PipelineError(f"collection {name!r}: folder {source!r} has no qrels/ folder; add qrels/{split}.tsv "
                            "(query-id, corpus-id, score, tab separated)")
    file_path = os.path.join(qrels_folder, f"{split}.tsv")
    if not os.path.isfile(file_path):
        splits = sorted(entry[: -len(".tsv")] for entry in os.listdir(qrels_folder) if entry.endswith(".tsv"))
        if not splits:
            raise PipelineError(f"collection {name!r}: {source!r} has no qrels/*.tsv; add qrels/{split}.tsv")
        has = ", ".join(f"qrels/{other}.tsv" for other in splits)
        raise PipelineError(f"collection {name!r}: {source!r} has no qrels/{split}.tsv (it has {has}); "
                            f"set split: {splits[0]}")
    return file_path


def readme_configs(name: str, source: str, path: str, required: bool = True) -> dict[str, list[str]]:
    """The splits of each config declared in the YAML header of a datasets README.md, as `load_dataset` reads it.
    With ``required``, the configs of a NanoBEIR collection must all be there."""
    try:
        with open(os.path.join(path, "README.md"), encoding="utf-8") as readme:
            text = readme.read()
    except OSError:
        text = ""
    header = text.split("---", 2)[1] if text.startswith("---") and text.count("---") >= 2 else ""
    try:
        metadata = yaml.safe_load(header) or {}
    except yaml.YAMLError as error:
        raise PipelineError(f"collection {name!r}: the YAML header of {os.path.join(source, 'README.md')} does not "
                            f"parse ({str(error).splitlines()[0]}); fix it") from None
    declared = metadata.get("configs") if isinstance(metadata, dict) else None
    configs = {str(config["config_name"]): _split_names(config.get("data_files"))
               for config in (declared if isinstance(declared, list) else [])
               if isinstance(config, dict) and "config_name" in config}
    if required and (missing := [config for config in NANOBEIR_CONFIGS if config not in configs]):
        raise PipelineError(f"collection {name!r}: {os.path.join(source, 'README.md')} declares no config "
                            f"{missing[0]!r} (it has {', '.join(configs) or 'none'}); a NanoBEIR folder needs "
                            "configs corpus, queries and qrels")
    return configs


def _split_names(data_files: Any) -> list[str]:
    # The forms that datasets accepts in a README: a path or list of paths (one "train" split), a list of
    # {split, path} entries, or a {split: path} mapping
    if isinstance(data_files, dict):
        return [str(split) for split in data_files]
    if isinstance(data_files, list) and all(isinstance(entry, dict) for entry in data_files):
        return [str(entry.get("split", "train")) for entry in data_files]
    return ["train"] if data_files else []


def nanobeir_split(name: str, source: str, split: str, available: list[str], config: str = "corpus") -> str:
    """The split that ``split`` names: itself, or the NanoBEIR split of a short name such as ``climatefever``."""
    if split in available:
        return split
    mapped = NANOBEIR_SPLITS.get(split.lower())
    if mapped in available:
        return mapped
    short_names = {value: key for key, value in NANOBEIR_SPLITS.items()}
    choices = ", ".join(f"{split_name} ({short_names[split_name]})" if split_name in short_names else split_name
                        for split_name in available)
    raise PipelineError(f"collection {name!r}: {source!r} has no collection {split!r} in its {config} config (it has "
                        f"{choices or 'none'}); set split to one of them")


def _read_jsonl(name: str, source: str, path: str, filename: str) -> dict[str, str]:
    """Id -> text of a BEIR corpus.jsonl or queries.jsonl; a title goes before the text as BEIR joins them."""
    where = os.path.join(source, filename)
    texts: dict[str, str] = {}
    try:
        with open(require_file(name, source, path, filename), encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise PipelineError(f"collection {name!r}: {where} line {number} is not JSON ({error.msg}); "
                                        "fix or delete that line") from None
                identifier, text = _id_and_text(name, f"{where} line {number}", record)
                if identifier in texts:
                    raise PipelineError(f"collection {name!r}: {where} line {number} repeats _id {identifier!r}; "
                                        "ids must be unique")
                texts[identifier] = text
    except UnicodeDecodeError:
        raise PipelineError(f"collection {name!r}: {where} is not UTF-8 text; re-encode it as UTF-8") from None
    if not texts:
        raise PipelineError(f"collection {name!r}: {where} is empty; it needs one JSON object per line")
    return texts


def _id_and_text(name: str, where: str, record: Any) -> tuple[str, str]:
    if not isinstance(record, dict):
        raise PipelineError(f"collection {name!r}: {where} is not a JSON object; write one object per line")
    for field in ("_id", "text"):
        if record.get(field) is None:
            raise PipelineError(f"collection {name!r}: {where} has no {field!r}; every line needs '_id' and 'text'")
    if not isinstance(record["text"], str):
        raise PipelineError(f"collection {name!r}: {where} has a {type(record['text']).__name__} 'text'; "
                            "make it a string")
    # BEIR's evaluation and rerankers (beir.reranking.Rerank, sentence-transformers' InformationRetrievalEvaluator
    # example) read `(title + " " + text).strip()`; NanoBEIR has no title, so its text is used as is
    title = record.get("title") or ""
    return str(record["_id"]), f"{title} {record['text']}".strip()


def _read_qrels_tsv(name: str, where: str, file_path: str) -> list[tuple[str, str, int]]:
    judgments = []
    with open(file_path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 3:
                raise PipelineError(f"collection {name!r}: {where} line {number} has {len(fields)} tab-separated "
                                    "columns; qrels need 3: query-id, corpus-id, score")
            query_id, doc_id, score = fields
            try:
                grade = int(score)
            except ValueError:
                # BEIR files start with the header `query-id corpus-id score`; any other line must have a grade
                if number == 1:
                    continue
                raise PipelineError(f"collection {name!r}: {where} line {number} has score {score!r}, not an "
                                    "integer grade; fix that line") from None
            judgments.append((query_id, doc_id, grade))
    return judgments


def _load_with_datasets(name: str, source: str, split: str, qrels_source: str | None, revision: str | None,
                        with_corpus: bool) -> Read:
    """A NanoBEIR folder or hub dataset, or a BEIR hub dataset when ``qrels_source`` is given, read through
    `datasets.load_dataset`."""
    if qrels_source is None:
        # NanoBEIR: corpus, queries and qrels configs, one split per collection (NanoClimateFEVER), named by the
        # first config read
        config = "corpus" if with_corpus else "queries"
        split_name = nanobeir_split(name, source, split, _hub_split_names(name, source, config, revision), config)
        corpus_rows = _load_subset(name, source, "corpus", split_name, revision) if with_corpus else None
        query_rows = _load_subset(name, source, "queries", split_name, revision)
        qrels_rows = _load_subset(name, source, "qrels", split_name, revision)
        qrels_where = f"{source} qrels/{split_name}"
    else:
        # BEIR on the hub: corpus and queries configs of one split each, the qrels in their own dataset by split
        qrels_id, _, qrels_revision = qrels_source.partition("@")
        corpus_rows = _load_subset(name, source, "corpus", None, revision) if with_corpus else None
        query_rows = _load_subset(name, source, "queries", None, revision)
        qrels_rows = _load_subset(name, qrels_id, None, split, qrels_revision or None)
        qrels_where = f"{qrels_id} split {split}"
    corpus = _texts(name, f"{source} corpus", corpus_rows) if with_corpus else None
    queries = _texts(name, f"{source} queries", query_rows)
    return corpus, queries, _judgments(name, qrels_where, qrels_rows), qrels_where


def _hub_split_names(name: str, source: str, config: str, revision: str | None) -> list[str]:
    from datasets import get_dataset_split_names

    try:
        return get_dataset_split_names(source, config, revision=revision)
    except (OSError, ValueError, RuntimeError) as error:
        raise PipelineError(f"collection {name!r}: could not read the splits of config {config!r} of {source!r} "
                            f"({first_line(error)}); check the id and revision, and that the hub is reachable "
                            "or the data set is in the local cache") from None


def _load_subset(name: str, source: str, config: str | None, split: str | None, revision: str | None):
    """One split of one config of a dataset; with ``split`` None, the config's only split (or the one named after
    the config, as ``BeIR/scifact`` has ``corpus``/``corpus``)."""
    from datasets import load_dataset
    from datasets.exceptions import DatasetsError

    try:
        dataset = load_dataset(source, config, split=split, revision=revision)
    except (OSError, ValueError, RuntimeError, DatasetsError) as error:
        # RuntimeError: datasets 4+ refuses data sets with a loading script, as some BeIR/* repositories had;
        # DatasetsError: a file of the data set that does not read (a Parquet file of no rows, a corrupt one)
        what = " ".join(part for part in (f"config {config!r}" if config else "", f"split {split!r}" if split else "")
                        if part)
        raise PipelineError(f"collection {name!r}: could not load {what or 'the data'} of {source!r} "
                            f"({first_line(error)}); check the id, config, split and revision and that the hub is "
                            "reachable or the data set cached (a data set with a loading script needs a parquet "
                            "copy such as mteb/scifact)") from None
    if split is not None:
        return dataset
    if len(dataset) == 1 or config in dataset:
        return dataset[config] if config in dataset else next(iter(dataset.values()))
    raise PipelineError(f"collection {name!r}: config {config!r} of {source!r} has splits {', '.join(dataset)}, "
                        f"none named {config!r}; use a BEIR dataset whose {config} config has one split")


def _columns(name: str, where: str, rows, required: tuple[str, ...]) -> None:
    if missing := [column for column in required if column not in rows.column_names]:
        raise PipelineError(f"collection {name!r}: {where} has no {missing[0]!r} column (it has "
                            f"{', '.join(rows.column_names)}); it needs {', '.join(required)}")


def _texts(name: str, where: str, rows) -> dict[str, str]:
    _columns(name, where, rows, ("_id", "text"))
    titles = rows["title"] if "title" in rows.column_names else [""] * len(rows)
    # The same joining as for BEIR folders (see _id_and_text)
    texts = {str(identifier): f"{title or ''} {text or ''}".strip()
             for identifier, title, text in zip(rows["_id"], titles, rows["text"])}
    if not texts:
        raise PipelineError(f"collection {name!r}: {where} is empty; use a split that has rows")
    return texts


def _judgments(name: str, where: str, rows) -> list[tuple[str, str, int]]:
    _columns(name, where, rows, ("query-id", "corpus-id"))
    # NanoBEIR qrels have no score: CrossEncoderNanoBEIREvaluator counts every row as relevant, so grade 1
    scores = rows["score"] if "score" in rows.column_names else [1] * len(rows)
    judgments = []
    for query_id, doc_ids, score in zip(rows["query-id"], rows["corpus-id"], scores):
        # sentence-transformers' evaluator also accepts a list of corpus ids in one row
        for doc_id in doc_ids if isinstance(doc_ids, list) else [doc_ids]:
            try:
                judgments.append((str(query_id), str(doc_id), int(score)))
            except (TypeError, ValueError):
                raise PipelineError(f"collection {name!r}: {where} has score {score!r} for query {query_id!r}, not "
                                    "an integer grade; fix the qrels") from None
    return judgments


def _trec_id(identifier: str) -> str:
    """An id as a TREC run file can hold it: a run file is whitespace-separated, so ids with spaces (NanoBEIR's
    ClimateFEVER titles) get "_", as the BEIR copies of the same collections have them."""
    return "_".join(identifier.split())


def _judged(name: str, qrels_where: str, corpus: dict[str, str] | None, queries: dict[str, str],
            judgments: Iterable[tuple[str, str, int]]) -> JudgedQueries:
    """The queries with a judgment > 0 and their qrels, checked: judgments exist, name documents of the corpus
    (unless it is None) and queries of the queries, and at least one is > 0."""
    qrels: dict[str, dict[str, int]] = {}
    for query_id, doc_id, grade in judgments:
        qrels.setdefault(query_id, {})[doc_id] = grade
    if not qrels:
        raise PipelineError(f"collection {name!r}: {qrels_where} has no judgments; add rows of query-id, corpus-id, "
                            "score")
    for kind, known, ids in (
        ("documents", corpus, {doc_id for grades in qrels.values() for doc_id in grades}),
        ("queries", queries, set(qrels)),
    ):
        if known is None:
            continue
        if unknown := sorted(ids - known.keys()):
            file = "corpus" if kind == "documents" else "queries"
            raise PipelineError(f"collection {name!r}: {qrels_where} names {len(unknown)} {kind} not in the {file} "
                                f"(e.g. {unknown[0]!r}); use the qrels and {file} of the same collection")
    # Queries with no relevant document score 0 or are skipped, depending on the metric library; leave them out
    judged = [query_id for query_id in queries if any(grade > 0 for grade in qrels.get(query_id, {}).values())]
    if not judged:
        raise PipelineError(f"collection {name!r}: no query in {qrels_where} has a judgment with score > 0; "
                            "use qrels that mark relevant documents")
    return JudgedQueries(
        name=name,
        queries={_trec_id(query_id): queries[query_id] for query_id in judged},
        qrels={_trec_id(query_id): {_trec_id(doc_id): grade for doc_id, grade in qrels[query_id].items()}
               for query_id in judged},
    )
