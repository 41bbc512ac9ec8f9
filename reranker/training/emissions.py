"""A stage's energy and emissions, measured by codecarbon's offline tracker (no network: the grid intensity
comes from the country and region in params)."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

from reranker.core.outputs import write_json


@contextlib.contextmanager
def track_emissions(emissions, out: str | Path, stage: str, enabled: bool = True):
    """Measure the block and write the measurement to `out` as JSON when it succeeds. `emissions` is the params'
    emissions section. codecarbon measures the whole machine, so under DDP only the main process tracks.

    Example::

        with track_emissions(params.emissions, "emissions/train.json", "train"):
            trainer.train()
    """
    if not enabled:
        yield
        return
    from codecarbon import OfflineEmissionsTracker

    tracker = OfflineEmissionsTracker(
        country_iso_code=emissions.country_iso_code, region=emissions.region, project_name=stage,
        save_to_file=False, log_level="error",
    )
    tracker.start()
    try:
        yield
    finally:
        tracker.stop()
    data = dataclasses.asdict(tracker.final_emissions_data)
    write_json(out, {
        "stage": stage,
        "emissions_g": data["emissions"] * 1000,
        "energy_consumed_kwh": data["energy_consumed"],
        "hours_used": data["duration"] / 3600,
        "cpu_model": data["cpu_model"],
        "gpu_model": data["gpu_model"] or None,
        "gpu_count": data["gpu_count"],
        "ram_total_size_gb": data["ram_total_size"],
        "on_cloud": data["on_cloud"] == "Y",
        "country": data["country_name"],
        "region": data["region"],
    })
