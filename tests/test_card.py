"""The card stage on fixed metric, log, emissions and data files: no pipeline run needed."""

from __future__ import annotations

import json
import re
import shutil
import sys

import pandas as pd
import yaml

from conftest import ROOT, SHARED_DATA, reads_shared, set_params, skip_without_shared
from reranker.card.render import dataset_stats, usage_example
from stages import card

FIXTURES = ROOT / "tests/fixtures/card"


NANOBEIR = {"dataset_id": str(SHARED_DATA / "nano-local"), "dataset_names": ["climatefever"], "rerank_k": 4,
            "at_k": 10,
            "always_rerank_positives": True}


def render(tmp_path, monkeypatch, case=FIXTURES, overrides: dict | None = None) -> str:
    """The card of one fixture case (a folder of train.parquet, log.json and the two metrics files), rendered
    into a hub folder beside a stand-in model folder."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    set_params(tmp_path, {"tokenize.max_length": 64, "evaluate.nanobeir": NANOBEIR, "evaluate.collections": [],
                          "download.source": str(ROOT / "sample/qa"),
                          **(overrides or {})})
    if reads_shared((tmp_path / "params.yaml").read_text()):
        skip_without_shared()
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "README.md").write_text("the library's own card")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["card", *(str(case / name) for name in (
        "train.parquet", "log.json", "evaluate_base.json", "evaluate.json")), str(FIXTURES / "emissions.json"),
        str(model), str(tmp_path / "hub")])
    card.main()
    assert (tmp_path / "hub/model.safetensors").read_bytes() == b"weights"
    return (tmp_path / "hub/README.md").read_text()


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_front_matter_is_yaml_with_a_valid_model_index(tmp_path, monkeypatch):
    text = render(tmp_path, monkeypatch)
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["language"] == ["en"] and meta["license"] == "apache-2.0"
    assert "dataset_size:246" in meta["tags"] and "loss:BinaryCrossEntropyLoss" in meta["tags"]
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"  # card.base_model_id, for pkg:
    assert meta["metrics"] == ["map", "mrr@10", "ndcg@10"]
    emissions = meta["co2_eq_emissions"]
    assert emissions["source"] == "codecarbon" and emissions["emissions"] > 0 and emissions["energy_consumed"] > 0
    (index,) = meta["model-index"]
    assert index["name"]
    assert [r["dataset"]["type"] for r in index["results"]] == ["dev", "NanoClimateFEVER_R4", "NanoBEIR_R4_mean"]
    for result in index["results"]:
        assert set(result) == {"task", "dataset", "metrics"} and result["task"]["type"]
        assert result["dataset"]["name"] and result["dataset"]["type"]
        for metric in result["metrics"]:
            assert set(metric) == {"type", "value", "name"} and isinstance(metric["value"], float)


def test_sections_tables_and_best_step(tmp_path, monkeypatch):
    text = render(tmp_path, monkeypatch)
    headings = [line for line in text.splitlines() if line.startswith("#")]
    for heading in ("## Model Details", "### Model Description", "## Usage", "## Evaluation", "### Metrics",
                    "#### Cross Encoder Reranking", "#### Cross Encoder Nano BEIR", "## Training Details",
                    "### Training Dataset", "### Training Hyperparameters", "#### Non-Default Hyperparameters",
                    "#### All Hyperparameters", "### Training Logs", "### Environmental Impact",
                    "### Training Hardware", "### Framework Versions", "## Citation"):
        assert heading in headings, heading
    # dev metrics: each run, and the gains with interval and p-value; a gain whose interval holds 0 is not bold
    assert ("| ndcg@10 | **1.0000** | 0.4239 | 0.4338 | -0.5662 [-0.6162, -0.5162], p=0.0001 (worse) "
            "| +0.0099 [-0.0201, +0.0399], p=0.41 (not significant) |") in text
    assert "| map | **1.0000** | 0.2437 | 0.2562 |" in text and "randomization" in text  # bold: a row's best
    limitations = section(text, "## Limitations", "## Training Details")
    assert "* On dev, its ndcg@10 is significantly below the first stage (-0.5662 [-0.6162, -0.5162])." in limitations
    assert "* On dev, its ndcg@10 is not significantly different from the base model (+0.0099" in limitations
    # training log: base model first, the saved step (16) bold, the final model last
    log = text[text.index("### Training Logs"):text.index("### Environmental Impact")]
    rows = [line for line in log.splitlines() if line.startswith("| ")][1:]
    assert rows[0].startswith("| base model, before training | - | - | 0.4239 (-0.5761) |")
    assert [row for row in rows if "**" in row] == [
        "| **1.0000** | **16** | **-** | **0.4338 (-0.5662)** | **-** | **-** |"]
    assert rows[-1].startswith("| saved model | - | - | 0.4338 (-0.5662) | 0.7515 (+0.4166) |")
    assert "- **Energy Consumed**: 0.001 kWh" in text and "- **CPU Model**: AMD EPYC" in text
    assert '"pos_weight": 3' in text and "- `learning_rate`: 5e-05" in text


def test_fused_ranking_has_its_own_table_beside_the_trained_model(tmp_path, monkeypatch):
    case = tmp_path / "case"
    shutil.copytree(FIXTURES, case, ignore=shutil.ignore_patterns("classification", "listwise"))
    metrics = json.loads((case / "evaluate.json").read_text())
    comparison = {"delta": 0.02, "ci_low": 0.01, "ci_high": 0.03, "p_value": 0.002, "better": 5, "worse": 1,
                  "same": 2}
    worse = {"delta": -0.5, "ci_low": -0.6, "ci_high": -0.4, "p_value": 0.0001, "better": 0, "worse": 8, "same": 0}
    metrics["dev"]["fused"] = {"first_stage_weight": 0.3, "means": {"map": 0.27, "mrr@10": 0.28, "ndcg@10": 0.45},
                               **{f"vs_{other}": {measure: worse if other == "first_stage" else comparison
                                                  for measure in ("map", "mrr@10", "ndcg@10")}
                                  for other in ("first_stage", "base_model", "trained")}}
    (case / "evaluate.json").write_text(json.dumps(metrics))
    (tmp_path / "plain").mkdir()
    (tmp_path / "fused").mkdir()
    plain = render(tmp_path / "plain", monkeypatch)
    text = render(tmp_path / "fused", monkeypatch, case)
    assert "Fusion with the first stage at weight 0.3 (`evaluate.fusion`)" in text
    assert "0.3 × first stage + 0.7 × trained" in text
    assert ("| Metric | Fusion with the first stage at weight 0.3 | Fused vs first stage | Fused vs base model "
            "| Fused vs trained |") in text
    assert ("| ndcg@10 | 0.4500 | -0.5000 [-0.6000, -0.4000], p=0.0001, 0/8/0 (worse) "
            "| **+0.0200** [+0.0100, +0.0300], p=0.002, 5/1/2 | **+0.0200** [+0.0100, +0.0300], p=0.002, 5/1/2 |") \
        in text
    fused_table = section(text, "| Metric | Fusion with", "\n\n").splitlines()
    assert len(fused_table) == 5 and len({unescaped_pipes(line) for line in fused_table}) == 1, fused_table
    # the trained model's table is the same as without fusion, and the fused one follows it
    trained_table = section(plain, "| Metric | First stage |", "\n\n")
    assert trained_table in text and text.index(trained_table) < text.index("| Metric | Fusion with")
    assert "Fusion with" not in plain and "Fused vs" not in plain
    # the model-index holds the model's own results only
    assert yaml.safe_load(text.split("---\n")[1])["model-index"] == yaml.safe_load(plain.split("---\n")[1])[
        "model-index"]


def test_data_text_cannot_inject_html_or_break_markdown(tmp_path, monkeypatch):
    text = render(tmp_path, monkeypatch)
    body = text.split("---\n", 2)[2]
    # outside code blocks (where text is inert, and the usage snippet must keep it verbatim) no raw HTML
    prose = re.sub(r"```.*?```", "", body, flags=re.DOTALL)
    assert "<script>" not in prose and "<b>html</b>" not in prose and "&lt;script&gt;" in prose
    # every table keeps its column count, the hostile row included
    for table in re.findall(r"((?:^ *\|.*\n)+)", body, re.MULTILINE):
        counts = {unescaped_pipes(line) for line in table.splitlines()}
        assert len(counts) == 1, table
    # code fences stay balanced: the fence inside the data row was neutralised
    assert body.count("```") % 2 == 0
    usage = body[body.index("```python"):body.index("## Evaluation")]
    assert "alert" in usage and usage.count("```") == 2


def section(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end, text.index(start))]


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ")]


# As recipe pairs-continue-minilm-l6: labelled pairs, BinaryCrossEntropyLoss, only CrossEncoderClassificationEvaluator
CLASSIFICATION = {"evaluate.reranking": None, "evaluate.nanobeir": None, "evaluate.classification": {"name": "eval"},
                  "train.evaluators": ["classification"], "train.loss_args": {},
                  "train.args.metric_for_best_model": "eval_eval_average_precision"}


def test_classification_card(tmp_path, monkeypatch):
    text = render(tmp_path, monkeypatch, FIXTURES / "classification", CLASSIFICATION)
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["metrics"] == ["accuracy", "accuracy_threshold", "f1", "f1_threshold", "precision", "recall",
                               "average_precision"]
    (result,) = meta["model-index"][0]["results"]
    assert result["task"] == {"type": "cross-encoder-binary-classification",
                              "name": "Cross Encoder Binary Classification"}
    assert result["dataset"]["type"] == "eval"
    assert {"type": "average_precision", "value": 0.9072, "name": "Average Precision"} in result["metrics"]

    metrics = section(text, "### Metrics", "## Training Details")
    assert "#### Cross Encoder Binary Classification" in metrics and "CrossEncoderClassificationEvaluator" in metrics
    assert "#### Cross Encoder Reranking" not in metrics and "Nano BEIR" not in metrics
    # no candidate order to compare with: the difference is to the base model; the primary metric bold
    assert "| **average_precision** | **0.9072 (+0.0123)** |" in metrics
    assert "| accuracy | 0.8988 (+0.0176) |" in metrics
    assert [row for row in table_rows(metrics) if "**" in row] == ["| **average_precision** | **0.9072 (+0.0123)** |"]

    log = section(text, "### Training Logs", "### Environmental Impact")
    header, *rows = table_rows(log)
    assert header == "| Epoch | Step | Training Loss | eval_average_precision |"
    assert rows[0] == "| base model, before training | - | - | 0.8949 |"  # the base model: nothing to compare it with
    assert "| 0.5000 | 4 | 0.3334 | 0.8956 (+0.0007) |" in rows
    assert [row for row in rows if "**" in row] == ["| **1.0000** | **8** | **-** | **0.9072 (+0.0123)** |"]
    assert rows[-1] == "| saved model | - | - | 0.9072 (+0.0123) |"
    # pair data: the usage snippet takes the first query's documents
    usage = section(text, "```python", "## Evaluation")
    assert usage.count("'It is a bright orange backpack with a small pink strawberry charm.'") == 4
    assert "# (3,)" in usage


# The msmarco-listmle-minilm-l12 and msmarco-bce-gte-multilingual recipes mixed: listwise rows, NanoBEIR only, the
# validation loss logged at each evaluation
LISTWISE = {"evaluate.reranking": None, "train.evaluators": ["nanobeir"], "train.loss": "ListNetLoss",
            "train.loss_args": {}, "download.shape": "listwise",
            "download.source": str(SHARED_DATA / "climate-fever/train.parquet"),
            "download.columns": {"query": "query", "documents": "docs", "labels": "labels"},
            # the fixture's metrics name NanoMSMARCO and NanoNFCorpus; params must name collections that exist here
            "evaluate.nanobeir.dataset_names": ["climatefever"], "evaluate.nanobeir.rerank_k": 100,
            "train.args.metric_for_best_model": "eval_NanoBEIR_R100_mean_ndcg@10"}


def test_listwise_nanobeir_card_with_validation_loss(tmp_path, monkeypatch):
    text = render(tmp_path, monkeypatch, FIXTURES / "listwise", LISTWISE)
    meta = yaml.safe_load(text.split("---\n")[1])
    assert [(r["dataset"]["type"], r["task"]["type"]) for r in meta["model-index"][0]["results"]] == [
        ("NanoMSMARCO_R100", "cross-encoder-reranking"), ("NanoNFCorpus_R100", "cross-encoder-reranking"),
        ("NanoBEIR_R100_mean", "cross-encoder-nano-beir")]

    metrics = section(text, "### Metrics", "## Training Details")
    assert metrics.count("#### Cross Encoder Reranking") == 1  # the per-dataset NanoBEIR table, no dev section
    assert "* Datasets: NanoMSMARCO\\_R100, NanoNFCorpus\\_R100" in metrics
    assert "| **ndcg@10** | **0.6561 (+0.1157)** | **0.3777 (+0.0527)** |" in metrics
    assert "| **ndcg@10** | **0.5169 (+0.0842)** |" in metrics and "Binary Classification" not in metrics

    dataset = section(text, "### Training Dataset", "### Training Hyperparameters")
    assert "| type    | string | list | list |" in dataset
    assert "<li>min: 3 elements</li><li>mean: 4.67 elements</li><li>max: 6 elements</li>" in dataset
    assert "<code>\\[1.0, 1.0, 0.0\\]</code>" in dataset  # a list cell, commas kept

    log = section(text, "### Training Logs", "### Environmental Impact")
    header, *rows = table_rows(log)
    assert header == ("| Epoch | Step | Training Loss | Validation Loss | NanoMSMARCO\\_R100_ndcg@10 |"
                      " NanoNFCorpus\\_R100_ndcg@10 | NanoBEIR\\_R100\\_mean_ndcg@10 |")
    assert rows[0] == ("| base model, before training | - | - | - | 0.2977 (-0.2427) | 0.1830 (-0.1420) "
                       "| 0.2404 (-0.1923) |")
    assert "| 0.4000 | 4 | 0.2125 | - | - | - | - |" in rows
    assert [row for row in rows if "**" in row] == [
        "| **0.5000** | **5** | **-** | **0.1367** | **0.6561 (+0.1157)** | **0.3777 (+0.0527)** "
        "| **0.5169 (+0.0842)** |"]
    assert "| 1.0000 | 10 | - | 0.1412 | 0.6430 (+0.1026) | 0.3701 (+0.0451) | 0.5066 (+0.0739) |" in rows
    assert rows[-1] == "| saved model | - | - | - | 0.6561 (+0.1157) | 0.3777 (+0.0527) | 0.5169 (+0.0842) |"
    # list data: the usage snippet takes the first row's documents
    usage = section(text, "```python", "## Evaluation")
    assert usage.count("'is dna acidic'") == 4 and "# (3,)" in usage


def test_tuple_rows_give_statistics_and_a_usage_example():
    frame = pd.DataFrame({"query": ["q1", "q2"], "positive": ["p1", "p2"], "negative_1": ["n1", "n2"],
                          "negative_2": ["m1", "m2"], "label": [[0.9, 0.1, 0.2], [0.8, 0.3, 0.0]]})
    assert usage_example(frame) == ("q1", ["p1", "n1", "m1"])
    stats = dataset_stats(frame)
    assert stats["negative_2"][0] == "string" and stats["label"] == (
        "list", "min: 3 elements<br>mean: 3.00 elements<br>max: 3 elements")
