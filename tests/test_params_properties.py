"""Property-based: whatever one edit does to params.yaml (a wrong type, an out-of-range number, an empty or unknown
string, a removed or misspelt key, at any leaf), validation either accepts it or refuses it with one PipelineError
line, never another exception. Validation alone runs (`check_params` on a temporary file), no stage: seconds."""

from __future__ import annotations

import copy
import math
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from reranker.checks.params import check_params
from reranker.core.errors import PipelineError

BASE = yaml.safe_load((ROOT / "params.yaml").read_text())


def leaves(node, path=()):
    """Every leaf's path (keys and list indexes), and every dict or list too (a whole section can be wrong)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key)
            yield from leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*path, index)
            yield from leaves(value, (*path, index))


LEAVES = list(leaves(BASE))
WRONG_TYPES = [None, True, "text", 7, 2.5, [], [1, "a"], {}, {"x": 1}]
OUT_OF_RANGE = [0, -1, -(2**40), 2**64, 1e308, -1e-9, 0.5, math.inf, -math.inf, math.nan]
STRINGS = ["", " ", "zzz_unknown", "Zzz-Unknown/none", "/nonexistent/zzz.parquet", "pkg:no_such_package",
           "../shared/data/nowhere", "sample", "no such thing"]
SAFE_TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-:0123456789 ", max_size=12)


def edited(path, kind, value=None) -> dict:
    params = copy.deepcopy(BASE)
    *parents, last = path
    node = params
    for part in parents:
        node = node[part]
    if kind == "remove":
        del node[last]
    elif kind == "misspell":
        if not isinstance(node, dict):
            return params
        node[f"{last}x"] = node.pop(last)
    else:
        node[last] = value
    return params


def validate(params: dict) -> None:
    """check_params on the edited params: accepted, or one PipelineError line; anything else fails the test."""
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "params.yaml"
        file.write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
        try:
            check_params(file)
        except PipelineError as error:
            message = str(error)
            assert message.strip() and "\n" not in message, repr(message)
            assert "Traceback" not in message


@pytest.fixture(scope="module", autouse=True)
def at_root():
    """Params paths are relative to the repository root, where the stages run."""
    before = os.getcwd()
    os.chdir(ROOT)
    yield
    os.chdir(before)


def bad_values(value) -> list:
    """For one leaf: a value of a wrong type, out-of-range numbers, an empty and an unknown string."""
    wrong_type = {bool: "yes", int: "text", float: "text", str: 7, list: {"x": 1}, dict: "text"}.get(type(value), 7)
    numbers = [0, -1, 2**64, math.nan, math.inf] if isinstance(value, (int, float)) else [-1]
    return [wrong_type, None, *numbers, "", "zzz_unknown"]


def test_every_leaf_with_every_kind_of_bad_value():
    """Each leaf: a wrong type, out-of-range numbers, an empty and an unknown string, the key removed or
    misspelt. The property test below samples other values."""
    for path in LEAVES:
        for kind in ("remove", "misspell"):
            validate(edited(path, kind))
        node = BASE
        for part in path:
            node = node[part]
        for value in bad_values(node):
            validate(edited(path, "set", value))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(LEAVES), value=st.one_of(
    st.sampled_from(WRONG_TYPES + OUT_OF_RANGE + STRINGS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    SAFE_TEXT,
    st.lists(SAFE_TEXT, max_size=3),
    st.dictionaries(SAFE_TEXT, st.integers(-5, 5), max_size=2),
))
def test_any_value_at_any_leaf_is_accepted_or_one_line(path, value):
    validate(edited(path, "set", value))


@settings(max_examples=40, deadline=None)
@given(edits=st.lists(st.tuples(st.sampled_from(LEAVES), st.sampled_from(WRONG_TYPES + OUT_OF_RANGE + STRINGS)),
                      min_size=2, max_size=4))
def test_several_edits_at_once_are_accepted_or_one_line(edits):
    params = BASE
    for path, value in edits:
        try:
            params = edited(path, "set", value) if params is BASE else apply(params, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit replaced this leaf's parent
    validate(params)


def apply(params: dict, path, value) -> dict:
    params = copy.deepcopy(params)
    *parents, last = path
    node = params
    for part in parents:
        node = node[part]
    node[last] = value
    return params


# Rules the library enforces are left to it: building CrossEncoderTrainingArguments refuses each of these, and the
# check turns its error into one line naming the key.
TRAINER_REJECTS = [
    {"logging_steps": 0}, {"eval_strategy": "steps", "eval_steps": 0, "logging_steps": 0},
    {"eval_steps": 40, "save_steps": 30, "load_best_model_at_end": True},
    {"eval_strategy": "epoch", "save_strategy": "steps", "load_best_model_at_end": True},
    {"warmup_steps": -1}, {"fp16": True, "bf16": True}, {"eval_strategy": "step"}, {"save_strategy": "bets"},
    {"lr_scheduler_type": "cosine_annealing"}, {"optim": "adamw"}, {"logging_steps": 2.5},
    {"dataloader_prefetch_factor": 2}, {"lr_scheduler_type": "reduce_lr_on_plateau", "eval_strategy": "no",
                                        "load_best_model_at_end": False},
]


@pytest.mark.parametrize("bad", TRAINER_REJECTS, ids=lambda bad: ",".join(bad))
def test_the_libraries_own_rules_are_one_line_naming_the_key(bad):
    from reranker.checks.training import check_training_args

    with pytest.raises(PipelineError) as error:
        check_training_args({**BASE["train"]["args"], **bad})
    assert "\n" not in str(error.value) and "train.args." in str(error.value), str(error.value)
