"""Step 3, tokenize: turn every distinct text of the training data (and of the dev pairs) into the base
model's token ids once, store them as Parquet for the train stage (whose loop then never runs the
tokenizer), and report pair lengths. Text columns become `<column>_ids`; lists of texts lists of ids."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from transformers import AutoTokenizer

from reranker.errors import entrypoint
from reranker.model_checks import loading_model
from reranker.model_paths import resolve_model
from reranker.outputs import atomic_output, write_json
from reranker.params import load_params
from reranker.token_ids import PairEncoder
from reranker.tokenizing import text_columns, texts_of, to_ids


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mine_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("metrics", type=Path)
    args = parser.parse_args()
    params = load_params()
    max_length = params.tokenize.max_length

    # 1. Tokenize each distinct text once, without special tokens (PairEncoder adds them per pair)
    with loading_model("train.base_model", params.train.base_model):
        tokenizer = AutoTokenizer.from_pretrained(resolve_model(params.train.base_model),
                                                  trust_remote_code=params.train.trust_remote_code)
    train = pd.read_parquet(args.mine_dir / "train.parquet")
    dev = pd.read_parquet(args.mine_dir / "dev_pairs.parquet")
    texts = list(dict.fromkeys(texts_of(train) + texts_of(dev)))
    ids = dict(zip(texts, tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]))

    # 2. Lengths of the (query, document) pairs the model will see, before truncation
    special_tokens = max_length - PairEncoder(tokenizer, max_length).budget
    query_column, *document_columns = text_columns(train)
    lengths = np.array([len(ids[query]) + len(ids[document]) + special_tokens for column in document_columns
                        for query, value in zip(train[query_column], train[column])
                        for document in ([value] if isinstance(value, str) else value)])

    # 3. Write both, so that a failure leaves neither
    with atomic_output(args.out_dir) as partial:
        partial.mkdir()
        to_ids(train, ids, max_length).to_parquet(partial / "train.parquet", index=False)
        to_ids(dev, ids, max_length).to_parquet(partial / "dev_pairs.parquet", index=False)
    write_json(args.metrics, {
        "rows": len(train),
        "pairs": len(lengths),
        "distinct_texts": len(texts),
        "max_length": max_length,
        "tokens_mean": round(float(lengths.mean()), 1),
        "tokens_p95": round(float(np.percentile(lengths, 95)), 1),
        "truncated_share": round(float((lengths > max_length).mean()), 4),
    })
    print(f"tokenize: {len(train)} rows, {len(lengths)} pairs, mean {lengths.mean():.0f} tokens, "
          f"{(lengths > max_length).mean():.1%} truncated at {max_length}")


if __name__ == "__main__":
    main()
