"""The export variants side by side: size, speed against the PyTorch model, peak memory and the gate's figures of
each, as the export stage measured them in one run (metrics/export.json), in a Markdown table for the benchmarks
page, with the goal's ratio: the best int8 variant that passed the gate against PyTorch fp32 in pairs per second.

Examples::

    dvc exp run -S 'export.variants=[onnx,onnx-int8,onnx-int8-static,openvino,openvino-int8]'
    .venv/bin/python bench/export_variants.py                    # reads metrics/export.json
    .venv/bin/python bench/export_variants.py --metrics other/export.json --goal 2.5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def agreement(entry: dict) -> str:
    return "<br>".join(f"{name}: {q['kendall_tau']:.3f} / {q['top1_unchanged']:.0%} / {q['top_k_unchanged']:.0%} / "
                       f"{q['max_abs_score_diff']:.2f}" for name, q in entry.get("quality", {}).items()) or "–"


def quality(entry: dict) -> str:
    rows = []
    for name, q in entry.get("quality", {}).items():
        d = q["delta"][q["primary"]]
        rows.append(f"{name}: {d['delta']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] p={d['p_value']:g}")
    return "<br>".join(rows) or "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", type=Path, default=Path("metrics/export.json"))
    parser.add_argument("--goal", type=float, default=2.5, help="pairs per second of the best passing int8 variant "
                        "over PyTorch fp32's")
    args = parser.parse_args()
    metrics = json.loads(args.metrics.read_text())
    machine = metrics["machine"]
    print(f"machine: {machine['cpu_model']}, {machine['cpu_cores']} cores, torch threads {machine['torch_threads']}; "
          f"{metrics['latency']['queries']} queries x {metrics['latency']['rounds']} rounds, batch size "
          f"{metrics['latency']['batch_size']}; {metrics['calibration_pairs']} calibration pairs")
    print()
    print("| variant | size | p50 / p95 per query | pairs/s (vs PyTorch) | peak memory | tau / top 1 / top k "
          "unchanged / max score diff | ndcg vs PyTorch | build | gate |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, entry in metrics["variants"].items():
        speed = entry.get("speedup_pairs_per_second") or 1.0
        reference = name == "torch"
        gate = "–" if reference else "passed" if entry["passed"] else "failed: " + "; ".join(entry["reasons"])
        build = f"{entry['build_seconds']:.0f} s" if "build_seconds" in entry else "–"
        print(f"| `{name}` | {entry['size_mb']:.1f} MB | {entry.get('p50_ms', 0):.1f} / "
              f"{entry.get('p95_ms', 0):.1f} ms | {entry.get('pairs_per_second', 0):.0f} ({speed:.2f}x) | "
              f"{entry.get('peak_memory_mb', 0):.0f} MB | {'reference' if reference else agreement(entry)} | "
              f"{'reference' if reference else quality(entry)} | {build} | {gate} |")
    int8 = {name: entry for name, entry in metrics["variants"].items()
            if entry.get("precision") == "int8" and entry.get("passed")}
    print()
    if not int8:
        print("goal: no int8 variant passed the gate")
        return
    best = max(int8, key=lambda name: int8[name]["speedup_pairs_per_second"])
    ratio = int8[best]["speedup_pairs_per_second"]
    print(f"goal: best passing int8 variant {best}: {ratio:.2f}x PyTorch fp32's pairs per second "
          f"({'meets' if ratio >= args.goal else 'misses'} {args.goal:g}x)")


if __name__ == "__main__":
    main()
