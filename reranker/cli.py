"""`rerank`: what users run besides `dvc`.

    rerank check [PARAMS] [-S KEY=VALUE ...] [--json]
                                       every check of params.yaml and what it points at, before a run; with -S,
                                       of the params `dvc exp run -S KEY=VALUE ...` would compose from conf/
    rerank compare [REV ...]           experiments' rankings compared query by query, with intervals and p-values
    rerank verify [MODEL_DIR] [--rev REV] [--json]
                                       a model card's content hashes against dvc.lock, and its weights

Exit status: 0 on success, 1 on bad input (one line naming the problem and the fix), 2 on a bug.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from reranker.commands import compare
from reranker.core.errors import PipelineError, entrypoint


def composed(overrides: list[str], folder: Path) -> Path:
    """params.yaml as `dvc exp run -S ...` composes it from conf/ with these Hydra overrides, written in `folder`:
    the workspace's params.yaml is never touched."""
    from dvc.utils.hydra import compose_and_dump
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    conf = Path("conf").resolve()
    if not (conf / "config.yaml").is_file():
        raise PipelineError(f"-S needs conf/config.yaml to compose from ({conf} has none); run rerank check in the "
                            "repository's root")
    path = folder / "params.yaml"
    try:
        compose_and_dump(str(path), str(conf), None, "config", "", overrides)
    except (HydraException, OmegaConfBaseException, ValueError) as error:
        raise PipelineError(f"-S {' -S '.join(overrides)} does not compose from conf/: "
                            f"{' '.join(str(error).split())[:300]}; check each key and its syntax (quote a value "
                            "with commas: key='a,b')") from None
    return path


def check(args: argparse.Namespace) -> None:
    import tempfile

    from reranker.checks.params import check_params

    label = " ".join(f"-S {override}" for override in args.set_param) if args.set_param else str(args.params)
    with tempfile.TemporaryDirectory() as folder:
        params_path = composed(args.set_param, Path(folder)) if args.set_param else args.params
        try:
            params = check_params(params_path)
        except PipelineError as error:
            if not args.json:
                raise
            print(json.dumps({"params": label, "ok": False, "error": str(error)}))
            sys.exit(1)
    if args.json:
        print(json.dumps({"params": label, "ok": True, "recipe": params.recipe}))
    else:
        print(f"{label}: ok (recipe {params.recipe})")


def verify(args: argparse.Namespace) -> None:
    from reranker.commands.verify import as_json
    from reranker.commands.verify import verify as verify_card

    checks = verify_card(args.model_dir, repo=args.repo, rev=args.rev)
    report = as_json(args.model_dir, args.rev, checks)
    if args.json:
        print(json.dumps(report))
    else:
        for check in checks:
            print(f"{check.status:<9} {check.item}: {check.detail}")
        mismatches = [check.item for check in checks if check.status == "mismatch"]
        where = f"dvc.lock at {args.rev or 'the workspace'}"
        print(f"{args.model_dir}: " + (f"{len(mismatches)} of {len(checks)} items differ from {where}: "
                                       f"{', '.join(mismatches)}" if mismatches else
                                       f"every hash matches {where}"))
    if not report["ok"]:
        sys.exit(1)


def parser() -> argparse.ArgumentParser:
    summary, usage = __doc__.split("\n\n", 1)
    root = argparse.ArgumentParser(prog="rerank", description=summary, epilog=usage,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    checking = commands.add_parser(
        "check", help="check params.yaml and what it points at", description=(
            "Every check the pipeline's check stage runs: the params schema, values that span sections, the data "
            "source, each model (its files, config and tokenizer), the training arguments, the collections and their "
            "run files. Seconds; nothing is written."))
    checking.add_argument("params", nargs="?", default=Path("params.yaml"), type=Path, help="default: params.yaml")
    checking.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE",
                          help="check the params `dvc exp run -S KEY=VALUE` would compose from conf/ (repeatable), "
                               "in place of PARAMS; params.yaml is not changed")
    checking.add_argument("--json", action="store_true", help="print one JSON object: {params, ok, error|recipe}")
    checking.set_defaults(handler=check)
    comparing = commands.add_parser(
        "compare", help="compare experiments query by query", description=compare.__doc__.split("\n\n")[0],
        epilog="Revisions: `dvc exp show` lists experiments; git branches, tags and commits work too.")
    compare.add_arguments(comparing)
    comparing.set_defaults(handler=compare.run)
    verifying = commands.add_parser(
        "verify", help="check a model card's provenance against dvc.lock", description=(
            "Check that every content hash in a model card's provenance is what dvc.lock at a revision records (the "
            "data, models, collections, first-stage runs, code and params), and that the weights beside the card "
            "are those the train stage wrote. Reads through DVC; reruns nothing. One line per item; exit 1 when "
            "any differs. Hub revisions are listed, not checked."))
    verifying.add_argument("model_dir", nargs="?", default=Path("data/hub"), type=Path,
                           help="the card's folder, with the weights (default: data/hub)")
    verifying.add_argument("--rev", help="the revision whose dvc.lock to check against (default: the workspace)")
    verifying.add_argument("--repo", default=Path("."), type=Path, help="the repository (default: .)")
    verifying.add_argument("--json", action="store_true", help="print one JSON object: {model_dir, rev, ok, checks}")
    verifying.set_defaults(handler=verify)
    return root


@entrypoint
def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
