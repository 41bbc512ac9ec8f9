"""Step 0, check: every check of params.yaml and of what it points at (data, models, collections, run files,
training arguments), before any stage works. It writes `data/check/passed`, whose content never changes: every
other stage depends on it, so DVC runs this stage first, and a change to the checks alone reruns nothing else.
Beside it, `data/check/run_length.json`: the training arguments that decide the run's length, as the library
resolves them, for the steps stage (it changes only with those arguments)."""

from __future__ import annotations

import argparse
from pathlib import Path

from reranker.checks.params import check_params
from reranker.checks.training import build_training_arguments
from reranker.errors import entrypoint
from reranker.outputs import atomic_output, write_json
from reranker.run_length import RUN_LENGTH_FIELDS

PASSED = "params.yaml passed every check\n"


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    out_dir = parser.parse_args().out_dir
    params = check_params("params.yaml")
    resolved = build_training_arguments(params.train.args).to_dict()
    with atomic_output(out_dir) as partial:
        partial.mkdir()
        (partial / "passed").write_text(PASSED)
        write_json(partial / "run_length.json", {"processes": params.train.num_processes,
                                                 **{field: resolved[field] for field in RUN_LENGTH_FIELDS}})
    print("check: params.yaml passed every check")


if __name__ == "__main__":
    main()
