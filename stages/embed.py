"""Step 2a, embed: encode the queries and the corpus once with the embedding model, into the cache folder
that sentence-transformers' mine_hard_negatives reads, so that changing a sampling param (mine stage)
never re-encodes the corpus."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import mine_hard_negatives

from stages.common import atomic_output, entrypoint, load_params, resolve_model


def mining_corpora(train: Dataset, dev: Dataset) -> tuple[list[str], list[str]]:
    """Train negatives come from the train documents only (dev documents never appear in training, as in
    the reference script); dev candidates come from the whole corpus."""
    train_corpus = list(dict.fromkeys(list(train["document"])))
    return train_corpus, list(dict.fromkeys(train_corpus + list(dev["document"])))


def mining_options(params, model: SentenceTransformer, cache_folder: Path) -> dict:
    """The mine_hard_negatives options that embed and mine share. The library keys its embedding cache on
    model, prompts and texts, so both stages must pass the same ones for mine to find embed's work."""
    return dict(
        model=model, anchor_column_name="query", positive_column_name="document",
        batch_size=params.embed.batch_size, query_prompt=params.embed.query_prompt,
        corpus_prompt=params.embed.corpus_prompt, cache_folder=str(cache_folder), verbose=False,
    )


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("split_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    params = load_params()
    p = params.embed

    started = time.perf_counter()
    with atomic_output(args.out_dir) as partial:
        partial.mkdir()
        if params.download.shape != "pairs":
            print(f"embed: shape '{params.download.shape}' is not mined; nothing to encode")
            return
        model = SentenceTransformer(resolve_model(p.model))
        train = Dataset.from_parquet(str(args.split_dir / "train.parquet"))
        dev = Dataset.from_parquet(str(args.split_dir / "dev.parquet"))
        train_corpus, full_corpus = mining_corpora(train, dev)
        # The library caches embeddings under a hash of (model, prompt, texts) and offers no call that only
        # encodes; a one-negative mining pass over the exact texts the mine stage uses fills those entries.
        for queries, corpus in ((train, train_corpus), (dev, full_corpus)):
            mine_hard_negatives(queries, corpus=corpus, num_negatives=1, **mining_options(params, model, partial))
    print(f"embed: {len(full_corpus)} documents and {len(set(train['query'])) + len(set(dev['query']))} queries "
          f"encoded in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
