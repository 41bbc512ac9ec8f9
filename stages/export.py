"""Step 7, export: build faster CPU variants of the trained model (ONNX, graph-optimized ONNX, dynamic int8 ONNX,
OpenVINO, static int8 OpenVINO calibrated on in-domain pairs) with sentence-transformers' own export functions,
check each against the torch model on every reranking set (the quality gate), and time each beside it. Writes the
model folder with every variant (data/export/, where `CrossEncoder(folder, backend=..., model_kwargs={"file_name":
...})` loads each) and metrics/export.json; the card stage ships the variants that passed."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from reranker.errors import PipelineError, entrypoint
from reranker.evaluation.reranking import reranking_sets, score_candidates
from reranker.export.calibration import calibration_pairs, write_calibration
from reranker.export.gate import compare_with_torch, verdict
from reranker.export.latency import machine, measure, query_batches
from reranker.export.variants import VARIANTS, build_variants, load_variant
from reranker.outputs import atomic_output, write_json
from reranker.params import load_sections

TORCH = "torch"


def size_mb(folder: Path, files: list[str]) -> float:
    return round(sum((folder / file).stat().st_size for file in files) / 2**20, 1)


def torch_files(folder: Path) -> list[str]:
    return [path.name for path in folder.iterdir() if path.suffix in (".safetensors", ".bin")]


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("model_dir", "mine_dir", "retrieve_dir", "out_dir", "metrics"):
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
        # 1. In-domain calibration pairs from the training data, for the statically quantized variant
        calibration, calibrated_on = None, 0
        if "openvino-int8" in export.variants:
            drawn = calibration_pairs(pd.read_parquet(paths.mine_dir / "train.parquet"), export.calibration_pairs,
                                      export.seed)
            calibration, calibrated_on = write_calibration(drawn, Path(scratch) / "calibration"), len(drawn)

        # 2. Every variant, with the library's export functions, into one copy of the model folder
        build_seconds = build_variants(paths.model_dir, partial, export.variants, calibration, export,
                                       params.train.trust_remote_code)

        # 3. The quality gate: every variant and the torch model rerank the same candidates of every set
        models = {TORCH: CrossEncoder(str(paths.model_dir), trust_remote_code=params.train.trust_remote_code)}
        models |= {name: load_variant(partial, VARIANTS[name], export.quantization, params.train.trust_remote_code)
                   for name in export.variants}
        sets = reranking_sets(evaluate, paths.mine_dir, paths.retrieve_dir)
        torch_scores = {name: score_candidates(models[TORCH], s["candidates"], evaluate.batch_size)
                        for name, s in sets.items()}
        results = {}
        for name in export.variants:
            variant = VARIANTS[name]
            quality = {set_name: compare_with_torch(s, torch_scores[set_name],
                                                    score_candidates(models[name], s["candidates"],
                                                                     evaluate.batch_size),
                                                    evaluate.significance)
                       for set_name, s in sets.items()}
            reasons = verdict(quality, export.gate.max_loss)
            results[name] = {"backend": variant.backend, "file_name": variant.file_name(export.quantization),
                             "files": variant.files(export.quantization),
                             "size_mb": size_mb(partial, variant.files(export.quantization)),
                             "build_seconds": build_seconds[name], "passed": not reasons, "reasons": reasons,
                             "quality": quality}

        # 4. Latency and throughput: the dev queries (else the first set's), every model interleaved
        timed = next((s for s in sets.values() if s["kind"] == "reranking"), next(iter(sets.values()), None))
        timings, batches = {}, []
        if timed is not None and export.variants:
            batches = query_batches(timed["candidates"], export.latency.max_queries)
            # The set's pairs, repeated when it has fewer than throughput_pairs
            pairs = list(zip(timed["candidates"]["query"], timed["candidates"]["document"]))
            pairs = (pairs * (export.latency.throughput_pairs // len(pairs) + 1))[:export.latency.throughput_pairs]
            timings = measure(models, batches, pairs, evaluate.batch_size, export.latency)

    # 5. The metrics: per variant its gate, size and timing beside the torch model's; the fastest passing one is
    # the card's recommendation
    base = {TORCH: {"backend": "torch", "size_mb": size_mb(paths.model_dir, torch_files(paths.model_dir)),
                    **timings.get(TORCH, {})}}
    for name, entry in results.items():
        entry.update(timings.get(name, {}))
        if TORCH in timings:
            entry["speedup_p50"] = round(timings[TORCH]["p50_ms"] / timings[name]["p50_ms"], 2)
            entry["speedup_pairs_per_second"] = round(timings[name]["pairs_per_second"]
                                                      / timings[TORCH]["pairs_per_second"], 2)
    passed = [name for name, entry in results.items() if entry["passed"]]
    recommended = min(passed, key=lambda name: results[name].get("p50_ms", float("inf")), default=None)
    write_json(paths.metrics, {
        "machine": machine(), "gate": {"max_loss": export.gate.max_loss, "rule": "the lower bound of each set's "
                                       "primary metric interval versus the torch model is at least -max_loss"},
        "latency": {"queries": len(batches), "candidates_per_query": "each query's set",
                    "warmup_queries": export.latency.warmup_queries, "rounds": export.latency.rounds,
                    "batch_size": evaluate.batch_size, "statistic": "median over rounds"},
        "quantization": export.quantization, "calibration_pairs": calibrated_on,
        "variants": {**base, **results}, "recommended": recommended,
        "seconds": round(time.perf_counter() - started, 1)})
    for name, entry in results.items():
        print(f"export: {name} {'passed' if entry['passed'] else 'FAILED'} the gate"
              + (f", {entry['speedup_p50']}x torch's p50 latency" if "speedup_p50" in entry else "")
              + "".join(f"; {reason}" for reason in entry["reasons"]))
    failed = [name for name, entry in results.items() if not entry["passed"]]
    if failed and export.gate.fail_stage:
        raise PipelineError(f"export.gate: {', '.join(failed)} lost more than {export.gate.max_loss:g} against the "
                            "torch model (metrics/export.json says where); raise export.gate.max_loss, drop the "
                            "variant, or set export.gate.fail_stage: false to ship only the variants that pass")


if __name__ == "__main__":
    main()
