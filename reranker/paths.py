"""Paths in params that leave the repository."""

from __future__ import annotations

import os


def outside_path(path: str) -> str:
    """A params path that leaves the repository (../shared/data) is relative to the user's checkout. A queued
    experiment runs in a temporary copy of it under .dvc/tmp/exps, and DVC names the checkout in DVC_ROOT.

    Example: ``outside_path("../shared/data/wikiqa")`` is ``$DVC_ROOT/../shared/data/wikiqa`` in a queued run.
    """
    if os.path.isabs(path) or not path.startswith(".."):
        return path
    return os.path.normpath(os.path.join(os.environ.get("DVC_ROOT", "."), path))
