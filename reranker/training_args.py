"""The early check of `train.args` against CrossEncoderTrainingArguments' fields, without importing
sentence-transformers (and torch) in every stage: the fields' names and declared types are read once per
installed version of sentence-transformers and transformers, and cached in the user's cache folder."""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from importlib.metadata import version
from pathlib import Path
from typing import Any

from reranker.errors import PipelineError

# Declared scalar types whose values can be checked from YAML alone
SCALAR_TYPES = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,)}


def training_arguments_fields() -> dict[str, str]:
    """Field name -> declared type of CrossEncoderTrainingArguments, e.g. {"learning_rate": "float", ...}."""
    key = f"sentence-transformers-{version('sentence-transformers')}-transformers-{version('transformers')}"
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rerank-pipeline" / f"{key}.json"
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        pass
    from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

    fields = {field.name: str(field.type).replace("<class '", "").replace("'>", "")
              for field in dataclasses.fields(CrossEncoderTrainingArguments)}
    try:  # a read-only home only costs the import next time
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(f".{cache.name}.{os.getpid()}")
        partial.write_text(json.dumps(fields))
        os.replace(partial, cache)
    except OSError:
        pass
    return fields


def check_training_args(args: dict[str, Any], path) -> None:
    """The trainer's own dataclass decides which keys exist and, for plain scalar fields, their types."""
    fields = training_arguments_fields()
    for key, value in args.items():
        if key == "output_dir":
            raise PipelineError(f"{path}: 'train.args.output_dir' is set by the train stage; remove it.")
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise PipelineError(f"{path}: 'train.args.{key}' is not a CrossEncoderTrainingArguments field.{hint}")
        declared = fields[key]
        accepted = SCALAR_TYPES.get(declared)
        wrong_bool = isinstance(value, bool) and declared != "bool"
        if accepted and value is not None and (not isinstance(value, accepted) or wrong_bool):
            raise PipelineError(f"{path}: 'train.args.{key}' should be {declared}, got {value!r}; fix its value.")
