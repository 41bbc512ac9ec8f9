"""Every check of params.yaml, run by the check stage (and `rerank check`) before any stage works: the schema with
its messages (a misspelt key names the close one), values whose meaning spans sections (shape, loss, teacher and
evaluators), and what the values point at: the data source, each model, the training arguments (built by the
library itself), the evaluation collections and their first-stage run files. Each problem is one `PipelineError`
line naming the key and the fix. Working stages import none of this: editing a check reruns only the check stage."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
from pathlib import Path

from pydantic import BaseModel, ValidationError

from reranker.checks.card import check_card_names
from reranker.checks.collections import check_evaluation
from reranker.checks.data_source import check_sources
from reranker.checks.export import check_export
from reranker.checks.models import check_model
from reranker.checks.suspects import check_suspects
from reranker.checks.training import check_training_args
from reranker.core.errors import PipelineError, first_line
from reranker.params import Params, problem, read_params
from reranker.training.loss_inputs import INPUT_COLUMNS, LOSS_INPUT, SHAPE_GIVES, TEACHER_LOSSES
from reranker.training.metric_names import classification_metrics, nanobeir_mean_name, reranking_metrics


def check_params(path: str | Path = "params.yaml") -> Params:
    """Read, validate and cross-check params.yaml and what it points at; any problem is a one-line PipelineError.

    Example: ``check_params("params.yaml").train.loss``.
    """
    raw = read_params(path)
    try:
        params = Params.model_validate(raw)
    except ValidationError as error:
        raise validation_error(error, path) from None
    try:
        check_training_args(params.train.args)
        check_recipe(params)
        check_loss_args(params.train.loss, params.train.loss_args)
        check_values(params)
        rows = check_sources(params.download)
        if rows is not None and params.download.shape == "pairs" and params.mine.dev_candidates >= rows:
            raise PipelineError(f"mine.dev_candidates is {params.mine.dev_candidates} but the data has at most {rows} "
                                "rows, so fewer documents to retrieve from; lower mine.dev_candidates")
        tokenize, train = params.tokenize, params.train
        check_model(params.embed.model, "embed.model", "embedding")
        check_model(train.base_model, "train.base_model", "base", train.trust_remote_code, tokenize.max_length,
                    train.num_labels, tuple(train.config_kwargs))
        if params.mine.teacher is not None and params.mine.teacher.model is not None:
            check_model(params.mine.teacher.model, "mine.teacher.model", "teacher", False, tokenize.max_length)
        check_suspects(params)
        check_evaluation(params.evaluate)
        check_emissions(params.emissions)
        check_export(params.export)
        check_card_names(params.download, params.card)
    except PipelineError as error:
        message = str(error)
        raise PipelineError(message if message.startswith(f"{path}:") else f"{path}: {message}") from None
    return params


def validation_error(error: ValidationError, path) -> PipelineError:
    """The schema's first objection as one line: an unknown key with the close one, a missing key, or a value
    (a number outside its range says the range)."""
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
        return PipelineError(f"{path}: unknown key '{key}'; {hint} Rename or remove it.")
    if first["type"] == "missing":
        return PipelineError(f"{path}: missing key '{key}'; add it (the repository's params.yaml shows every key).")
    return PipelineError(f"{path}: '{key}' {problem(first, first['loc'])}, got {first['input']!r}; fix its value.")


def check_recipe(params: Params) -> None:
    """Data shape, loss, teacher and evaluators must fit together: fail before any stage runs, not mid-training."""
    train, shape, evaluate = params.train, params.download.shape, params.evaluate
    if train.loss not in LOSS_INPUT:
        raise PipelineError(f"train.loss '{train.loss}' is not a sentence-transformers cross-encoder loss; "
                            f"use one of {', '.join(LOSS_INPUT)}")
    wants = LOSS_INPUT[train.loss]
    if shape != "pairs" and SHAPE_GIVES[shape] != wants:
        raise PipelineError(f"train.loss {train.loss} wants {INPUT_COLUMNS[wants]}, but download.shape "
                            f"'{shape}' gives {INPUT_COLUMNS[SHAPE_GIVES[shape]]}; use shape pairs (mine builds "
                            f"them) or a loss that reads {INPUT_COLUMNS[SHAPE_GIVES[shape]]}")
    if params.download.more_sources and shape != "pairs":
        raise PipelineError(f"download.more_sources adds (query, relevant document) pairs whose negatives are mined, "
                            f"but download.shape is '{shape}', which is not mined; set download.shape to pairs, or "
                            "remove download.more_sources")
    teacher = params.mine.teacher
    if train.loss in TEACHER_LOSSES and shape == "pairs" and teacher is None:
        raise PipelineError(f"train.loss {train.loss} learns a teacher's scores of the mined pairs; set "
                            "mine.teacher.model to a cross-encoder, or mine.teacher.kind to embedding")
    if teacher is not None and teacher.kind == "cross_encoder" and teacher.model is None:
        raise PipelineError("mine.teacher.kind is cross_encoder but mine.teacher.model is null; name the "
                            "cross-encoder, or set mine.teacher.kind to embedding (the embedding model scores)")
    if teacher is not None and teacher.kind == "embedding" and teacher.model is not None:
        raise PipelineError(f"mine.teacher.kind embedding scores with embed.model's stored embeddings, but "
                            f"mine.teacher.model names '{teacher.model}'; set mine.teacher.model to null, or kind "
                            "to cross_encoder")
    if train.loss == "CrossEntropyLoss" and train.num_labels < 2:
        raise PipelineError("CrossEntropyLoss classifies into train.num_labels classes; set it to 2 or more")
    if train.num_labels > 1 and train.loss != "CrossEntropyLoss":
        raise PipelineError(f"train.num_labels {train.num_labels} asks for a score per class, which only "
                            f"CrossEntropyLoss trains; set train.num_labels to 1 or train.loss to CrossEntropyLoss")
    if train.num_labels > 1 and (evaluate.reranking or evaluate.nanobeir):
        raise PipelineError(f"train.num_labels {train.num_labels} gives a score per class, but reranking "
                            "ranks by one score per pair; set evaluate.reranking and evaluate.nanobeir to null "
                            "and evaluate with evaluate.classification")
    if train.eval_loss and wants != "pair":
        raise PipelineError(f"train.eval_loss computes the loss on dev pairs, which {train.loss} cannot "
                            "read; set train.eval_loss to false")
    for name in train.evaluators:
        if getattr(evaluate, name) is None:
            raise PipelineError(f"train.evaluators names {name} but evaluate.{name} is null; "
                                f"configure evaluate.{name} or remove it from train.evaluators")
    if not (evaluate.reranking or evaluate.classification or evaluate.nanobeir):
        raise PipelineError("evaluate.reranking, .classification and .nanobeir are all null; "
                            "configure at least one evaluator")
    check_best_metric(train, evaluate)
    if train.args.get("eval_strategy", "no") != "no" and not train.evaluators and not train.eval_loss:
        raise PipelineError("train.args.eval_strategy evaluates during training but there is nothing to "
                            "evaluate; list evaluators in train.evaluators, set train.eval_loss, "
                            "or set eval_strategy: no")


def logged_metric_names(train, evaluate) -> list[str]:
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


def check_best_metric(train, evaluate) -> None:
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
        raise PipelineError(f"train.args.metric_for_best_model '{metric}' is not logged by train.evaluators "
                            f"{train.evaluators}{' or the dev loss' if train.eval_loss else ''}; "
                            + (f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(names)}"))


def check_loss_args(name: str, loss_args: dict) -> None:
    """Each key is an argument of the loss class's constructor (the train stage converts the values to what it
    asks for), and a name given for an object is one of the losses module's or a dotted class path."""
    import inspect

    from sentence_transformers.cross_encoder import losses

    parameters = inspect.signature(getattr(losses, name)).parameters
    for key, value in loss_args.items():
        if key not in parameters or key == "model":
            close = difflib.get_close_matches(key, [known for known in parameters if known != "model"], n=1)
            hint = f"did you mean '{close[0]}'?" if close else "see its documentation"
            raise PipelineError(f"train.loss_args.{key} is not an argument of {name}; {hint}")
        annotation = str(parameters[key].annotation)
        if isinstance(value, str) and "str" not in annotation and "Literal" not in annotation \
                and not hasattr(losses, value):
            check_dotted(f"train.loss_args.{key}", value)


