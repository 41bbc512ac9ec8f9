"""The rankings a trained reranker must beat besides its first stage, scored on the same candidates:

- the embedding model (`embed.model`) that mined the training negatives, and whose scores a distilled reranker
  learned: cosine similarity of each candidate's query and document embeddings;
- the teacher, when a cross-encoder (`mine.teacher.model`) labelled the training data;
- the base model, only when it is already a reranker (a trained score head, e.g. a recipe that continues a
  cross-encoder). A new score head is random: a baseline that can only be beaten says nothing, so it is not scored.

Example::

    scores = embedding_scores(SentenceTransformer(path), candidates, batch_size=64)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# The baselines' run names, in the order tables show them
BASELINES = ("embedding_model", "teacher", "base_model")


def embedding_scores(model, candidates: pd.DataFrame, batch_size: int, query_prompt: str | None = None,
                     corpus_prompt: str | None = None, show_progress_bar: bool | None = None) -> np.ndarray:
    """One cosine similarity per candidate row (`query`, `document` columns), each distinct text encoded once, as
    the mine stage encodes them (normalised, with the embedding model's prompts)."""
    if candidates.empty:
        return np.zeros(0)
    queries = list(dict.fromkeys(candidates["query"]))
    documents = list(dict.fromkeys(candidates["document"]))
    encode = {"batch_size": batch_size, "normalize_embeddings": True, "convert_to_numpy": True,
              "show_progress_bar": bool(show_progress_bar)}
    query_vectors = model.encode(queries, prompt=query_prompt, **encode)
    document_vectors = model.encode(documents, prompt=corpus_prompt, **encode)
    query_rows = pd.Index(queries).get_indexer(candidates["query"])
    document_rows = pd.Index(documents).get_indexer(candidates["document"])
    return np.einsum("ij,ij->i", query_vectors[query_rows], document_vectors[document_rows]).astype(float)


def has_score_head(architectures: list[str] | None) -> bool:
    """Whether a model's config names a sequence-classification architecture: a trained score head, so the base
    model is already a reranker worth comparing with.

    Example: ``has_score_head(AutoConfig.from_pretrained(path).architectures)``.
    """
    return any(name.endswith("ForSequenceClassification") for name in architectures or [])
