"""`mine.suspects`, checked before any stage works: the policy fits the loss, the teacher threshold has a
cross-encoder teacher to read, and the verdicts file is where DVC watches it, well-formed, and names queries and
documents of the data (for a local data source; a hub data set is only read by the download stage)."""

from __future__ import annotations

from pathlib import Path

from reranker.core.errors import PipelineError
from reranker.data.loading import load_source, to_recipe_columns
from reranker.data.sources import local_files
from reranker.mining.verdicts import FOLDER, read_verdicts, unknown
from reranker.training.loss_inputs import LOSS_INPUT


def check_suspects(params) -> None:
    """Each problem of `params.mine.suspects` (the whole params: the audit reads the teacher, the loss and the data)
    as a one-line PipelineError.

    Example: ``check_suspects(check_params("params.yaml"))`` passes silently.
    """
    section, teacher = params.mine.suspects, params.mine.teacher
    if section is None or params.download.shape != "pairs":  # only mined negatives are audited
        return
    if section.policy == "positive" and LOSS_INPUT.get(params.train.loss) == "tuple":
        raise PipelineError(f"mine.suspects.policy positive makes suspects positives, but train.loss "
                            f"{params.train.loss} reads (query, positive, negatives) tuples with one positive each; "
                            "use policy keep or drop, or a pair or list loss")
    if section.teacher_threshold is not None and (teacher is None or teacher.kind != "cross_encoder"):
        raise PipelineError("mine.suspects.teacher_threshold reads a cross-encoder teacher's scores, but "
                            "mine.teacher names none; set mine.teacher.model, or the threshold to null")
    if section.verdicts is None:
        return
    path = Path(section.verdicts)
    if path.is_absolute() or path.parts[:1] != (FOLDER,):
        raise PipelineError(f"mine.suspects.verdicts is {section.verdicts}, outside {FOLDER}/; move the file into "
                            f"{FOLDER}/ (the mine stage's DVC dependency, so that editing it reruns mining)")
    verdicts = read_verdicts(path)
    download = params.download
    if local_files(download.source) is None:
        return
    table = to_recipe_columns(load_source(download), download.shape, download.columns, download.source)
    problem = unknown(verdicts, table.column("query").to_pylist(), table.column("document").to_pylist())
    if problem:
        raise PipelineError(f"mine.suspects.verdicts: {path}: {problem} ({download.source}); fix or remove the line")
