"""Step 11, card: render the model's README.md, in the structure of the sentence-transformers model cards, from
tracked files only (params, metrics, training log, emissions, training data) and the content hashes of what the
model was made from (dvc.lock's entries of the stages before this one: reranker/card/provenance.py), and put it
beside the trained weights: one folder that is what a user pushes to the hub (`hf upload ORG/NAME data/hub`), with
the export variants that passed the gate and their loader. A change to the template re-renders the card without
retraining."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pandas as pd

from reranker.card.gains_picture import gains_svg
from reranker.card.provenance import gather
from reranker.card.render import LOADER_FILE, PROVENANCE_FILE, render_card
from reranker.core.errors import entrypoint
from reranker.core.outputs import atomic_output
from reranker.export import loader
from reranker.params import load_params


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("train_data", "log", "base_metrics", "metrics", "emissions", "model_dir", "out_dir"):
        parser.add_argument(name, type=Path)
    parser.add_argument("--gains", type=Path, help="the evaluate stage's sorted per-query gains, one CSV per set")
    parser.add_argument("--download-metrics", type=Path, help="the download stage's metrics: the training queries "
                        "found in evaluation sets, for the card")
    parser.add_argument("--mine-metrics", type=Path, help="the mine stage's metrics: the false-negative audit")
    parser.add_argument("--export", type=Path, nargs=2, metavar=("DIR", "METRICS"),
                        help="the export stage's model folder and metrics: its variants that passed ship too")
    paths = parser.parse_args()
    export = json.loads(paths.export[1].read_text()) if paths.export else None
    params = load_params()

    # 1. Each reranking set's per-query gains as a picture beside the card
    gains = {csv.stem: pd.read_csv(csv) for csv in sorted(paths.gains.glob("*.csv"))} if paths.gains else {}
    pictures = {name: f"per_query_gains_{name}.svg" for name in gains}

    # 2. The card, from tracked files, and its provenance rows
    provenance = gather(params, paths.model_dir)
    card = render_card(
        params, log=json.loads(paths.log.read_text()), base=json.loads(paths.base_metrics.read_text()),
        final=json.loads(paths.metrics.read_text()), emissions=json.loads(paths.emissions.read_text()),
        data=pd.read_parquet(paths.train_data), pictures=pictures,
        download=json.loads(paths.download_metrics.read_text()) if paths.download_metrics else None,
        provenance=provenance,
        mine=json.loads(paths.mine_metrics.read_text()) if paths.mine_metrics else None,
        export=export,
    )

    # 3. The hub folder: the trained model's files, with this card in place of the library's own README
    with atomic_output(paths.out_dir) as partial:
        shutil.copytree(paths.model_dir, partial, ignore=shutil.ignore_patterns("README.md"))
        (partial / "README.md").write_text(card)
        (partial / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
        for name, frame in gains.items():
            (partial / pictures[name]).write_text(gains_svg(frame, f"{name}: trained vs first stage, ndcg"))
        # 4. The export variants that passed the quality gate, in the library's layout (onnx/, openvino/); a variant
        # that failed stays in data/export and metrics/export.json only
        shipped = [entry for entry in (export or {}).get("variants", {}).values() if entry.get("passed")
                   and entry.get("files")]
        for entry in shipped:
            for file in entry["files"]:
                (partial / file).parent.mkdir(exist_ok=True)
                shutil.copy2(paths.export[0] / file, partial / file)
        # 5. With them, the loader that serves them with nothing but their runtime and the tokenizer
        if shipped:
            shutil.copy2(loader.__file__, partial / LOADER_FILE)
    print(f"card: {paths.out_dir}/README.md ({len(card.splitlines())} lines) beside the model's weights")


if __name__ == "__main__":
    main()
