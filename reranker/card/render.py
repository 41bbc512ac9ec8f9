"""The model's README.md, in the structure of the sentence-transformers model cards, rendered from tracked files
only (params, metrics, training log, emissions, training data)."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pandas as pd
from huggingface_hub import EvalResult, ModelCardData

from reranker.card.provenance import eval_result_fields, hub_datasets, recorded_in, source_label
from reranker.core.outputs import markdown_text
from reranker.evaluation.baselines import BASELINES
from reranker.evaluation.reranking import direction
from reranker.evaluation.significance import significant
from reranker.training.loss_inputs import learns_teacher_scores
from reranker.training.metric_names import primary_metric

TEMPLATE = Path(__file__).with_name("template.md.j2")
BASELINE_NAMES = {"embedding_model": "Embedding model", "teacher": "Teacher", "base_model": "Base model"}
DOCS = "https://sbert.net/docs/package_reference/cross_encoder"
# reranker/export/loader.py as it ships beside the exported variants: it imports nothing of the pipeline
LOADER_FILE = "exported_cross_encoder.py"
# the provenance rows beside the card, which `rerank verify` reads: the hub shows front matter as metadata, so the
# card keeps there only the keys the hub reads and shows the rows as a table in its body
PROVENANCE_FILE = "provenance.json"
# model-index task of each evaluator kind (the "kind" of each metrics entry), as the library's own cards name them
TASKS = {"reranking": ("cross-encoder-reranking", "Cross Encoder Reranking"),
         "collection": ("cross-encoder-reranking", "Cross Encoder Reranking"),
         "nanobeir": ("cross-encoder-reranking", "Cross Encoder Reranking"),
         "nanobeir_mean": ("cross-encoder-nano-beir", "Cross Encoder Nano BEIR"),
         "classification": ("cross-encoder-binary-classification", "Cross Encoder Binary Classification")}


def python_literal(value: str) -> str:
    """A Python string literal that cannot close the surrounding Markdown code fence."""
    return repr(value).replace("`", "\\x60")


def with_delta(value: float, base: float | None) -> str:
    return f"{value:.4f}" if base is None else f"{value:.4f} ({value - base:+.4f})"


def plain(value):
    """A Parquet cell as Python: list columns arrive as numpy arrays, whose str() drops the commas."""
    return value.tolist() if hasattr(value, "tolist") else value


def spread(sizes: pd.Series, unit: str) -> str:
    return f"min: {sizes.min()} {unit}<br>mean: {sizes.mean():.2f} {unit}<br>max: {sizes.max()} {unit}"


def dataset_stats(frame: pd.DataFrame) -> dict:
    """Column types, min/mean/max characters or list elements, and the label distribution over the first
    1000 rows."""
    head = frame.head(1000)
    stats = {}
    for column, values in head.items():
        if isinstance(plain(values.iloc[0]), list):
            stats[column] = ("list", spread(values.map(len), "elements"))
        elif not pd.api.types.is_numeric_dtype(values):
            stats[column] = ("string", spread(values.map(len), "characters"))
        else:
            shares = values.value_counts(normalize=True).sort_index()
            if len(shares) <= 10:
                detail = "<br>".join(f"{value:g}: ~{share:.2%}" for value, share in shares.items())
            else:
                detail = f"min: {values.min():.4f}<br>mean: {values.mean():.4f}<br>max: {values.max():.4f}"
            stats[column] = (str(values.dtype), detail)
    return stats


def usage_example(frame: pd.DataFrame) -> tuple[str, list[str]]:
    """A training query and up to 5 of its documents, whichever of the three forms the mine stage wrote."""
    first = frame.iloc[0]
    if "documents" in frame:  # list: query, documents, labels
        documents = plain(first["documents"])
    elif "positive" in frame:  # tuple: query, positive, negative_1..n
        documents = [first["positive"]] + [first[c] for c in frame.columns if c.startswith("negative_")]
    else:  # pair: query, document, label, a query's pairs next to each other
        documents = frame.loc[frame["query"] == first["query"], "document"].tolist()
    return first["query"], documents[:5]


def evaluator_at_k(name: str, kind: str, evaluate) -> int:
    """The ndcg/mrr cut-off of evaluator `name` (0 for classification, which has none)."""
    if kind == "collection":
        return next(collection.at_k for collection in evaluate.collections if collection.name == name)
    if kind == "classification":
        return 0
    return (evaluate.reranking if kind == "reranking" else evaluate.nanobeir).at_k


def gain(comparison: dict) -> str:
    """A paired comparison as a card cell: the delta, bold only for a significant gain (its interval excludes 0 and
    p < 0.05), the interval, the p-value and the queries better/worse/same, e.g.
    ``**+0.1234** [+0.0500, +0.1900], p=0.0002, 30/12/8``."""
    delta = f"{comparison['delta']:+.4f}"
    cell = f"[{comparison['ci_low']:+.4f}, {comparison['ci_high']:+.4f}], p={comparison['p_value']:.2g}"
    if "better" in comparison:
        cell += f", {comparison['better']}/{comparison['worse']}/{comparison['same']}"
    if not significant(comparison):
        return f"{delta} {cell} (not significant)"
    return f"**{delta}** {cell}" if comparison["delta"] > 0 else f"{delta} {cell} (worse)"


def set_descriptions(params) -> dict[str, str]:
    """What each reranking set is: its candidates' first stage and depth."""
    descriptions = {}
    if params.evaluate.reranking is not None:
        descriptions[params.evaluate.reranking.name] = (
            f"held-out dev queries of {source_label(params.download.source)}, each reranking its top "
            f"{params.mine.dev_candidates} documents retrieved by the embedding model "
            f"{hub_id(params.embed.model) or params.embed.model}")
    for collection in params.evaluate.collections:
        first_stage = {"bm25": "BM25 (bm25s)", "dense": f"the embedding model {params.embed.model}",
                       "run_file": f"the run file {collection.run_file}"}[collection.first_stage]
        descriptions[collection.name] = (f"{source_label(collection.source)} ({collection.split} judgments), "
                                         f"reranking the top {collection.k} of {first_stage}")
    return descriptions


