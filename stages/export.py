"""Step 10, export: build faster CPU variants of the trained model (reranker/export/variants.py: fp32 ONNX with
ONNX Runtime's graph optimizations, int8 ONNX dynamic or calibrated, OpenVINO fp32 and int8 calibrated on in-domain
pairs), check each against the torch model on every reranking set (the quality gate), and time each beside it.
Writes the model folder with every variant (data/export/, where `ExportedCrossEncoder(folder, file_name)` and
sentence-transformers' backends load each) and metrics/export.json; the card stage ships the variants that passed."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from reranker.core.errors import PipelineError, entrypoint
from reranker.core.outputs import atomic_output, write_json
from reranker.evaluation.reranking import reranking_sets, score_candidates
from reranker.export.calibration import calibration_pairs
from reranker.export.gate import compare_with_torch, verdict
from reranker.export.latency import machine, measure, query_batches
from reranker.export.loader import ExportedCrossEncoder
from reranker.export.peak_memory import peak_memory_mb
from reranker.export.variants import VARIANTS, build_variants
from reranker.params import load_sections

TORCH = "torch"


def size_mb(folder: Path, files: list[str]) -> float:
    return round(sum((folder / file).stat().st_size for file in files) / 2**20, 1)


def torch_files(folder: Path) -> list[str]:
    return [path.name for path in folder.iterdir() if path.suffix in (".safetensors", ".bin")]


def run_scores(candidates: pd.DataFrame, run_file: Path) -> np.ndarray:
    """Each candidate's score in a TREC run (qid Q0 docid rank score tag), in the candidates' order."""
    run = pd.read_csv(run_file, sep=" ", header=None, names=["query_id", "q0", "doc_id", "rank", "score", "tag"],
                      dtype={"query_id": str, "doc_id": str, "score": float})
    scores = candidates[["query_id", "doc_id"]].astype(str).merge(run, how="left", on=["query_id", "doc_id"])["score"]
    if scores.isna().any():
        raise PipelineError(f"{run_file} lacks {int(scores.isna().sum())} of the set's candidates: it is not the "
                            "evaluate stage's run of these candidates; run `dvc repro evaluate` first")
    return scores.to_numpy()


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("model_dir", "mine_dir", "retrieve_dir", "runs_dir", "out_dir", "metrics"):
        parser.add_argument(name, type=Path)
    paths = parser.parse_args()
    params = load_sections("export", "evaluate", "train")
    export, evaluate = params.export, params.evaluate
    started = time.perf_counter()
    if not export.variants:  # nothing to build: no model to load, no set to rescore
        with atomic_output(paths.out_dir) as partial:
            partial.mkdir()
        write_json(paths.metrics, {"variants": {}, "recommended": None, "seconds": 0.0})
        print("export: export.variants is empty; nothing to build")
        return
    from sentence_transformers.cross_encoder import CrossEncoder

    with atomic_output(paths.out_dir) as partial, tempfile.TemporaryDirectory() as scratch:
        # 1. In-domain calibration pairs from the training data, for the statically calibrated variants
        static = [name for name in export.variants if VARIANTS[name].calibration == "static"]
        drawn = (calibration_pairs(pd.read_parquet(paths.mine_dir / "train.parquet"), export.calibration_pairs,
                                   export.seed) if static else [])

        # 2. Every variant from one ONNX export of the trained model, into one copy of the model folder
        build_seconds = build_variants(paths.model_dir, partial, export.variants, drawn, export,
                                       params.train.trust_remote_code)

        # 3. The quality gate: every variant scores the candidates of every set that the torch model scored in the
        # evaluate stage (its trained runs hold each candidate's score, at full precision)
        models = {TORCH: CrossEncoder(str(paths.model_dir), trust_remote_code=params.train.trust_remote_code)}
        models |= {name: ExportedCrossEncoder(partial, VARIANTS[name].file_name) for name in export.variants}
        sets = reranking_sets(evaluate, paths.mine_dir, paths.retrieve_dir)
        torch_scores = {name: run_scores(s["candidates"], paths.runs_dir / name / "trained.trec")
                        for name, s in sets.items()}
        results = {}
        for name in export.variants:
            variant = VARIANTS[name]
            quality = {set_name: compare_with_torch(s, torch_scores[set_name],
                                                    score_candidates(models[name], s["candidates"],
                                                                     evaluate.batch_size),
                                                    evaluate.significance)
                       for set_name, s in sets.items()}
            reasons = verdict(quality, export.gate)
            files = variant.files(partial)
            results[name] = {"backend": variant.backend, "precision": variant.precision,
                             "calibration": variant.calibration, "file_name": variant.file_name, "files": files,
                             "size_mb": size_mb(partial, files), "build_seconds": build_seconds[name],
                             "passed": not reasons, "reasons": reasons, "quality": quality}

        # 4. Speed: the dev queries (else the first set's), every model interleaved; then each model's peak memory
        # in a process of its own
        timed = next((s for s in sets.values() if s["kind"] == "reranking"), next(iter(sets.values()), None))
        timings, batches = {}, []
        if timed is not None:
            batches = query_batches(timed["candidates"], export.latency.max_queries)
            # The set's pairs, repeated when it has fewer than throughput_pairs
            pairs = list(zip(timed["candidates"]["query"], timed["candidates"]["document"]))
            pairs = (pairs * (export.latency.throughput_pairs // len(pairs) + 1))[:export.latency.throughput_pairs]
            timings = measure(models, batches, pairs, evaluate.batch_size, export.latency)
            pairs_file = Path(scratch) / "pairs.json"
            pairs_file.write_text(json.dumps(pairs))
            timings[TORCH]["peak_memory_mb"] = peak_memory_mb(paths.model_dir, pairs_file, None, evaluate.batch_size)
            for name in export.variants:
                timings[name]["peak_memory_mb"] = peak_memory_mb(partial, pairs_file, VARIANTS[name].file_name,
                                                                 evaluate.batch_size)

    # 5. The metrics: per variant its gate, size and speed beside the torch model's; the fastest passing one is the
    # card's recommendation
    base = {TORCH: {"backend": "torch", "precision": "fp32",
                    "size_mb": size_mb(paths.model_dir, torch_files(paths.model_dir)), **timings.get(TORCH, {})}}
    for name, entry in results.items():
        entry.update(timings.get(name, {}))
        if TORCH in timings:
            entry["speedup_p50"] = round(timings[TORCH]["p50_ms"] / timings[name]["p50_ms"], 2)
            entry["speedup_pairs_per_second"] = round(timings[name]["pairs_per_second"]
                                                      / timings[TORCH]["pairs_per_second"], 2)
    passed = [name for name, entry in results.items() if entry["passed"]]
    recommended = max(passed, key=lambda name: results[name].get("pairs_per_second", 0.0), default=None)
    gate = export.gate
    write_json(paths.metrics, {
        "machine": machine(),
        "gate": {"min_kendall_tau": gate.min_kendall_tau, "min_top1_unchanged": gate.min_top1_unchanged,
                 "max_loss": gate.max_loss,
                 "rule": "on every set: mean Kendall's tau >= min_kendall_tau, the share of queries whose top "
                         "document is unchanged >= min_top1_unchanged, and the primary metric's delta not a "
                         "significant loss of more than max_loss"},
        "latency": {"queries": len(batches), "candidates_per_query": "each query's set",
                    "warmup_queries": export.latency.warmup_queries, "rounds": export.latency.rounds,
                    "batch_size": evaluate.batch_size, "statistic": "median over rounds",
                    "peak_memory": "a fresh process that loads the model and scores throughput_pairs"},
        "quantization": export.quantization, "calibration_pairs": len(drawn),
        "variants": {**base, **results}, "recommended": recommended,
        "seconds": round(time.perf_counter() - started, 1)})
    for name, entry in results.items():
        print(f"export: {name} {'passed' if entry['passed'] else 'FAILED'} the gate"
              + (f", {entry['speedup_pairs_per_second']}x torch's pairs per second"
                 if "speedup_pairs_per_second" in entry else "")
              + "".join(f"; {reason}" for reason in entry["reasons"]))
    failed = [name for name, entry in results.items() if not entry["passed"]]
    if failed and export.gate.fail_stage:
        raise PipelineError(f"export.gate: {', '.join(failed)} failed the gate (metrics/export.json says why); "
                            "lower the gate's thresholds, drop the variant, or set export.gate.fail_stage: false to "
                            "ship only the variants that pass")


if __name__ == "__main__":
    main()
