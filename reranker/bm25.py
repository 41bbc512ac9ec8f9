"""BM25 over one corpus with the ``bm25s`` library: the first stage's BM25 runs and the lexical half of a teacher
that fuses BM25 with the embedding model (`mine.teacher.lexical_weight`) score with the same index and tokens."""

from __future__ import annotations

import logging
import sys

import numpy as np

logger = logging.getLogger(__name__)


class BM25Index:
    """Lucene's BM25 (``bm25s.BM25(method="lucene")``: idf ``log(1 + (N - df + 0.5) / (df + 0.5))``) over
    `documents`, with Lucene's and Elasticsearch's defaults ``k1=1.2, b=0.75``, those of BEIR's BM25 baseline. Text is
    lower-cased, split into words of 2+ characters, stripped of bm25s' English stopwords and, when PyStemmer is
    installed, stemmed with the English Snowball stemmer (install it for the usual BM25 numbers; the log says which).

    Args:
        documents: The corpus, in the order of the scores' columns.
        k1: Term-frequency saturation.
        b: Document-length normalisation.
        show_progress_bar: Show bm25s' tokenizing and indexing bars, on a terminal only.

    Example:
        >>> index = BM25Index(["the cat sat on the mat", "a dog barked at the cat"])
        >>> [tokens] = index.query_tokens(["why did the dog bark"])
        >>> int(index.scores(tokens).argmax())
        1
    """

    def __init__(self, documents: list[str], k1: float = 1.2, b: float = 0.75, show_progress_bar: bool = False):
        import bm25s

        self.size = len(documents)
        self.stemmer = english_stemmer()
        # bm25s draws its bars whenever asked (tqdm's disable=False): ask only on a terminal
        self.progress = show_progress_bar and sys.stderr.isatty()
        self.retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        self.retriever.index(bm25s.tokenize(documents, stopwords="en", stemmer=self.stemmer,
                                            show_progress=self.progress), show_progress=self.progress)

    def query_tokens(self, queries: list[str]) -> list[list[str]]:
        """Each query's tokens that the corpus has. Tokens as strings: `scores` looks them up in the corpus
        vocabulary, so the two tokenizations agree."""
        import bm25s

        tokens = bm25s.tokenize(queries, stopwords="en", stemmer=self.stemmer, return_ids=False,
                                show_progress=self.progress)
        return [[token for token in query if token in self.retriever.vocab_dict] for query in tokens]

    def scores(self, tokens: list[str]) -> np.ndarray:
        """BM25's score of every document for one query's `tokens` (from `query_tokens`)."""
        # A query of stopwords or unseen words matches nothing (bm25s would fail on an empty token list)
        return self.retriever.get_scores(tokens) if tokens else np.zeros(self.size)


def english_stemmer():
    """PyStemmer's English Snowball stemmer, or None (with a log line) when PyStemmer is not installed."""
    try:
        import Stemmer
    except ImportError:
        logger.info("BM25 without stemming: PyStemmer is not installed (pip install PyStemmer)")
        return None
    logger.info("BM25 with PyStemmer's English Snowball stemmer")
    return Stemmer.Stemmer("english")
