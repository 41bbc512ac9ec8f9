"""Step 6, card: render the model's README.md, in the structure of the sentence-transformers model cards,
from tracked files only (params, metrics, training log, emissions, training pairs), so that a change to the
template re-renders the card without retraining."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import jinja2
import pandas as pd
import yaml

from stages.common import atomic_output, entrypoint, load_params

TEMPLATE = Path(__file__).with_name("card.md.j2")
PRIMARY = "ndcg@10"
DOCS = "https://sbert.net/docs/package_reference/cross_encoder"


def markdown_text(value, limit: int = 300) -> str:
    """Data text inside Markdown: one line, no HTML, no table or emphasis syntax, so a row cannot inject
    markup or break the table it sits in."""
    text = re.sub(r"\s+", " ", str(value)).strip()
    text = text[:limit] + ("…" if len(text) > limit else "")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|#])", r"\\\1", text)


def python_literal(value: str) -> str:
    """A Python string literal that cannot close the surrounding Markdown code fence."""
    return repr(value).replace("`", "\\x60")


def with_delta(value: float, base: float | None) -> str:
    return f"{value:.4f}" if base is None else f"{value:.4f} ({value - base:+.4f})"


def dataset_stats(frame: pd.DataFrame) -> dict:
    """Column types, min/mean/max characters and the label distribution over the first 1000 rows."""
    head = frame.head(1000)
    stats = {}
    for column in head.columns:
        if not pd.api.types.is_numeric_dtype(head[column]):
            lengths = head[column].map(len)
            stats[column] = ("string", f"min: {lengths.min()} characters<br>mean: {lengths.mean():.2f} characters<br>"
                                       f"max: {lengths.max()} characters")
        else:
            shares = head[column].value_counts(normalize=True).sort_index()
            if len(shares) <= 10:
                detail = "<br>".join(f"{value:g}: ~{share:.2%}" for value, share in shares.items())
            else:
                detail = f"min: {head[column].min():.4f}<br>mean: {head[column].mean():.4f}<br>max: {head[column].max():.4f}"
            stats[column] = (str(head[column].dtype), detail)
    return stats


def training_log(log: dict, base: dict, final: dict, evaluators: list[str]) -> list[dict]:
    """One row per logged step (loss and evaluations merged), framed by the base model before training and
    the saved model after it, as step -1 rows."""
    steps: dict[int, dict] = {}
    for entry in log["log_history"]:
        row = steps.setdefault(entry["step"], {"epoch": entry.get("epoch", 0), "step": entry["step"], "values": {}})
        if "loss" in entry:
            row["loss"] = entry["loss"]
        for name in evaluators:
            if f"eval_{name}_{PRIMARY}" in entry:
                row["values"][name] = with_delta(entry[f"eval_{name}_{PRIMARY}"], entry.get(f"eval_{name}_base_{PRIMARY}"))
    def framing(results: dict, side: str) -> dict:
        return {"epoch": -1, "step": -1, "best": False, "values": {
            name: with_delta(results[name][side][PRIMARY], results[name].get("retrieval", {}).get(PRIMARY))
            for name in evaluators if name in results}}
    rows = [framing(base, "model")] + [steps[s] for s in sorted(steps) if "loss" in steps[s] or steps[s]["values"]]
    for row in rows:
        row["best"] = row["step"] == log["best_global_step"]
    return rows + [framing(final, "trained")]


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("train_pairs", "log", "base_metrics", "metrics", "emissions", "out"):
        parser.add_argument(name, type=Path)
    a = parser.parse_args()
    params = load_params()
    log = json.loads(a.log.read_text())
    base = json.loads(a.base_metrics.read_text())
    final = json.loads(a.metrics.read_text())
    emissions = json.loads(a.emissions.read_text())
    pairs = pd.read_parquet(a.train_pairs)
    evaluators = [name for name, value in final.items() if isinstance(value, dict)]

    # 1. Front matter: YAML dumped from a dict, so data text cannot break it
    reranking = params.evaluate.reranking.name
    model_index = [{"task": {"type": "cross-encoder-reranking", "name": "Cross Encoder Reranking"},
                    "dataset": {"name": name.replace("_", " "), "type": name},
                    "metrics": [{"type": m, "value": v, "name": m.capitalize()} for m, v in final[name]["trained"].items()]}
                   for name in evaluators]
    front_matter = {
        "language": [params.card.language], "license": params.card.license,
        "tags": ["sentence-transformers", "cross-encoder", "generated_from_trainer",
                 f"dataset_size:{log['train_samples']}", f"loss:{log['loss']['name']}"],
        "base_model": params.train.base_model,
        **({"datasets": [params.download.source]} if not Path(params.download.source).exists() else {}),
        "pipeline_tag": "text-ranking", "library_name": "sentence-transformers",
        "metrics": list(final[evaluators[0]]["trained"]),
        "co2_eq_emissions": {
            "emissions": emissions["emissions_g"], "energy_consumed": emissions["energy_consumed_kwh"],
            "source": "codecarbon", "training_type": "fine-tuning", "on_cloud": emissions["on_cloud"],
            "cpu_model": emissions["cpu_model"], "ram_total_size": emissions["ram_total_size_gb"],
            "hours_used": round(emissions["hours_used"], 3),
            "hardware_used": f"{emissions['gpu_count']} x {emissions['gpu_model']}" if emissions["gpu_model"] else None,
        },
        "model-index": [{"name": params.card.model_name, "results": model_index}],
    }

    # 2. Usage: the first training query with its first documents
    first_query = pairs["query"].iloc[0]
    usage_docs = pairs.loc[pairs["query"] == first_query, "document"].head(5).tolist()

    # 3. Render
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE.parent), keep_trailing_newline=True,
                                     trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    environment.filters.update(md=markdown_text, py=python_literal, tojson=lambda v: json.dumps(v, indent=2))
    card = environment.get_template(TEMPLATE.name).render(
        front_matter=yaml.safe_dump(front_matter, sort_keys=False, allow_unicode=True).strip(),
        params=params, log=log, final=final, emissions=emissions, docs=DOCS, primary=PRIMARY,
        reranking=reranking if reranking in final else None,
        nano_datasets=[n for n in evaluators if n.startswith("Nano") and not n.startswith("NanoBEIR_")],
        nano_mean=next((n for n in evaluators if n.startswith("NanoBEIR_")), None),
        with_delta=with_delta, evaluators=evaluators, query=first_query, documents=usage_docs,
        columns=list(pairs.columns), stats=dataset_stats(pairs), samples=pairs.head(3).to_dict("records"),
        log_rows=training_log(log, base, final, evaluators),
    )
    with atomic_output(a.out) as partial:
        partial.write_text(card)
    print(f"card: {a.out} ({len(card.splitlines())} lines)")


if __name__ == "__main__":
    main()