def hub_id(model: str, given: str | None = None) -> str | None:
    """A model param as the hub names it: `given` (card.base_model_id) if set, else the param itself when it is a
    hub id; None for a local folder or a `pkg:` model without a given id."""
    if given:
        return given
    looks_local = model.startswith(("pkg:", ".", "/", "~")) or model.count("/") != 1 or Path(model).exists()
    return None if looks_local else model


def reference(results: dict, name: str, side: str) -> dict:
    """What a `side` value is compared with: the candidates' own order for reranking; a classifier has no such
    order, so the base model for the trained side, and nothing for the base model itself."""
    return results[name].get("first_stage") or (results[name].get("base_model", {}) if side == "trained" else {})


def best_runs(entry: dict, runs: list[str], metric: str) -> set[str]:
    """The rankings of a metrics row with its highest value (ties share it): the only cells the card bolds.

    Example: ``best_runs({"first_stage": {"ndcg@10": 0.5}, "trained": {"ndcg@10": 0.6}}, ["first_stage", "trained"],
    "ndcg@10")`` is ``{"trained"}``.
    """
    values = {run: round(entry[run][metric], 4) for run in runs if metric in entry.get(run, {})}
    top = max(values.values(), default=None)
    return {run for run, value in values.items() if value == top}


def limitations(final: dict, primary: dict[str, str], baseline_names: dict[str, str], alpha: float) -> list[str]:
    """The card's Limitations, from the evaluation: per reranking set, each ranking the trained model is
    significantly below or not significantly different from on the set's primary metric."""
    lines = []
    names = {"first_stage": "the first stage",
             **{run: f"the {label.lower()}" for run, label in baseline_names.items()}}
    for name, entry in final.items():
        if not isinstance(entry, dict) or "vs_first_stage" not in entry:
            continue
        metric = primary[name]
        below, level = [], []
        for run, label in names.items():
            comparison = entry.get(f"vs_{run}", {}).get(metric)
            if comparison is None:
                continue
            text = f"{label} ({comparison['delta']:+.4f} [{comparison['ci_low']:+.4f}, {comparison['ci_high']:+.4f}])"
            verdict = direction(comparison, alpha)
            if verdict == "worse":
                below.append(text)
            elif verdict == "no significant difference":
                level.append(text)
        if below:
            lines.append(f"On {markdown_text(name)}, its {metric} is significantly below {listed(below)}.")
        if level:
            lines.append(f"On {markdown_text(name)}, its {metric} is not significantly different from "
                         f"{listed(level)}.")
    return lines


