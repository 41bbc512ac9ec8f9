"""Is a model param a model of the kind its stage needs? The check stage loads its config and tokenizer with
transformers (AutoConfig, AutoTokenizer: the library decides what it can read) and reads its weights' headers, no
weights loaded: a folder that is not a model, a config or tokenizer the library refuses, truncated weights, a
teacher without a score head, or a `tokenize.max_length` beyond what the model can embed each fail in one line."""

from __future__ import annotations

import difflib
import functools
import json
import os
import socket
import struct
import urllib.parse
from pathlib import Path

from reranker.core.errors import PipelineError
from reranker.core.paths import resolve_model

# Model types whose position ids start after the padding index (RoBERTa's create_position_ids_from_input_ids), so
# that pad_token_id + 1 of max_position_embeddings are never used for tokens
OFFSET_POSITIONS = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "longformer", "mpnet",
                    "roberta-prelayernorm", "xmod", "ibert", "luke", "mluke", "markuplm", "layoutlmv3", "esm"}
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model", "sentencepiece.model", "vocab.model", "source.spm")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack", "model.ckpt.index")
ROLES = {"embedding": "an embedding model", "base": "a base model to train", "teacher": "a trained cross-encoder"}


def offline() -> bool:
    return any(os.environ.get(name, "").upper() in {"1", "ON", "YES", "TRUE"}
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@functools.lru_cache(maxsize=1)
def hub_unreachable() -> str | None:
    """Why the hub cannot be reached (offline mode, or its host does not answer within 3 s), or None. Skipped
    behind a proxy, which a direct connection does not go through."""
    if offline():
        return "the hub is offline (HF_HUB_OFFLINE)"
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                                             "all_proxy")):
        return None
    endpoint = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as error:
        return f"{host} cannot be reached ({error.strerror or error}); set HF_HUB_OFFLINE=1 to use the cache only"
    return None


def hub_cache(kind: str, repo_id: str) -> Path:
    """The Hugging Face cache folder of a hub repository; kind is "models" or "datasets"."""
    hub_home = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.join(Path.home(), ".cache", "huggingface")), "hub")
    return Path(hub_home) / f"{kind}--{repo_id.replace('/', '--')}"


def hub_snapshot(repo_id: str) -> Path | None:
    """The local snapshot folder of a hub model in the Hugging Face cache, if it was downloaded before."""
    folder = hub_cache("models", repo_id)
    try:
        ref = (folder / "refs" / "main").read_text().strip()
        if (folder / "snapshots" / ref).is_dir():
            return folder / "snapshots" / ref
    except OSError:
        pass
    snapshots = sorted(folder.glob("snapshots/*"))
    return snapshots[-1] if snapshots else None


