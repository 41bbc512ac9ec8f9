"""Step 6, card: render the model's README.md, in the structure of the sentence-transformers model cards, from
tracked files only (params, metrics, training log, emissions, training data), and put it beside the trained
weights: one folder that is what a user pushes to the hub (`huggingface-cli upload ORG/NAME data/hub`). A change
to the template re-renders the card without retraining."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pandas as pd

from reranker.card.render import render_card
from reranker.errors import entrypoint
from reranker.outputs import atomic_output
from reranker.params import load_params


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("train_data", "log", "base_metrics", "metrics", "emissions", "model_dir", "out_dir"):
        parser.add_argument(name, type=Path)
    parser.add_argument("--export", type=Path, nargs=2, metavar=("DIR", "METRICS"),
                        help="the export stage's model folder and metrics: its variants that passed ship too")
    paths = parser.parse_args()
    export = json.loads(paths.export[1].read_text()) if paths.export else None
    params = load_params()

    # 1. The card, from tracked files
    card = render_card(
        params, log=json.loads(paths.log.read_text()), base=json.loads(paths.base_metrics.read_text()),
        final=json.loads(paths.metrics.read_text()), emissions=json.loads(paths.emissions.read_text()),
        data=pd.read_parquet(paths.train_data), export=export,
    )

    # 2. The hub folder: the trained model's files, with this card in place of the library's own README
    with atomic_output(paths.out_dir) as partial:
        shutil.copytree(paths.model_dir, partial, ignore=shutil.ignore_patterns("README.md"))
        (partial / "README.md").write_text(card)
        # 3. The export variants that passed the quality gate, in the library's layout (onnx/, openvino/); a variant
        # that failed stays in data/export and metrics/export.json only
        for entry in (export or {}).get("variants", {}).values():
            for file in entry.get("files", []) if entry.get("passed") else []:
                (partial / file).parent.mkdir(exist_ok=True)
                shutil.copy2(paths.export[0] / file, partial / file)
    print(f"card: {paths.out_dir}/README.md ({len(card.splitlines())} lines) beside the model's weights")


if __name__ == "__main__":
    main()
