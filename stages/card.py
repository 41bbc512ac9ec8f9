"""Step 6, card: render the model's README.md, in the structure of the sentence-transformers model cards,
from tracked files only (params, metrics, training log, emissions, training data), so that a change to the
template re-renders the card without retraining."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from reranker.card.render import render_card
from reranker.errors import entrypoint
from reranker.outputs import atomic_output
from reranker.params import load_params


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("train_data", "log", "base_metrics", "metrics", "emissions", "out"):
        parser.add_argument(name, type=Path)
    paths = parser.parse_args()
    params = load_params()
    card = render_card(
        params, log=json.loads(paths.log.read_text()), base=json.loads(paths.base_metrics.read_text()),
        final=json.loads(paths.metrics.read_text()), emissions=json.loads(paths.emissions.read_text()),
        data=pd.read_parquet(paths.train_data),
    )
    with atomic_output(paths.out) as partial:
        partial.write_text(card)
    print(f"card: {paths.out} ({len(card.splitlines())} lines)")


if __name__ == "__main__":
    main()
