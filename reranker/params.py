"""params.yaml, validated: one pydantic section per stage, loaded and cross-checked before any stage works,
so that a typo or a mismatch between data shape, loss and evaluators fails in seconds with one line."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
)
from ruamel.yaml import YAML, YAMLError

from reranker.errors import PipelineError
from reranker.evaluation.metric_names import classification_metrics, nanobeir_mean_name, reranking_metrics
from reranker.input_checks import check_inputs
from reranker.loss_inputs import INPUT_COLUMNS, LOSS_INPUT, SHAPE_GIVES, TEACHER_LOSSES
from reranker.training_args import check_training_args


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


class TeacherParams(Section):  # whose scores MSELoss and MarginMSELoss learn, and the listwise losses when set
    # cross_encoder: a trained cross-encoder (`model`) scores each mined pair. embedding: the embedding model itself
    # (embed.model, read from the stored embeddings, no model loads), so the reranker first learns its first stage's
    # order; issue 10's distillation lever. `model` is then null.
    kind: Literal["cross_encoder", "embedding"] = "cross_encoder"
    model: str | None = None
    scale: PositiveFloat = 1.0  # multiplies the teacher's scores: cosine margins are small next to a logit's range
    # The labels' say where the teacher is wrong: each positive's (scaled) score is raised to at least its query's
    # highest-scored negative's plus this margin, so the student learns what its teacher misses. null: the teacher's
    # scores as they are. Issue 10: a student of its first stage alone cannot pass it.
    positive_margin: NonNegativeFloat | None = None
    batch_size: PositiveInt = 64  # cross_encoder only
    activation_fn: str | None = "torch.nn.Identity"  # cross_encoder only: raw logits; null: its own activation


class MineParams(Section):
    seed: int
    teacher: TeacherParams | None = None
    use_faiss: bool = False  # search with FAISS (pip install -e '.[faiss]'), else an exact search with torch
    # With use_faiss, the training queries' index: "Flat" is exact (the library's); an index factory string such as
    # "IVF4096,Flat" is approximate, searching faiss_nprobe of its clusters (reranker/nearest.py)
    faiss_index: str = "Flat"
    faiss_nprobe: PositiveInt = 32
    # Queries per search block, and documents per score block of the exact search: memory holds one
    # batch_size x corpus_batch_size float32 block (256 MiB at the defaults), whatever the corpus size
    batch_size: PositiveInt = 1024
    corpus_batch_size: PositiveInt = 65536
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
    # CrossEncoder's config_kwargs for training: fields of the base model's config to override, e.g.
    # {attention_probs_dropout_prob: 0.0}; the trained model's config records them. (pydantic reserves model_config)
    config_kwargs: dict[str, Any] = {}
    # Batches of similar pair length: ~1.7x the pairs/s at 256 tokens on CPU (less padding), but less random
    # batches; it cost dev ndcg@10 on the sample recipe (same documents share batches), so it is opt-in, for large
    # data sets. It also changes which negatives MultipleNegativesRankingLoss draws from the batch.
    group_by_length: bool = False


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


class CollectionParams(Section):  # a collection the trained model reranks, with its first stage
    name: str  # names its runs, its per-query file and its metrics entry
    source: str  # a BEIR-layout folder, a NanoBEIR-layout folder, or a hub id (BeIR/scifact)
    split: str = "test"  # the qrels split (BEIR), or the collection of a NanoBEIR layout (climatefever)
    qrels: str | None = None  # the hub id of a hub BEIR collection's qrels (BeIR/scifact-qrels)
    revision: str | None = None  # hub revision to pin
    first_stage: Literal["bm25", "dense", "run_file"] = "bm25"  # dense: the embed model; run_file: yours
    run_file: str | None = None  # a TREC run (qid Q0 docid rank score tag), when first_stage is run_file
    k: PositiveInt = 30  # first-stage candidates reranked per query
    at_k: PositiveInt = 10  # the cut-off of ndcg and mrr


class SignificanceParams(Section):  # paired tests and intervals of trained vs first stage and vs base model
    confidence: float = 0.95
    resamples: PositiveInt = 10000
    seed: int = 0


class EvaluateParams(Section):
    batch_size: PositiveInt
    reranking: RerankingParams | None = None  # null skips the dev reranking
    classification: ClassificationParams | None = None  # null skips classification
    nanobeir: NanoBEIRParams | None = None  # null skips NanoBEIR
    collections: list[CollectionParams] = []  # BEIR or NanoBEIR collections, local or hub, each with a first stage
    significance: SignificanceParams = SignificanceParams()


class EmissionsParams(Section):  # codecarbon's offline tracker: no network, the grid's intensity by place
    country_iso_code: str
    region: str | None = None


class CardParams(Section):
    model_name: str
    model_id: str  # the hub id shown in the usage snippet
    base_model_id: str | None = None  # the base model's hub id, for a local or pkg: train.base_model; null: that
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
    """Read, validate and cross-check params.yaml; any problem is a one-line PipelineError.

    Example: ``load_params().train.args["learning_rate"]``.
    """
    # ruamel reads YAML as DVC does (`2e-5` is a float here and for `dvc exp run -S`; PyYAML makes it a string)
    try:
        raw = YAML(typ="safe").load(Path(path).read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path} not found; run the stage from the repository root") from None
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", error)
        raise PipelineError(f"{path} is not valid YAML{where} ({problem}); fix its syntax") from None
    try:
        params = Params.model_validate(raw)
    except ValidationError as error:
        raise PipelineError(describe_validation_error(error, path)) from None
    check_training_args(params.train.args, path)
    check_recipe(params, path)
    check_inputs(params, path)  # what params point at: data, models, collections (cheap, before work)
    return params


def describe_validation_error(error: ValidationError, path) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        section = Params
        for part in [part for part in first["loc"][:-1] if isinstance(part, str)]:  # not a list's index
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


def check_recipe(params: Params, path) -> None:
    """Data shape, loss, teacher and evaluators must fit together: fail before any stage runs, not mid-training."""
    train, shape, evaluate = params.train, params.download.shape, params.evaluate
    if train.loss not in LOSS_INPUT:
        raise PipelineError(f"{path}: train.loss '{train.loss}' is not a sentence-transformers cross-encoder loss; "
                            f"use one of {', '.join(LOSS_INPUT)}")
    wants = LOSS_INPUT[train.loss]
    if shape != "pairs" and SHAPE_GIVES[shape] != wants:
        raise PipelineError(f"{path}: train.loss {train.loss} wants {INPUT_COLUMNS[wants]}, but download.shape "
                            f"'{shape}' gives {INPUT_COLUMNS[SHAPE_GIVES[shape]]}; use shape pairs (mine builds "
                            f"them) or a loss that reads {INPUT_COLUMNS[SHAPE_GIVES[shape]]}")
    teacher = params.mine.teacher
    if train.loss in TEACHER_LOSSES and shape == "pairs" and teacher is None:
        raise PipelineError(f"{path}: train.loss {train.loss} learns a teacher's scores of the mined pairs; set "
                            "mine.teacher.model to a cross-encoder, or mine.teacher.kind to embedding")
    if teacher is not None and teacher.kind == "cross_encoder" and teacher.model is None:
        raise PipelineError(f"{path}: mine.teacher.kind is cross_encoder but mine.teacher.model is null; name the "
                            "cross-encoder, or set mine.teacher.kind to embedding (the embedding model scores)")
    if teacher is not None and teacher.kind == "embedding" and teacher.model is not None:
        raise PipelineError(f"{path}: mine.teacher.kind embedding scores with embed.model's stored embeddings, but "
                            f"mine.teacher.model names '{teacher.model}'; set mine.teacher.model to null, or kind "
                            "to cross_encoder")
    if train.loss == "CrossEntropyLoss" and train.num_labels < 2:
        raise PipelineError(f"{path}: CrossEntropyLoss classifies into train.num_labels classes; set it to 2 or more")
    if train.num_labels > 1 and train.loss != "CrossEntropyLoss":
        raise PipelineError(f"{path}: train.num_labels {train.num_labels} asks for a score per class, which only "
                            f"CrossEntropyLoss trains; set train.num_labels to 1 or train.loss to CrossEntropyLoss")
    if train.num_labels > 1 and (evaluate.reranking or evaluate.nanobeir):
        raise PipelineError(f"{path}: train.num_labels {train.num_labels} gives a score per class, but reranking "
                            "ranks by one score per pair; set evaluate.reranking and evaluate.nanobeir to null "
                            "and evaluate with evaluate.classification")
    if train.eval_loss and wants != "pair":
        raise PipelineError(f"{path}: train.eval_loss computes the loss on dev pairs, which {train.loss} cannot "
                            "read; set train.eval_loss to false")
    for name in train.evaluators:
        if getattr(evaluate, name) is None:
            raise PipelineError(f"{path}: train.evaluators names {name} but evaluate.{name} is null; "
                                f"configure evaluate.{name} or remove it from train.evaluators")
    if not (evaluate.reranking or evaluate.classification or evaluate.nanobeir):
        raise PipelineError(f"{path}: evaluate.reranking, .classification and .nanobeir are all null; "
                            "configure at least one evaluator")
    check_best_metric(train, evaluate, path)
    if train.args.get("eval_strategy", "no") != "no" and not train.evaluators and not train.eval_loss:
        raise PipelineError(f"{path}: train.args.eval_strategy evaluates during training but there is nothing to "
                            "evaluate; list evaluators in train.evaluators, set train.eval_loss, "
                            "or set eval_strategy: no")


def logged_metric_names(train: TrainParams, evaluate: EvaluateParams) -> list[str]:
    """The `eval_*` names the trainer logs at each evaluation with these evaluators."""
    names = ["eval_loss"] if train.eval_loss else []
    if "reranking" in train.evaluators:
        names += [f"eval_{evaluate.reranking.name}_{m}" for m in reranking_metrics(evaluate.reranking.at_k)]
    if "classification" in train.evaluators:
        names += [f"eval_{evaluate.classification.name}_{m}" for m in classification_metrics(train.num_labels)]
    if "nanobeir" in train.evaluators:
        mean = nanobeir_mean_name(evaluate.nanobeir.rerank_k)
        names += [f"eval_{mean}_{m}" for m in reranking_metrics(evaluate.nanobeir.at_k)]
    return names


def check_best_metric(train: TrainParams, evaluate: EvaluateParams, path) -> None:
    """The trainer looks metric_for_best_model up only at the first evaluation; name a wrong one now."""
    metric = train.args.get("metric_for_best_model")
    if not metric or not train.args.get("load_best_model_at_end"):
        return
    metric = metric if metric.startswith("eval_") else f"eval_{metric}"
    names = logged_metric_names(train, evaluate)
    if "nanobeir" in train.evaluators:
        rerank_k = evaluate.nanobeir.rerank_k
        if metric.startswith("eval_Nano") and not metric.startswith("eval_NanoBEIR_") and f"_R{rerank_k}_" in metric:
            return  # one collection's metric; its name comes from the data set
    if metric not in names:
        close = difflib.get_close_matches(metric, names, n=1)
        raise PipelineError(f"{path}: train.args.metric_for_best_model '{metric}' is not logged by train.evaluators "
                            f"{train.evaluators}{' or the dev loss' if train.eval_loss else ''}; "
                            + (f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(names)}"))
