"""Step 2a, embed: encode the queries and the corpus once with the embedding model, into the cache folder
that sentence-transformers' mine_hard_negatives reads, so that changing a sampling param (mine stage)
never re-encodes the corpus."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from reranker.errors import entrypoint
from reranker.model_checks import loading_model
from reranker.model_paths import resolve_model
from reranker.outputs import atomic_output
from reranker.params import load_params


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("split_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    params = load_params()
    if params.download.shape != "pairs":
        with atomic_output(args.out_dir) as partial:
            partial.mkdir()
        print(f"embed: shape '{params.download.shape}' is not mined; nothing to encode")
        return
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    from reranker.mining import mining_corpora, mining_options

    started = time.perf_counter()
    # 1. The embedding model and the texts the mine stage will search
    with loading_model("embed.model", params.embed.model):
        model = SentenceTransformer(resolve_model(params.embed.model))
    train = Dataset.from_parquet(str(args.split_dir / "train.parquet"))
    dev = Dataset.from_parquet(str(args.split_dir / "dev.parquet"))
    train_corpus, full_corpus = mining_corpora(train["document"], dev["document"])

    # 2. Encode into the library's cache. It caches embeddings under a hash of (model, prompt, texts) and offers
    # no call that only encodes; a one-negative mining pass over the exact texts the mine stage uses fills them.
    with atomic_output(args.out_dir) as partial:
        partial.mkdir()
        for queries, corpus in ((train, train_corpus), (dev, full_corpus)):
            mine_hard_negatives(queries, corpus=corpus, num_negatives=1,
                                **mining_options(params.embed, model, partial))
    print(f"embed: {len(full_corpus)} documents and {len(set(train['query'])) + len(set(dev['query']))} queries "
          f"encoded in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