def check_values(params) -> None:
    """Values whose meaning another key decides (each key's own range is its Field limits in reranker/params.py),
    and what a value points at: an installed package, an importable class."""
    mining = params.mine.train
    if mining.range_max is not None:
        if mining.range_min >= mining.range_max:
            raise PipelineError(f"mine.train.range_min {mining.range_min} is not below range_max {mining.range_max}; "
                                "lower range_min or raise range_max")
        if mining.num_negatives > mining.range_max - mining.range_min:
            raise PipelineError(f"mine.train.num_negatives {mining.num_negatives} is more than the "
                                f"{mining.range_max - mining.range_min} candidates between range_min "
                                f"{mining.range_min} and range_max {mining.range_max}; lower num_negatives or "
                                "widen the range")
    if mining.min_score is not None and mining.max_score is not None and mining.min_score >= mining.max_score:
        raise PipelineError(f"mine.train.min_score {mining.min_score} is not below max_score {mining.max_score}, so "
                            "every candidate is discarded; lower min_score or raise max_score")
    if params.mine.faiss_index != "Flat" and not params.mine.use_faiss:
        raise PipelineError(f"mine.faiss_index is {params.mine.faiss_index!r} but mine.use_faiss is false; set "
                            "mine.use_faiss: true, or mine.faiss_index: Flat")
    if params.mine.use_faiss and importlib.util.find_spec("faiss") is None:
        raise PipelineError("mine.use_faiss is true but faiss is not installed; pip install -e '.[faiss]' "
                            "or set mine.use_faiss: false")
    for key, dotted in (("train.activation_fn", params.train.activation_fn),
                        ("mine.teacher.activation_fn", params.mine.teacher and params.mine.teacher.activation_fn)):
        if dotted is not None:
            check_dotted(key, dotted)


