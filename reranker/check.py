"""`python -m reranker.check [params.yaml]`: every check of params before a run, the slow ones too. Loading params
already checks everything cheap (see reranker/input_checks.py); this adds what needs torch and transformers:
CrossEncoderTrainingArguments built from train.args as the train stage builds them, and each model's config and
tokenizer loaded by transformers itself (no weights). One line and exit status 1 on the first problem, else
`params.yaml: ok`."""

from __future__ import annotations

import argparse
from pathlib import Path

from reranker.errors import entrypoint
from reranker.model_checks import loading_model, transformer_folder
from reranker.model_paths import resolve_model
from reranker.params import load_params
from reranker.training_args import check_training_args_fully


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("params", nargs="?", default="params.yaml", type=Path)
    path = parser.parse_args().params
    params = load_params(path)
    check_training_args_fully(params.train.args, path, force=True)

    from transformers import AutoConfig, AutoTokenizer

    models = [("embed.model", params.embed.model, False),
              ("train.base_model", params.train.base_model, params.train.trust_remote_code)]
    if params.mine.teacher is not None and params.mine.teacher.model is not None:
        models.append(("mine.teacher.model", params.mine.teacher.model, False))
    for key, spec, trust_remote_code in models:
        resolved = resolve_model(spec)
        where = str(transformer_folder(Path(resolved), key)) if Path(resolved).is_dir() else resolved
        with loading_model(key, spec):
            AutoConfig.from_pretrained(where, trust_remote_code=trust_remote_code)
            AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code)
    print(f"{path}: ok")


if __name__ == "__main__":
    main()
