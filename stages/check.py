"""Step 0, check: every check of params.yaml and of what it points at (data, models, collections, run files,
training arguments), before any stage works. It writes `data/check/passed`, whose content never changes: every
other stage depends on it, so DVC runs this stage first, and a change to the checks alone reruns nothing else.
Beside it, `data/check/training.json`: what the steps stage checks the tokenized data against (the loss, its
classes, and the training arguments that decide the run's length, as the library resolves them); it changes only
with those params. First, it removes the `.NAME.partial` outputs that a killed stage left half-written."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from reranker.checks.params import check_params
from reranker.checks.training import build_training_arguments
from reranker.checks.training_data import RUN_LENGTH_FIELDS
from reranker.core.errors import entrypoint
from reranker.core.outputs import atomic_output, remove, write_json

PASSED = "params.yaml passed every check\n"


def remove_stale_partials(dvc_yaml: str | Path = "dvc.yaml") -> list[Path]:
    """Remove what a killed stage left half-written: atomic_output's `.NAME.partial` sibling of each output that
    `dvc_yaml` declares (its stages' outs, metrics and plots), and nothing else. Returns the paths removed, relative
    to the folder of `dvc_yaml`; none without one.

    Example::

        for partial in remove_stale_partials("dvc.yaml"):
            print(f"removed {partial}")
    """
    dvc_yaml = Path(dvc_yaml)
    if not dvc_yaml.is_file():
        return []
    stale = []
    for stage in ((yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages") or {}).values():
        for entry in [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]:
            output = Path(next(iter(entry)) if isinstance(entry, dict) else entry)
            partial = output.with_name(f".{output.name}.partial")
            if (dvc_yaml.parent / partial).exists() or (dvc_yaml.parent / partial).is_symlink():
                remove(dvc_yaml.parent / partial)
                stale.append(partial)
    return stale


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    out_dir = parser.parse_args().out_dir
    # A killed stage's partials are swept here, not in every stage: every other stage depends on this one's output,
    # so DVC's locks never let it run beside a stage that is writing. A stage DVC restores from its run cache (a
    # killed rerun of inputs that ran before) runs no code, so its partial waits for this stage's next run (any param
    # or code change). Not always_changed, which would sweep at every `dvc repro`: `dvc status` would never be clean
    # and every repro would need what the checks read (collections, models).
    for partial in remove_stale_partials("dvc.yaml"):
        print(f"check: removed {partial}, left half-written by a killed stage")
    params = check_params("params.yaml")
    resolved = build_training_arguments(params.train.args).to_dict()
    with atomic_output(out_dir) as partial:
        partial.mkdir()
        (partial / "passed").write_text(PASSED)
        train = params.train
        write_json(partial / "training.json", {
            "loss": train.loss, "num_labels": train.num_labels, "eval_loss": train.eval_loss,
            "processes": train.num_processes, **{field: resolved[field] for field in RUN_LENGTH_FIELDS}})
    print("check: params.yaml passed every check")


if __name__ == "__main__":
    main()