def listed(items: list[str]) -> str:
    """Example: ``listed(["a", "b", "c"])`` is "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def training_log(log: dict, base: dict, final: dict, primary: dict[str, str]) -> list[dict]:
    """One row per logged step (loss, validation loss and evaluations merged), framed by the base model
    before training and the saved model after it (`framing` names them in place of an epoch and a step)."""
    steps: dict[int, dict] = {}
    for entry in log["log_history"]:
        row = steps.setdefault(entry["step"], {"epoch": entry.get("epoch", 0), "step": entry["step"], "values": {}})
        row.update({key: entry[key] for key in ("loss", "eval_loss") if key in entry})
        for name, metric in primary.items():
            if f"eval_{name}_{metric}" in entry:
                baseline = entry.get(f"eval_{name}_base_{metric}", reference(final, name, "trained").get(metric))
                row["values"][name] = with_delta(entry[f"eval_{name}_{metric}"], baseline)

    def framing(results: dict, side: str) -> dict:
        label = "base model, before training" if side == "base_model" else "saved model"
        return {"framing": label, "epoch": None, "step": None, "best": False, "values": {
            name: with_delta(results[name][side][metric], reference(results, name, side).get(metric))
            for name, metric in primary.items() if side in results.get(name, {})}}
    logged = [steps[s] for s in sorted(steps) if {"loss", "eval_loss"} & set(steps[s]) or steps[s]["values"]]
    for row in logged:
        row["best"] = row["step"] == log["best_global_step"]
    before = [framing(base, "base_model")] if any("base_model" in base.get(name, {}) for name in primary) else []
    return [*before, *logged, framing(final, "trained")]


def evaluation_overlap(download: dict | None) -> list[str]:
    """One card line per evaluation set from the download stage's metrics: how many of its queries the model was
    trained on (0 in any run that completes), how many were found and their rows dropped, or why it was not
    compared. Empty without those metrics."""
    if not download:
        return []
    lines = []
    for name, entry in [*download["evaluation"].items(), ("dev", download["dev"])]:
        if not entry["compared"]:
            lines.append(f"{markdown_text(name)}: not compared ({markdown_text(entry['note'])})")
            continue
        line = f"{markdown_text(name)}: {entry['in_training']} of {entry['queries']}"
        if entry["dropped_rows"]:
            line += (f" ({entry['found']} found in the training data; their {entry['dropped_rows']} training rows "
                     "dropped)")
        lines.append(line)
    return lines


def judged_line(entry: dict) -> str:
    """A reranking set's judged@k beside its gains, in words; "" when the metrics have none.

    Example: ``judged_line({"judged": {"measure": "judged@10", "first_stage": 0.1, "embedding_model": 0.1,
    "trained": 0.09}})`` says that about a tenth of the top 10 is judged."""
    judged = entry.get("judged")
    if not judged:
        return ""
    runs = [("first stage", "first_stage"), *((BASELINE_NAMES[run].lower(), run) for run in BASELINES),
            ("trained", "trained")]
    shares = ", ".join(f"{label} {judged[run]:.4f}" for label, run in runs if run in judged)
    return (f"{judged['measure']} (the share of the top documents with any judgment): {shares}. The measures count "
            "an unjudged document as not relevant: where this is low, a gain may hide relevant documents nobody "
            "judged (the evaluate stage lists them in reports/unjudged/).")


def fused_label(fused: dict) -> str:
    """The name of a set's fused ranking (evaluate.fusion) on the card.

    Example: ``fused_label({"first_stage_weight": 0.3})`` is ``"Fusion with the first stage at weight 0.3"``."""
    return f"Fusion with the first stage at weight {fused['first_stage_weight']:g}"


def false_negatives_line(mine_metrics: dict | None) -> str:
    """The mine stage's false-negative audit in words: suspects, the policy and, from reviewed suspects, the
    estimated false-negative rate with its 95% Wilson interval; "" without an audit."""
    audit = (mine_metrics or {}).get("suspects")
    if not audit:
        return ""
    line = (f"{audit['suspects']:,} of {audit['negatives_audited']:,} mined negatives looked relevant to the "
            f"audit's rules ({audit['queries_affected']:,} queries); policy `{audit['policy']}`.")
    rate = audit.get("false_negative_rate", {})
    if rate.get("reviewed"):
        line += (f" Of {rate['reviewed']} reviewed, {rate['relevant']} were relevant: an estimated "
                 f"{rate['rate']:.1%} of suspects are false negatives (95% Wilson interval {rate['ci_low']:.1%} to "
                 f"{rate['ci_high']:.1%}).")
    return line


def export_rows(export: dict | None) -> list[dict]:
    """The card's rows of the export variants: the torch model first, then each variant with its gate, size,
    ranking agreement and quality delta on each set (primary metric, with its interval) and speed. `export` is
    metrics/export.json."""
    if not export:
        return []
    rows = []
    for name, entry in export["variants"].items():
        quality = entry.get("quality", {})
        rows.append({"name": name, "file_name": entry.get("file_name"), "size_mb": entry["size_mb"],
                     "passed": entry.get("passed", True),
                     "agreement": [f"{set_name}: {q['kendall_tau']:.3f} / {q['top1_unchanged']:.0%}"
                                   for set_name, q in quality.items()],
                     "deltas": [f"{set_name}: {gain(q['delta'][q['primary']])}" for set_name, q in quality.items()],
                     "p50_ms": entry.get("p50_ms"), "p95_ms": entry.get("p95_ms"),
                     "pairs_per_second": entry.get("pairs_per_second"),
                     "speedup": entry.get("speedup_pairs_per_second"),
                     "peak_memory_mb": entry.get("peak_memory_mb")})
    return rows


def render_card(params, log: dict, base: dict, final: dict, emissions: dict, data: pd.DataFrame,
                pictures: dict[str, str] | None = None, download: dict | None = None,
                provenance: list[dict] | None = None, mine: dict | None = None, export: dict | None = None) -> str:
    """The card's Markdown: `params` the loaded params, `log` the train stage's log, `base` and `final` the two
    evaluate stages' metrics, `emissions` the train stage's, `data` the training data the mine stage wrote,
    `pictures` each reranking set's per-query gains picture (a file name beside the card), `download` the download
    stage's metrics (the training queries found in evaluation sets), `provenance` the rows of
    reranker/card/provenance.py (None: a card without its provenance), `mine` the mine stage's metrics (its
    false-negative audit), `export` the export stage's metrics (None: no variants section)."""
    evaluators = [name for name, value in final.items() if isinstance(value, dict)]
    kinds = {name: final[name]["kind"] for name in evaluators}
    primary = {name: primary_metric(kind, evaluator_at_k(name, kind, params.evaluate), params.train.num_labels)
               for name, kind in kinds.items()}

    # 1. Front matter through huggingface_hub's card data, so the hub validates what is written: the model-index
    # holds each evaluator's trained metrics
    eval_results = [EvalResult(task_type=TASKS[kinds[name]][0], task_name=TASKS[kinds[name]][1],
                               dataset_name=name.replace("_", " "), metric_type=metric, metric_value=value,
                               metric_name=metric.replace("_", " ").title(),
                               **{"dataset_type": name, **eval_result_fields(name, provenance or [])})
                    for name in evaluators for metric, value in final[name]["trained"].items()]
    card_data = ModelCardData(
        language=[params.card.language], license=params.card.license,
        tags=["sentence-transformers", "cross-encoder", "generated_from_trainer",
              f"dataset_size:{log['train_samples']}", f"loss:{log['loss']['name']}"],
        base_model=hub_id(params.train.base_model, params.card.base_model_id),
        datasets=(hub_datasets(provenance) if provenance is not None
                  else None if Path(params.download.source).exists() else [params.download.source]),
        pipeline_tag="text-ranking", library_name="sentence-transformers",
        metrics=list(final[evaluators[0]]["trained"]), model_name=params.card.model_name, eval_results=eval_results,
        co2_eq_emissions={
            "emissions": emissions["emissions_g"], "energy_consumed": emissions["energy_consumed_kwh"],
            "source": "codecarbon", "training_type": "fine-tuning", "on_cloud": emissions["on_cloud"],
            "cpu_model": emissions["cpu_model"], "ram_total_size": emissions["ram_total_size_gb"],
            "hours_used": round(emissions["hours_used"], 3),
            "hardware_used": (f"{emissions['gpu_count']} x {emissions['gpu_model']}" if emissions["gpu_model"]
                              else None),
        },
    )

    # 2. Usage and dataset: one query with its documents; the first rows as samples
    query, documents = usage_example(data)
    samples = [{column: plain(value) for column, value in row.items()} for row in data.head(3).to_dict("records")]

    # 3. Render: the template has one section per evaluator kind
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE.parent), keep_trailing_newline=True,
                                     trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    environment.filters.update(md=markdown_text, py=python_literal, tojson=lambda value: json.dumps(value, indent=2))
    return environment.get_template(TEMPLATE.name).render(
        front_matter=card_data.to_yaml().strip(), gain=gain, set_descriptions=set_descriptions(params),
        base_model=card_data.base_model or params.train.base_model,
        params=params, log=log, final=final, emissions=emissions, docs=DOCS, primary=primary,
        cell=lambda name, metric: with_delta(final[name]["trained"][metric],
                                             reference(final, name, "trained").get(metric)),
        by_kind={kind: [name for name in evaluators if kinds[name] == kind] for kind in TASKS},
        evaluators=evaluators, query=query, documents=documents,
        columns=list(data.columns), stats=dataset_stats(data), samples=samples,
        log_rows=training_log(log, base, final, primary),
        baselines={name: [run for run in BASELINES if run in final[name]] for name in evaluators},
        baseline_names=BASELINE_NAMES, base_is_reranker=base.get("base_model_is_reranker", False),
        pictures=pictures or {},
        eval_loss=any("eval_loss" in entry for entry in log["log_history"]),
        provenance=provenance, recorded_in=recorded_in, training_data=source_label(params.download.source),
        best_runs=best_runs, limitations=limitations(final, primary, BASELINE_NAMES,
                                                     1 - params.evaluate.significance.confidence),
        judged_line=judged_line, fused_label=fused_label, false_negatives=false_negatives_line(mine),
        teacher_labels=learns_teacher_scores(log["loss"]["name"], params.download.shape, params.mine.teacher),
        overlap=evaluation_overlap(download),
        export=export, export_rows=export_rows(export), loader_file=LOADER_FILE, provenance_file=PROVENANCE_FILE,
    )
