"""Step 5, tokenize: turn the texts of the training data and of the dev pairs into the base model's token ids,
stored as Parquet row groups for the train stage (whose loop then never runs the tokenizer), and report pair
lengths. Text columns become `<column>_ids`, lists of texts lists of ids. Memory holds one row group, whatever
the data's size."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from transformers import AutoTokenizer

from reranker.core.errors import entrypoint
from reranker.core.outputs import atomic_output, write_json
from reranker.core.paths import loading_model, resolve_model
from reranker.params import load_sections
from reranker.training.token_ids import PairEncoder
from reranker.training.tokenizing import TokenCounts, write_token_ids


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mine_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("metrics", type=Path)
    parser.add_argument("--summary", type=Path, help="where to write the headline of the metrics, for dvc exp show")
    args = parser.parse_args()
    params = load_sections("tokenize", "train")
    max_length = params.tokenize.max_length

    # 1. The base model's tokenizer; texts are tokenized without special tokens (PairEncoder adds them per pair)
    with loading_model("train.base_model", params.train.base_model):
        tokenizer = AutoTokenizer.from_pretrained(resolve_model(params.train.base_model),
                                                  trust_remote_code=params.train.trust_remote_code)
    counts = TokenCounts(special_tokens=max_length - PairEncoder(tokenizer, max_length).budget)

    # 2. Each file's texts as token ids, a row group at a time; both written, so that a failure leaves neither
    with atomic_output(args.out_dir) as partial:
        partial.mkdir()
        rows = write_token_ids(args.mine_dir / "train.parquet", partial / "train.parquet", tokenizer, max_length,
                               counts, show_progress_bar=True, desc="tokenize: train")
        lengths = counts.lengths()  # the training pairs' lengths, before the dev pairs add theirs
        write_token_ids(args.mine_dir / "dev_pairs.parquet", partial / "dev_pairs.parquet", tokenizer, max_length,
                        counts, show_progress_bar=True, desc="tokenize: dev pairs")

    # 3. Lengths of the (query, document) pairs the model will see, before truncation
    metrics = {
        "rows": rows,
        "pairs": len(lengths),
        "distinct_texts": counts.distinct_texts(),
        "max_length": max_length,
        "tokens_mean": round(float(lengths.mean()), 1),
        "tokens_p95": round(float(np.percentile(lengths, 95)), 1),
        "truncated_share": round(float((lengths > max_length).mean()), 4),
    }
    write_json(args.metrics, metrics)
    if args.summary:
        write_json(args.summary, {"truncated_share": metrics["truncated_share"]})
    print(f"tokenize: {rows} rows, {len(lengths)} pairs, mean {lengths.mean():.0f} tokens, "
          f"{(lengths > max_length).mean():.1%} truncated at {max_length}")


if __name__ == "__main__":
    main()
