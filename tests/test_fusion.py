"""Score fusion with the first stage (evaluate.fusion): the per-query min-max sum by hand, which scores a set's
first stage brings, and the fused ranking's metrics entry beside an unchanged trained one."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from reranker.evaluation.candidates import scores_to_run
from reranker.evaluation.fusion import first_stage_scores, fuse, min_max_per_query
from reranker.evaluation.reranking import headline, measure_runs, report

SIGNIFICANCE = SimpleNamespace(confidence=0.95, resamples=500, seed=0)


def test_fusion_by_hand():
    # q1: first stage 10, 6, 2 -> 1, 0.5, 0; trained 0, 2, 1 -> 0, 1, 0.5
    # q2: first stage all equal -> 0, 0; trained -1, 3 -> 0, 1
    # q3: one candidate -> 0 on both sides
    # rows of a query need not be next to each other
    queries = ["q1", "q2", "q1", "q3", "q2", "q1"]
    first_stage = [10.0, 5.0, 6.0, 7.0, 5.0, 2.0]
    trained = [0.0, -1.0, 2.0, 4.0, 3.0, 1.0]
    assert min_max_per_query(queries, first_stage).tolist() == pytest.approx([1.0, 0.0, 0.5, 0.0, 0.0, 0.0])
    assert min_max_per_query(queries, trained).tolist() == pytest.approx([0.0, 0.0, 1.0, 0.0, 1.0, 0.5])
    # 0.3 * first stage + 0.7 * trained: q1 0.3, 0.15 + 0.7, 0.35; q2 0, 0.7; q3 0
    fused = fuse(queries, first_stage, trained, first_stage_weight=0.3)
    assert fused.tolist() == pytest.approx([0.3, 0.0, 0.85, 0.0, 0.7, 0.35])
    # the ends of the weight are each system's own order
    assert fuse(queries, first_stage, trained, 0.0).tolist() == pytest.approx(min_max_per_query(queries, trained))
    assert fuse(queries, first_stage, trained, 1.0).tolist() == pytest.approx(min_max_per_query(queries, first_stage))
    # the scale of either side does not matter, only each query's order and spacing
    assert fuse(queries, [100 * s + 3 for s in first_stage], trained, 0.3).tolist() == pytest.approx(fused)


def test_first_stage_scores_are_the_run_of_a_collection_and_the_embedding_cosine_of_dev():
    candidates = pd.DataFrame({"query_id": ["q0", "q0"], "doc_id": ["d0", "d1"], "query": ["a?", "a?"],
                               "document": ["x", "y"], "first_stage_score": [2.0, 1.0]})
    baselines = pd.DataFrame({"embedding_model": [0.4, 0.9]})
    assert first_stage_scores("collection", candidates, baselines).tolist() == [2.0, 1.0]
    # dev candidates store their retrieval rank only: the embedding model's cosine that retrieved them
    assert first_stage_scores("reranking", candidates, baselines).tolist() == [0.4, 0.9]


def test_fused_entry_is_compared_beside_an_unchanged_trained_entry():
    # 6 queries of 3 candidates; d0 of each is relevant. q0..q2: the first stage ranks it second (9 vs 10), the
    # trained model first. q3..q5: the first stage ranks it first by far (10 vs 5), the trained model second by a
    # little (1.8 vs 2): fused, d0 0.3 * 1 + 0.7 * 0.9 = 0.93 beats d1 0.3 * 0.5 + 0.7 * 1 = 0.85
    rows, first, embedding, trained = [], [], [], []
    for index in range(6):
        query = f"q{index}"
        rows += [(query, f"{query}d{doc}", "?", "text", 0.0) for doc in range(3)]
        first += [9.0, 10.0, 0.0] if index < 3 else [10.0, 5.0, 0.0]
        embedding += [0.2, 0.1, 0.3]
        trained += [3.0, 1.0, 0.0] if index < 3 else [1.8, 2.0, 0.0]
    candidates = pd.DataFrame(rows, columns=["query_id", "doc_id", "query", "document", "first_stage_score"])
    candidates["first_stage_score"] = first
    qrels = {f"q{index}": {f"q{index}d0": 1} for index in range(6)}
    runs = {"first_stage": scores_to_run(candidates, candidates["first_stage_score"].to_numpy()),
            "embedding_model": scores_to_run(candidates, embedding), "trained": scores_to_run(candidates, trained)}
    plain = report("collection", measure_runs(runs, qrels, 3), SIGNIFICANCE)

    fused_scores = fuse(candidates["query_id"], first, trained, 0.3)
    fused = report("collection", measure_runs({**runs, "fused": scores_to_run(candidates, fused_scores)}, qrels, 3),
                   SIGNIFICANCE, first_stage_weight=0.3)
    entry = fused.pop("fused")
    assert fused == plain and list(fused) == list(plain), "the trained model's entry is the same with fusion"
    assert entry["first_stage_weight"] == 0.3
    # fused, d0 is first in every query: mrr@3 1; the first stage's and the trained model's are 1/2 on half of them
    assert entry["means"]["mrr@3"] == 1.0 and plain["trained"]["mrr@3"] == plain["first_stage"]["mrr@3"] == 0.75
    assert set(entry) == {"first_stage_weight", "means", "judged", "vs_first_stage", "vs_embedding_model",
                          "vs_trained"}
    for versus, reference in (("vs_first_stage", plain["first_stage"]),
                              ("vs_embedding_model", plain["embedding_model"]),
                              ("vs_trained", plain["trained"])):
        for measure, comparison in entry[versus].items():
            assert comparison["delta"] == pytest.approx(entry["means"][measure] - reference[measure], abs=2e-4)
            assert comparison["ci_low"] <= comparison["delta"] <= comparison["ci_high"]
            assert 0 < comparison["p_value"] <= 1
            assert comparison["better"] + comparison["worse"] + comparison["same"] == 6
    # better than the first stage on q0..q2, than the trained model on q3..q5; the same elsewhere
    for versus in ("vs_first_stage", "vs_trained"):
        assert {key: entry[versus]["mrr@3"][key] for key in ("better", "worse", "same")} == \
            {"better": 3, "worse": 0, "same": 3}, versus

    summary = headline({"heldout": {**fused, "fused": entry}})["heldout"]
    assert summary == {**headline({"heldout": plain})["heldout"],
                       "fused": {"ndcg@3": entry["means"]["ndcg@3"],
                                 "vs_first_stage": entry["vs_first_stage"]["ndcg@3"]["delta"]}}
