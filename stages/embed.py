"""Step 3, embed: encode the corpus and each split's queries once with the embedding model, in batches, into
`data/embeddings/` (float32 `.npy` files, memory-mapped by the mine stage), so that changing a sampling param
(mine stage) never re-encodes anything. Memory holds one chunk of embeddings at a time, whatever the data size."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from reranker.core.errors import entrypoint
from reranker.core.outputs import atomic_output
from reranker.core.paths import loading_model, resolve_model
from reranker.mining.embeddings import encode_to_file
from reranker.mining.hard_negatives import embedded_texts
from reranker.params import load_sections


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("split_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    params = load_sections("download", "embed")
    if params.download.shape != "pairs":
        with atomic_output(args.out_dir) as partial:
            partial.mkdir()
        print(f"embed: shape '{params.download.shape}' is not mined; nothing to encode")
        return
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    # 1. The embedding model and the texts the mine stage will search
    embed = params.embed
    with loading_model("embed.model", embed.model):
        model = SentenceTransformer(resolve_model(embed.model))
    columns = ["query", "document"]
    train = pd.read_parquet(args.split_dir / "train.parquet", columns=columns)
    dev = pd.read_parquet(args.split_dir / "dev.parquet", columns=columns)
    texts = embedded_texts(train, dev)
    del train, dev

    # 2. Encode each set as mine_hard_negatives would (normalised, the model's query or document prompt)
    with atomic_output(args.out_dir) as partial:
        partial.mkdir()
        for name, (role, role_texts) in texts.items():
            prompt = embed.query_prompt if role == "query" else embed.corpus_prompt
            encode_to_file(model, role_texts, partial / name, role=role, batch_size=embed.batch_size, prompt=prompt,
                           model_name=embed.model, desc=f"embed: {name.removesuffix('.npy').replace('_', ' ')}")
    counts = {name: len(role_texts) for name, (_, role_texts) in texts.items()}
    print(f"embed: {counts['corpus.npy']} documents, {counts['train_queries.npy']} train and "
          f"{counts['dev_queries.npy']} dev queries encoded in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