def check_dotted(key: str, dotted: str) -> None:
    """A dotted class path whose package is installed and whose module has that name (the stages import it)."""
    module, _, name = dotted.rpartition(".")
    top = module.partition(".")[0]
    if not module or not name.isidentifier() or not all(p.isidentifier() for p in module.split(".")):
        raise PipelineError(f"{key} '{dotted}' is not a dotted class path; give one such as torch.nn.Identity")
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise PipelineError(f"{key} '{dotted}': no installed package '{top}'; give a class such as "
                            "torch.nn.Identity")
    try:
        found = hasattr(importlib.import_module(module), name)
    except ImportError as error:
        raise PipelineError(f"{key} '{dotted}': module {module} does not import ({first_line(error)}); give a "
                            "class such as torch.nn.Identity") from None
    if not found:
        raise PipelineError(f"{key} '{dotted}': module {module} has no {name!r}; give a class such as "
                            "torch.nn.Identity")


def check_emissions(emissions) -> None:
    """codecarbon's offline tracker knows the country (ISO 3166 alpha-3) and, in the USA and Canada, the region."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.origin:
        return
    data = Path(spec.origin).parent / "data" / "private_infra"
    try:
        countries = json.loads((data / "global_energy_mix.json").read_text())
    except (OSError, ValueError):
        return
    code = emissions.country_iso_code
    if code not in countries:
        close = difflib.get_close_matches(code.upper(), countries, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "give an ISO 3166 alpha-3 code such as USA or FRA"
        raise PipelineError(f"emissions.country_iso_code '{code}' is not a country codecarbon knows; {hint}")
    regional = {"USA": "usa_emissions.json", "CAN": "canada_energy_mix.json"}
    if emissions.region is not None and code in regional:
        files = sorted(data.glob(f"*/{regional[code]}"))
        try:
            regions = [r for r in json.loads(files[-1].read_text()) if not r.startswith("_")] if files else []
        except (OSError, ValueError):
            regions = []
        if regions and emissions.region.lower() not in regions:
            close = difflib.get_close_matches(emissions.region.lower(), regions, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "set it to null for the country's average"
            raise PipelineError(f"emissions.region '{emissions.region}' is not a region of {code} that codecarbon "
                                f"knows; {hint}")
