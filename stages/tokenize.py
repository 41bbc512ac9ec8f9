"""Step 3, tokenize: turn every distinct training text into the base model's token ids once, store them as
Parquet for the train stage (whose loop then never runs the tokenizer), and report pair lengths."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from transformers import AutoTokenizer

from stages.common import PairEncoder, atomic_output, entrypoint, load_params, resolve_model, write_json


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("train_pairs", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("metrics", type=Path)
    args = parser.parse_args()
    params = load_params()
    max_length = params.tokenize.max_length

    # 1. Tokenize each distinct text once, without special tokens (PairEncoder adds them per pair)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(params.train.base_model))
    pairs = pd.read_parquet(args.train_pairs)
    texts = list(dict.fromkeys(pairs["query"].tolist() + pairs["document"].tolist()))
    ids = dict(zip(texts, tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]))

    # 2. Pair lengths as the model will see them, before truncation
    encoder = PairEncoder(tokenizer, max_length)
    special = max_length - encoder.budget
    lengths = np.array([len(ids[q]) + len(ids[d]) + special for q, d in zip(pairs["query"], pairs["document"])])

    # 3. Keep at most max_length ids per text: a pair never uses more, so nothing the model sees is lost
    tokenized = pd.DataFrame({
        "query_ids": [ids[q][:max_length] for q in pairs["query"]],
        "document_ids": [ids[d][:max_length] for d in pairs["document"]],
        "label": pairs["label"].astype("float32"),
    })
    with atomic_output(args.out) as partial:
        tokenized.to_parquet(partial, index=False)
    write_json(args.metrics, {
        "pairs": len(tokenized),
        "distinct_texts": len(texts),
        "max_length": max_length,
        "tokens_mean": round(float(lengths.mean()), 1),
        "tokens_p95": round(float(np.percentile(lengths, 95)), 1),
        "truncated_share": round(float((lengths > max_length).mean()), 4),
    })
    print(f"tokenize: {len(tokenized)} pairs, mean {lengths.mean():.0f} tokens, "
          f"{(lengths > max_length).mean():.1%} truncated at {max_length}")


if __name__ == "__main__":
    main()
