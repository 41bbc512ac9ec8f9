"""One-line errors. A user's mistake (bad params, data, model or collection) is a `PipelineError`: one line
that names what was read, what is wrong and the fix, and exit status 1. Anything else is a bug: a summary line
naming the stage comes first, then the trace for a bug report."""

from __future__ import annotations

import functools
import sys
import traceback


class PipelineError(Exception):
    """Bad params or data: reported as one line naming the problem and the fix, exit status 1."""


def first_line(error: BaseException) -> str:
    """A library's error as one line, for a PipelineError that quotes it."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def entrypoint(main):
    """Run a stage's main(); a PipelineError becomes one line on stderr and exit status 1, any other exception
    a summary line (stage and where to look), then its trace, and exit status 2."""

    @functools.wraps(main)
    def run(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except PipelineError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BrokenPipeError:  # the reader of our output went away (`... | head`): not a bug
            sys.stderr.close()
            sys.exit(1)
        except Exception as error:  # a bug, not a user's mistake: say so in one line before the trace
            # run as `python -m stages.NAME`, the module is __main__; its spec still has the name
            module = sys.modules.get(main.__module__)
            stage = (getattr(getattr(module, "__spec__", None), "name", None) or main.__module__).rpartition(".")[2]
            print(f"error: stage {stage} failed unexpectedly ({type(error).__name__}: "
                  f"{str(error).splitlines()[0] if str(error) else ''}); this is a bug, please report it "
                  "with the trace below", file=sys.stderr)
            traceback.print_exc()
            sys.exit(2)

    return run
