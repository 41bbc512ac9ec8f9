"""The peak resident memory of a process that loads one model and scores pairs with it, as a server would: run in a
fresh process, so that nothing the measuring process holds (other models, torch when the variant needs none)
counts. Prints the peak in MiB.

Example::

    python -m reranker.export.peak_memory data/export pairs.json --file-name onnx/model_qint8_dynamic.onnx
    python -m reranker.export.peak_memory data/model pairs.json    # no file name: the torch model
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def peak_memory_mb(folder: Path, pairs_file: Path, file_name: str | None, batch_size: int) -> float:
    """MiB at the peak of a fresh process that loads `folder` (torch, or the exported `file_name` in it) and scores
    the pairs of `pairs_file` (a JSON list of [query, document]) at `batch_size`."""
    command = [sys.executable, "-m", "reranker.export.peak_memory", str(folder), str(pairs_file),
               "--batch-size", str(batch_size), *(["--file-name", file_name] if file_name else [])]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("pairs", type=Path)
    parser.add_argument("--file-name")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    pairs = [tuple(pair) for pair in json.loads(args.pairs.read_text())]
    if args.file_name:
        from reranker.export.loader import ExportedCrossEncoder

        model = ExportedCrossEncoder(args.folder, args.file_name)
    else:
        from sentence_transformers.cross_encoder import CrossEncoder

        model = CrossEncoder(str(args.folder))
    model.predict(pairs, batch_size=args.batch_size, show_progress_bar=False)
    print(round(high_water_mark_kib() / 1024, 1))


def high_water_mark_kib() -> int:
    """The process's peak resident set (VmHWM, Linux). Not getrusage's ru_maxrss: Linux carries that across exec,
    so a child started by a large process reports its parent's peak."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


if __name__ == "__main__":
    main()
