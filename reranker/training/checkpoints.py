"""Resuming a killed training run: only from a complete checkpoint, and only one made from the same inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint whose trainer state was written (a kill mid-save leaves one without)."""
    steps = sorted(folder.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]), reverse=True)
    return next((str(path) for path in steps if (path / "trainer_state.json").exists()), None)


def fingerprint(sections: list, *paths: Path) -> str:
    """Identifies what a checkpoint was trained from (the params sections or values training reads, and its input
    files), so that only a run of the same inputs resumes it.

    Example: ``fingerprint([params.train, params.evaluate.batch_size], Path("data/tokenize/train.parquet"))``.
    """
    dumped = [section.model_dump() if hasattr(section, "model_dump") else section for section in sections]
    digest = hashlib.sha256(json.dumps(dumped, sort_keys=True).encode())
    for path in paths:  # a MiB at a time: the token ids of a large data set need not fit in memory
        with open(path, "rb") as file:
            while block := file.read(2**20):
                digest.update(block)
    return digest.hexdigest()