@functools.lru_cache(maxsize=64)
def check_model(spec: str, key: str, role: str, trust_remote_code: bool = False, max_length: int | None = None,
                num_labels: int | None = None, config_fields: tuple[str, ...] = ()) -> None:
    """`spec` (the value of params key `key`) names a model of `role` (ROLES): it resolves, its config loads with
    AutoConfig, its tokenizer files load, its weights are whole, and it fits max_length and num_labels; each of
    config_fields (the keys of train.config_kwargs) is a field of its config. A hub id is checked from the local
    cache when it is there, and refused when it is not and the hub is offline."""
    if not spec.strip():
        raise PipelineError(f"{key} is empty; give a local model folder, a hub id or pkg:MODULE")
    try:
        resolved = resolve_model(spec)
    except PipelineError as error:
        raise PipelineError(f"{key}: {error}") from None
    name = f"{key} '{spec}'"
    folder = Path(resolved)
    if not folder.exists():  # a hub id
        snapshot = hub_snapshot(resolved)
        if snapshot is None:
            if reason := hub_unreachable():
                raise PipelineError(f"{name} is not a local folder and is not in the Hugging Face cache, and "
                                    f"{reason}; give a local model folder or pkg:MODULE, or fetch it where the hub "
                                    "can be reached")
            return  # fetched when the stage loads it (see loading_model)
        folder = snapshot
    if folder.is_file():
        raise PipelineError(f"{name} is a file, not a model folder; give the folder that holds its config.json "
                            "(a folder saved with save_pretrained), a hub id or pkg:MODULE")
    model_folder = transformer_folder(folder, name)
    if not (model_folder / "config.json").is_file():
        entries = sorted(p.name for p in model_folder.iterdir())[:6] if model_folder.is_dir() else []
        has = f"it has {', '.join(entries)}" if entries else "it is empty"
        raise PipelineError(f"{name} is not a model folder: no config.json ({has}); give a folder saved with "
                            "save_pretrained, a hub id or pkg:MODULE")
    config = load_config(str(model_folder), name, key, trust_remote_code)
    if not any((model_folder / file).is_file() for file in TOKENIZER_FILES):
        raise PipelineError(f"{name} has no tokenizer files (one of {', '.join(TOKENIZER_FILES[:4])}...); save the "
                            "tokenizer with the model (tokenizer.save_pretrained)")
    load_tokenizer(str(model_folder), name, trust_remote_code)
    check_weights(model_folder, name)
    architectures = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    head = any(a.endswith("ForSequenceClassification") for a in architectures)
    labels = len(config["id2label"]) if isinstance(config.get("id2label"), dict) else config.get("num_labels", 2)
    if role == "teacher" and not head:
        raise PipelineError(f"{name} has no score head (config.json architectures {architectures}): a teacher must "
                            "be a trained cross-encoder (a ...ForSequenceClassification model); name one")
    if role == "teacher" and labels != 1:
        raise PipelineError(f"{name} scores {labels} classes per pair, but a teacher gives one score per pair; "
                            "name a cross-encoder with one output")
    if role == "base" and head and num_labels is not None and labels != num_labels:
        raise PipelineError(f"{name} has a score head of {labels} outputs but train.num_labels is {num_labels}; "
                            f"set train.num_labels to {labels}, or start from a model without a score head")
    for field in config_fields:
        if field not in config:  # transformers would drop the override without a word
            close = difflib.get_close_matches(field, config, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "see the base model's config.json"
            raise PipelineError(f"train.config_kwargs.{field} is not a field of {name}'s config; {hint}")
    if max_length is not None:
        limit = usable_positions(config)
        if limit is not None and max_length > limit:
            raise PipelineError(f"tokenize.max_length {max_length} is beyond what {name} can embed ({limit} "
                                f"positions: its config.json's max_position_embeddings "
                                f"{config['max_position_embeddings']}"
                                f"{' less its padding offset' if limit != config['max_position_embeddings'] else ''}"
                                f"); set tokenize.max_length to {limit} or less")


@functools.lru_cache(maxsize=16)
def load_config(folder: str, name: str, key: str, trust_remote_code: bool) -> dict:
    """The model's config as AutoConfig reads it (a known model_type, valid JSON, its own code only when trusted);
    the library's refusal is one line."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code).to_dict()
    except Exception as error:  # transformers raises ValueError, KeyError, OSError... by cause
        text, custom_code = first_sentence(error), "trust_remote_code" in str(error)
        fix = ("set train.trust_remote_code: true if you trust it" if key == "train.base_model"
               else "name a model that transformers has built in") if custom_code else \
            "restore the model's config.json, or upgrade transformers"
        raise PipelineError(f"{name}: its config.json does not load with transformers ({text}); {fix}") from None


@functools.lru_cache(maxsize=16)
def load_tokenizer(folder: str, name: str, trust_remote_code: bool) -> None:
    """AutoTokenizer loads the tokenizer files as the stages will; its refusal is one line."""
    from transformers import AutoTokenizer

    try:
        AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except Exception as error:  # the tokenizers library raises plain Exception for a corrupt tokenizer.json
        text = first_sentence(error)
        raise PipelineError(f"{name}: its tokenizer does not load with transformers ({text}); restore the "
                            "tokenizer files") from None


def first_sentence(error: Exception) -> str:
    """The library's message, one line, up to its first full stop (its advice on what to run follows)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text.split(". ")[0].rstrip(".")[:300]


def transformer_folder(folder: Path, name: str) -> Path:
    """The folder of the transformers model: the model folder itself, or a Sentence Transformers model's
    Transformer module folder (modules.json)."""
    modules_file = folder / "modules.json"
    if modules_file.is_file():
        try:
            modules = json.loads(modules_file.read_text())
            path = next((m.get("path", "") for m in modules if str(m.get("type", "")).endswith("Transformer")), "")
        except (ValueError, AttributeError, TypeError, UnicodeDecodeError):
            raise PipelineError(f"{name}: its modules.json is not a Sentence Transformers module list; fix or "
                                "remove it") from None
        return folder / path
    return folder


def check_weights(folder: Path, name: str) -> None:
    """Weights are there; a safetensors file is as long as its header says (a truncated copy is not)."""
    present = [f for f in WEIGHT_FILES if (folder / f).is_file()]
    if not present:
        raise PipelineError(f"{name} has no weights ({', '.join(WEIGHT_FILES[:2])} or a sharded index); save the "
                            "model with save_pretrained")
    files = [folder / present[0]]
    if present[0].endswith(".index.json"):
        try:
            shards = sorted(set(json.loads(files[0].read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
            raise PipelineError(f"{name}: its {present[0]} is not a weight index; restore it") from None
        if missing := [s for s in shards if not (folder / s).is_file()]:
            raise PipelineError(f"{name}: its {present[0]} names {missing[0]}, which is missing; restore the "
                                "weights") from None
        files = [folder / s for s in shards]
    for file in files:
        if file.suffix == ".safetensors":
            check_safetensors(file, name)
        elif file.stat().st_size == 0:
            raise PipelineError(f"{name}: its {file.name} is empty; restore the weights")


def check_safetensors(file: Path, name: str) -> None:
    size = file.stat().st_size
    try:
        with open(file, "rb") as handle:
            (header_size,) = struct.unpack("<Q", handle.read(8))
            if header_size > min(size - 8, 100_000_000):
                raise ValueError("header longer than the file")
            header = json.loads(handle.read(header_size))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError):
        raise PipelineError(f"{name}: its {file.name} is not a safetensors file (unreadable header); restore the "
                            "weights") from None
    if 8 + header_size + end > size:
        raise PipelineError(f"{name}: its {file.name} is truncated ({size} bytes of {8 + header_size + end}); "
                            "restore the weights")


def usable_positions(config: dict) -> int | None:
    """How many tokens the model can embed: max_position_embeddings, less the padding offset of RoBERTa-like
    models; None when the config does not say (relative positions)."""
    positions = config.get("max_position_embeddings")
    if not isinstance(positions, int) or isinstance(positions, bool) or positions <= 0:
        return None
    if config.get("model_type") in OFFSET_POSITIONS:
        pad = config.get("pad_token_id")
        return positions - ((pad if isinstance(pad, int) else 1) + 1)
    return positions
