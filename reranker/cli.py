"""`rerank`: what users run besides `dvc`.

    rerank check [PARAMS] [--json]     every check of params.yaml and what it points at, before a run
    rerank compare [REV ...]           experiments' rankings compared query by query, with intervals and p-values

Exit status: 0 on success, 1 on bad input (one line naming the problem and the fix), 2 on a bug.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from reranker import compare
from reranker.errors import PipelineError, entrypoint


def check(args: argparse.Namespace) -> None:
    from reranker.checks.params import check_params

    try:
        params = check_params(args.params)
    except PipelineError as error:
        if not args.json:
            raise
        print(json.dumps({"params": str(args.params), "ok": False, "error": str(error)}))
        sys.exit(1)
    if args.json:
        print(json.dumps({"params": str(args.params), "ok": True, "recipe": params.recipe}))
    else:
        print(f"{args.params}: ok (recipe {params.recipe})")


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
    checking.add_argument("--json", action="store_true", help="print one JSON object: {params, ok, error|recipe}")
    checking.set_defaults(run=check)
    comparing = commands.add_parser(
        "compare", help="compare experiments query by query", description=compare.__doc__.split("\n\n")[0],
        epilog=compare.EPILOG)
    compare.add_arguments(comparing)
    comparing.set_defaults(run=compare.run)
    return root


@entrypoint
def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
