"""The schema of params.yaml: one pydantic section per stage. Pure (no I/O beyond reading params.yaml): each stage
reads the sections it uses with `load_section`. Every check of what the values mean and point at (data, models,
collections, training arguments) runs once, first, in the check stage (reranker/checks/), so that editing a check
reruns no stage that does work."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
)
from ruamel.yaml import YAML, YAMLError

from reranker.core.errors import PipelineError

# Every number's range is a Field limit here, where the schema is validated (the check stage validates it first);
# what a value means next to another key's is checked in reranker/checks/. No number is NaN or infinite.
Seed = Annotated[int, Field(ge=0, lt=2**32)]  # numpy's seeds lie in [0, 2**32)
Cosine = Annotated[float, Field(ge=-1, le=1)]  # the embedding model's cosine (the embed stage normalises)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class SourceParams(Section):  # one more training data set (download.more_sources), read as download.source is
    source: str  # a hub data set id, or a local file or folder (Parquet, JSON lines, CSV)
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    limit: PositiveInt | None = None  # rows read from the source (download's: before the dev hold-out)
    # Each relevant (query, document) of one more source's rows becomes a pair whose negatives are mined: a labelled
    # pair or a list's document relevant by the one relevance rule (reranker/core/relevance.py)
    shape: Literal["pairs", "labelled_pairs", "listwise"] = "pairs"
    columns: dict[str, str]  # recipe column -> source column (a.b reads field b of a nested column a)


class DownloadParams(SourceParams):  # the recipe's data: a source's fields, and what becomes of its rows
    shape: Literal["pairs", "labelled_pairs", "scored_pairs", "listwise"] = "pairs"
    dev_queries: PositiveInt
    seed: Seed
    # A training query that is also an evaluation query (a collection's, NanoBEIR's or a dev query, compared as
    # normalised text) stops the download stage; true drops those queries' training rows instead
    # (reranker/data/leakage.py)
    drop_evaluation_queries: bool = False
    # Further data sets trained on together with `source` (shape pairs): several domains in one run. Their queries
    # and download.source's are one pool for the dev hold-out and the evaluation-overlap check
    more_sources: list[SourceParams] = []


class EmbedParams(Section):
    model: str
    batch_size: PositiveInt
    query_prompt: str | None = None
    corpus_prompt: str | None = None


class MineTrainParams(Section):  # the options of sentence-transformers' mine_hard_negatives
    num_negatives: PositiveInt
    range_min: NonNegativeInt = 0
    range_max: PositiveInt | None = None
    max_score: Cosine | None = None
    min_score: Cosine | None = None
    absolute_margin: Annotated[float, Field(ge=0, le=2)] | None = None  # cosines differ by at most 2
    # a negative scoring above (1 - relative_margin) x its positive's score is discarded
    relative_margin: Annotated[float, Field(ge=0, lt=1)] | None = None
    sampling_strategy: Literal["top", "random"] = "top"


class TeacherParams(Section):  # whose scores MSELoss and MarginMSELoss learn, and the listwise losses when set
    # cross_encoder: a trained cross-encoder (`model`) scores each mined pair. embedding: the embedding model itself
    # (embed.model, read from the stored embeddings, no model loads), so the reranker first learns its first stage's
    # order. `model` is then null.
    kind: Literal["cross_encoder", "embedding"] = "cross_encoder"
    model: str | None = None
    scale: PositiveFloat = 1.0  # multiplies the teacher's scores: cosine margins are small next to a logit's range
    # The labels' say where the teacher is wrong: each positive's (scaled) score is raised to at least its query's
    # highest-scored negative's plus this margin, so the student learns what its teacher misses. null: the teacher's
    # scores as they are. A student of its first stage alone learns its mistakes too.
    positive_margin: NonNegativeFloat | None = None
    batch_size: PositiveInt = 64  # cross_encoder only
    activation_fn: str | None = "torch.nn.Identity"  # cross_encoder only: raw logits; null: its own activation


class SuspectsParams(Section):  # the false-negative audit of the mined negatives (reranker/mining/suspects.py)
    # The rules, on the teacher's scores (the cross-encoder teacher's, else the embedding model's cosine); null
    # turns a rule off. absolute_margin: the candidate within this of its positive's score, or above it.
    absolute_margin: NonNegativeFloat | None = None
    positive_share: NonNegativeFloat | None = None  # the candidate above this share of the positive's score
    # a cross-encoder teacher's score (a logit, or its activation's) of the candidate at least this: any finite number
    teacher_threshold: float | None = None
    # What training does with an unreviewed suspect: keep it a negative, drop it, or make it a positive (pair and
    # list losses only); a verdict overrules the policy
    policy: Literal["keep", "drop", "positive"] = "keep"
    verdicts: str | None = None  # a tab-separated file in verdicts/ (query, document, relevant: yes|no); null: none
    report_rows: PositiveInt = 200  # suspects listed in data/mine/suspects.md, most suspicious first


class MineParams(Section):
    seed: Seed
    teacher: TeacherParams | None = None
    use_faiss: bool = False  # search with FAISS (pip install -e '.[faiss]'), else an exact search with torch
    # With use_faiss, the training queries' index: "Flat" is exact (the library's); an index factory string such as
    # "IVF4096,Flat" is approximate, searching faiss_nprobe of its clusters (reranker/mining/nearest.py)
    faiss_index: str = "Flat"
    faiss_nprobe: PositiveInt = 32
    # Queries per search block, and documents per score block of the exact search: memory holds one
    # batch_size x corpus_batch_size float32 block (256 MiB at the defaults), whatever the corpus size
    batch_size: PositiveInt = 1024
    corpus_batch_size: PositiveInt = 65536
    train: MineTrainParams
    dev_candidates: PositiveInt  # documents retrieved per dev query, the positive included when found
    suspects: SuspectsParams | None = None  # null: no audit, the mined rows exactly as the library mines them


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
    # WiSE-FT: the saved model's weights are (1 - alpha) * the base model's + alpha * the trained ones, the trained
    # score head kept (reranker/training/wise_ft.py); keeps more of what the base model knew off-domain.
    # null: as trained
    wise_ft_alpha: Annotated[float, Field(gt=0, le=1)] | None = None


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
    confidence: float = Field(0.95, gt=0, lt=1)
    resamples: PositiveInt = 10000
    seed: Seed = 0


class FusionParams(Section):  # the trained model's scores fused with the first stage's (reranker/evaluation/fusion.py)
    # The first stage's share of each per-query min-max normalised sum: 0 is the trained model's order, 1 the
    # first stage's
    first_stage_weight: Annotated[float, Field(ge=0.0, le=1.0)] = 0.3


class EvaluateParams(Section):
    batch_size: PositiveInt
    reranking: RerankingParams | None = None  # null skips the dev reranking
    classification: ClassificationParams | None = None  # null skips classification
    nanobeir: NanoBEIRParams | None = None  # null skips NanoBEIR
    collections: list[CollectionParams] = []  # BEIR or NanoBEIR collections, local or hub, each with a first stage
    significance: SignificanceParams = SignificanceParams()
    fusion: FusionParams | None = None  # null: no fused ranking; else one per set, reported beside the trained one


class EmissionsParams(Section):  # codecarbon's offline tracker: no network, the grid's intensity by place
    country_iso_code: str
    region: str | None = None


class CardParams(Section):
    model_name: str
    model_id: str  # the hub id shown in the usage snippet
    base_model_id: str | None = None  # the base model's hub id, for a local or pkg: train.base_model; null: that
    language: str
    license: str
    # the repository the model was trained in (its code, dvc.lock and provenance), linked from the card; null: none
    repository: Annotated[str, Field(pattern=r"^https?://[^\s()<>]+$")] | None = None


# The export stage's variants (reranker/export/variants.py, where each is built): fp32 ONNX with ONNX Runtime's
# graph optimizations; int8 ONNX, dynamic (weights only) or static (calibrated on export.calibration_pairs in-domain
# pairs); OpenVINO fp32; OpenVINO int8 calibrated by NNCF on the same pairs
ExportVariant = Literal["onnx", "onnx-int8", "onnx-int8-static", "openvino", "openvino-int8"]


class ExportGateParams(Section):  # what a variant must keep of the torch model's ranking to ship (export/gate.py)
    min_kendall_tau: float = Field(0.8, ge=-1, le=1)  # mean per-query Kendall's tau vs the torch ranking
    min_top1_unchanged: float = Field(0.85, ge=0, le=1)  # share of queries whose top document is the torch model's
    max_loss: float = Field(0.01, ge=0, lt=1)  # fails on a significant ndcg@k loss of more than this, on any set
    fail_stage: bool = False  # a failing variant fails the stage; else it is reported and left out of data/hub/


class ExportLatencyParams(Section):  # the stage's own timing of every variant and the torch model
    rounds: PositiveInt = 3  # variants interleaved, in a rotated order each round; the median round is reported
    warmup_queries: NonNegativeInt = 5  # scored untimed before each model's timed queries in each round
    max_queries: PositiveInt | None = 30  # time at most this many dev queries; null: all of them
    throughput_pairs: PositiveInt = 512  # dev pairs scored at evaluate.batch_size for pairs per second


class ExportParams(Section):
    variants: list[ExportVariant] = ["openvino-int8"]  # empty: no export; the card ships the torch model alone
    quantization: Literal["avx512_vnni", "avx512", "avx2", "arm64"] = "avx2"  # the CPU the int8 ONNX variants are for
    calibration_pairs: PositiveInt = 300  # static int8: (query, document) pairs drawn from the training data
    seed: Seed = 12  # draws the calibration pairs
    gate: ExportGateParams = ExportGateParams()
    latency: ExportLatencyParams = ExportLatencyParams()


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
    export: ExportParams


def read_params(path: str | Path = "params.yaml") -> dict:
    """params.yaml as plain data, read as DVC reads it (ruamel: `2e-5` is a float, as for `dvc exp run -S`)."""
    try:
        return YAML(typ="safe").load(Path(path).read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path} not found; run the stage from the repository root") from None
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise PipelineError(f"{path} is not valid YAML{where}; fix its syntax") from None


def load_sections(*names: str, path: str | Path = "params.yaml") -> SimpleNamespace:
    """The named sections of params.yaml, each validated by its schema alone: what a stage reads.

    Example: ``load_sections("train", "tokenize").train.args["learning_rate"]``.
    """
    raw = read_params(path) or {}
    sections = {}
    for name in names:
        try:
            sections[name] = Params.model_fields[name].annotation.model_validate(raw.get(name))
        except ValidationError as error:
            raise schema_error(error, path, (name,)) from None
    return SimpleNamespace(**sections)


def load_params(path: str | Path = "params.yaml") -> Params:
    """All of params.yaml, validated by its schema alone (the card describes every section)."""
    try:
        return Params.model_validate(read_params(path))
    except ValidationError as error:
        raise schema_error(error, path) from None


def schema_error(error: ValidationError, path, prefix: tuple = ()) -> PipelineError:
    first = error.errors()[0]
    loc = (*prefix, *first["loc"])
    key = ".".join(str(part) for part in loc)
    got = f", got {first['input']!r}" if first["type"] in LIMIT_ERRORS else ""
    return PipelineError(f"{path}: '{key}' {problem(first, loc)}{got}; run `rerank check` for the fix")


# pydantic's error types for a value outside a Field limit
LIMIT_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


def problem(first: dict, loc: tuple) -> str:
    """What pydantic found wrong with the value at `loc` (a key's parts from Params down), as the end of a
    sentence naming the key: a number outside its range says the whole range, e.g. "must lie in [0, 1)"."""
    if first["type"] in LIMIT_ERRORS and (limits := field_limits(loc)):
        return f"must {describe_range(limits)}"
    return f"{first['msg'][0].lower()}{first['msg'][1:]}"


def field_limits(loc: tuple) -> dict[str, float]:
    """The Field limits (gt, ge, lt, le) of the key at `loc`, e.g. ("export", "gate", "max_loss") -> {"ge": 0,
    "lt": 1}; {} where the key has none or is not a field of Params."""
    model, field = Params, None
    for part in loc:
        if isinstance(part, int):  # a list's item: the list's type was looked into below
            continue
        if model is None or part not in model.model_fields:
            return {}
        field = model.model_fields[part]
        model = next((t for t in inner_types(field.annotation) if isinstance(t, type) and issubclass(t, BaseModel)),
                     None)
    return limits_of(field.annotation, field.metadata) if field is not None else {}


def inner_types(annotation) -> list:
    """The types inside an annotation: a union's members, a list's item type, and theirs."""
    inner = [annotation]
    for argument in get_args(annotation) if get_origin(annotation) is not Annotated else get_args(annotation)[:1]:
        inner += inner_types(argument)
    return inner


def limits_of(annotation, metadata=()) -> dict[str, float]:
    """The limits in a field's metadata and its annotation (through Annotated and `| None`)."""
    found = {}
    for item in metadata:
        found |= {name: getattr(item, name) for name in ("gt", "ge", "lt", "le")
                  if getattr(item, name, None) is not None}
        found |= limits_of(None, getattr(item, "metadata", ()))  # a Field(...) inside Annotated
    if get_origin(annotation) is Annotated:
        found |= limits_of(get_args(annotation)[0], annotation.__metadata__)
    elif get_origin(annotation) in (Union, UnionType):
        for member in get_args(annotation):
            found |= limits_of(member)
    return found


def describe_range(limits: dict[str, float]) -> str:
    """E.g. {"ge": 0, "lt": 1} -> "lie in [0, 1)"; {"gt": 0} -> "be above 0"."""
    def number(value) -> str:
        return "2**32" if value == 2**32 else f"{value:g}"

    low = f"[{number(limits['ge'])}" if "ge" in limits else f"({number(limits['gt'])}" if "gt" in limits else None
    high = f"{number(limits['le'])}]" if "le" in limits else f"{number(limits['lt'])})" if "lt" in limits else None
    if low and high:
        return f"lie in {low}, {high}"
    if low:
        return f"be at least {number(limits['ge'])}" if "ge" in limits else f"be above {number(limits['gt'])}"
    return f"be at most {number(limits['le'])}" if "le" in limits else f"be below {number(limits['lt'])}"
