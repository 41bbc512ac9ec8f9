"""What params point at, checked when params load, before any stage works: the data source (its footer, first
line or header), each model (its config and tokenizer files), the evaluation collections (their folders and
splits), the teacher, codecarbon's place, and values whose meaning spans sections. All cheap: no rows, weights or
corpora are read, and nothing imports torch. Each problem is one `PipelineError` line naming the key and the fix.

What these cannot see (a hub id without the network, a data page corrupt past a valid footer) each stage still
reports in one line when it reads it."""

from __future__ import annotations

import difflib
import importlib.util
import json
from pathlib import Path

from reranker.errors import PipelineError
from reranker.evaluation.collections import NANOBEIR_SPLITS, check_collection_source
from reranker.model_checks import check_model
from reranker.paths import outside_path
from reranker.sources import check_hub_dataset, check_source
from reranker.training_args import check_training_args_fully

SEED_LIMIT = 2**32  # numpy's seeds lie in [0, 2**32)


def check_inputs(params, path) -> None:
    """Every cheap check of what `params` (a validated Params) reads; raises the first problem as one line."""
    try:
        check_values(params)
        rows = check_source(params.download)
        if rows is not None and params.download.shape == "pairs" and params.mine.dev_candidates >= rows:
            raise PipelineError(f"mine.dev_candidates is {params.mine.dev_candidates} but the data has at most {rows} "
                                "rows, so fewer documents to retrieve from; lower mine.dev_candidates")
        tokenize, train = params.tokenize, params.train
        check_model(params.embed.model, "embed.model", "embedding")
        check_model(train.base_model, "train.base_model", "base", train.trust_remote_code, tokenize.max_length,
                    train.num_labels)
        if params.mine.teacher is not None and params.mine.teacher.model is not None:
            check_model(params.mine.teacher.model, "mine.teacher.model", "teacher", False, tokenize.max_length)
        check_evaluation(params.evaluate)
        check_emissions(params.emissions)
    except PipelineError as error:
        message = str(error)
        raise PipelineError(message if message.startswith(f"{path}:") else f"{path}: {message}") from None
    # With torch already imported by the stage, the trainer's own dataclass checks train.args too
    check_training_args_fully(params.train.args, path)


def check_values(params) -> None:
    """Values whose meaning the types cannot say."""
    for key, seed in (("download.seed", params.download.seed), ("mine.seed", params.mine.seed)):
        if not 0 <= seed < SEED_LIMIT:
            raise PipelineError(f"{key} is {seed} but seeds lie in [0, 2**32); give a non-negative seed such as 12")
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
    if mining.relative_margin is not None and not 0 <= mining.relative_margin < 1:
        raise PipelineError(f"mine.train.relative_margin {mining.relative_margin} must lie in [0, 1) (a negative "
                            "scoring above (1 - margin) × the positive's score is discarded); give e.g. 0.05")
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
    """A dotted class path whose package is installed (checked without importing it)."""
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
        elif collection.run_file:
            raise PipelineError(f"{key}.run_file is set but first_stage is {collection.first_stage}, which does "
                                "not read it; set first_stage: run_file or remove run_file")
    significance = evaluate.significance
    if not 0 < significance.confidence < 1:
        raise PipelineError(f"evaluate.significance.confidence {significance.confidence} must lie between 0 and 1; "
                            "give e.g. 0.95")
    if not 0 <= significance.seed < SEED_LIMIT:
        raise PipelineError(f"evaluate.significance.seed is {significance.seed} but seeds lie in [0, 2**32); give "
                            "a non-negative seed")


def is_hub_id(source: str) -> bool:
    return not source.startswith((".", "/", "~")) and not Path(outside_path(source)).expanduser().exists()


def check_bm25_config(name: str, dataset_id: str) -> None:
    """CrossEncoderNanoBEIREvaluator also reranks the bm25 config's candidates: a local folder must declare it."""
    folder = Path(outside_path(dataset_id)).expanduser()
    readme = folder / "README.md"
    if not readme.is_file():
        return  # a hub id
    import yaml

    text = readme.read_text(encoding="utf-8", errors="replace")
    header = text.split("---", 2)[1] if text.startswith("---") and text.count("---") >= 2 else ""
    try:
        configs = (yaml.safe_load(header) or {}).get("configs") or []
    except (yaml.YAMLError, AttributeError):
        return  # check_collection_source reports it
    bm25 = next((c for c in configs if isinstance(c, dict) and c.get("config_name") == "bm25"), None)
    if bm25 is None:
        raise PipelineError(f"collection {name!r}: {readme} declares no 'bm25' config, whose candidates "
                            "CrossEncoderNanoBEIREvaluator reranks; add it (query-id, corpus-ids)")
    files = bm25.get("data_files")
    splits = ([str(f.get("split", "train")) for f in files if isinstance(f, dict)] if isinstance(files, list)
              else [str(s) for s in files] if isinstance(files, dict) else ["train"])
    if f"Nano{human(name)}" not in splits:
        raise PipelineError(f"collection {name!r}: the bm25 config of {readme} has no split Nano{human(name)} (it "
                            f"has {', '.join(splits)}); add it")


def human(name: str) -> str:
    return NANOBEIR_SPLITS[name.lower()][len("Nano"):]


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

