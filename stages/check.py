"""Step 0, check: every check of params.yaml and of what it points at (data, models, collections, run files,
training arguments), before any stage works. It writes `data/check/passed`, whose content never changes: every
other stage depends on it, so DVC runs this stage first, and a change to the checks alone reruns nothing else."""

from __future__ import annotations

import argparse
from pathlib import Path

from reranker.checks.params import check_params
from reranker.errors import entrypoint
from reranker.outputs import atomic_output

PASSED = "params.yaml passed every check\n"


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    out_dir = parser.parse_args().out_dir
    check_params("params.yaml")
    with atomic_output(out_dir) as partial:
        partial.mkdir()
        (partial / "passed").write_text(PASSED)
    print("check: params.yaml passed every check")


if __name__ == "__main__":
    main()
