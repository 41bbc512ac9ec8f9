"""Latency and throughput of the torch model and each export variant, measured alike: per query, its k candidates
scored in one batch, as a reranker serves a query; p50 and p95 over the dev queries after a warm-up; pairs per
second at the evaluation batch size. Models are interleaved in a rotated order each round, so that a slow spell of
a shared machine falls on all of them, and each figure is the median over the rounds.

Example::

    timings = measure({"torch": model, "openvino-int8": variant}, query_batches(dev_candidates), pairs, 16, latency)
    # {"torch": {"p50_ms": 41.2, "p95_ms": 55.0, "pairs_per_second": 410.3, ...}, "openvino-int8": {...}}
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd


def query_batches(candidates: pd.DataFrame, max_queries: int | None = None) -> list[list[tuple[str, str]]]:
    """Each query's (query, document) candidates, in the set's order, at most `max_queries` of them."""
    batches = [list(zip(group["query"], group["document"])) for _, group in candidates.groupby("query_id", sort=False)]
    return batches[:max_queries] if max_queries else batches


def time_queries(model, batches: list[list[tuple[str, str]]], warmup: int) -> list[float]:
    """Milliseconds to score each query's candidates in one batch; the first `warmup` queries are scored untimed."""
    for batch in batches[:warmup]:
        model.predict(batch, batch_size=len(batch), show_progress_bar=False)
    timings = []
    for batch in batches:
        started = time.perf_counter()
        model.predict(batch, batch_size=len(batch), show_progress_bar=False)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def pairs_per_second(model, pairs: list[tuple[str, str]], batch_size: int) -> float:
    started = time.perf_counter()
    model.predict(pairs, batch_size=batch_size, show_progress_bar=False)
    return len(pairs) / (time.perf_counter() - started)


def measure(models: dict, batches: list[list[tuple[str, str]]], pairs: list[tuple[str, str]], batch_size: int,
            latency) -> dict[str, dict]:
    """Name -> p50_ms, p95_ms and pairs_per_second (medians over `latency.rounds` rounds), for each of `models`
    (name -> a loaded CrossEncoder). `latency` is params.export.latency."""
    names = list(models)
    rounds = {name: [] for name in names}
    for round_index in range(latency.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            timings = time_queries(models[name], batches, latency.warmup_queries)
            rounds[name].append((np.percentile(timings, 50), np.percentile(timings, 95),
                                 pairs_per_second(models[name], pairs, batch_size)))
    return {name: {"p50_ms": round(float(np.median([r[0] for r in rows])), 2),
                   "p95_ms": round(float(np.median([r[1] for r in rows])), 2),
                   "pairs_per_second": round(float(np.median([r[2] for r in rows])), 1),
                   "rounds": len(rows)} for name, rows in rounds.items()}


def machine() -> dict:
    """The CPU the figures belong to, and the threads the scoring could use."""
    import torch

    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), model)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu_model": model, "cpu_cores": cores, "torch_threads": torch.get_num_threads(),
            "platform": platform.platform()}
