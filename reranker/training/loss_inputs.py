"""What each cross-encoder loss reads, and what each data shape gives: the table the params checks, the mine
stage and the tokenize stage share. Light on purpose (no torch): params load in every stage."""

from __future__ import annotations

# From each loss's docstring input table (the library states it nowhere machine-readable):
# "pair" (query, document, label), "tuple" (query, positive, negative_1..n), "list" (query, documents, labels).
LOSS_INPUT = {
    "BinaryCrossEntropyLoss": "pair", "CrossEntropyLoss": "pair", "MSELoss": "pair",
    "MultipleNegativesRankingLoss": "tuple", "CachedMultipleNegativesRankingLoss": "tuple", "MarginMSELoss": "tuple",
    "LambdaLoss": "list", "ListNetLoss": "list", "ListMLELoss": "list", "PListMLELoss": "list", "RankNetLoss": "list",
    "ADRMSELoss": "list",
}
TEACHER_LOSSES = {"MSELoss", "MarginMSELoss"}  # their labels are a teacher's scores

INPUT_COLUMNS = {"pair": "(query, document, label) pairs", "tuple": "(query, positive, negative_1..n) tuples",
                 "list": "listwise rows (query, documents, labels)"}
# What each data shape gives without mining; pairs are mined into whatever the loss reads.
SHAPE_GIVES = {"labelled_pairs": "pair", "scored_pairs": "pair", "listwise": "list"}


def learns_teacher_scores(loss: str, shape: str, teacher) -> bool:
    """Whether the mined rows are labelled with `mine.teacher`'s scores (`teacher` is that section, or None): always
    for MSELoss and MarginMSELoss, and for the listwise losses when a teacher is set, which then learn the teacher's
    scores of each mined list (listwise distillation) instead of its binary labels. Only mined data (shape pairs).

    Example: ``learns_teacher_scores("ListNetLoss", "pairs", params.mine.teacher)``.
    """
    return shape == "pairs" and (loss in TEACHER_LOSSES or (LOSS_INPUT.get(loss) == "list" and teacher is not None))
