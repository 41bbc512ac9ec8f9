"""The false-negative audit at tiny scale: each rule flags exactly its constructed cases, each policy changes the
training rows as it says, a verdict overrides the rules and the policy, the report shows texts as texts, the
mining's ranks, bad verdict files fail in the check stage in one line, and judged@10 against hand-computed values."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from reranker.checks.suspects import check_suspects
from reranker.core.errors import PipelineError
from reranker.evaluation.measures import judged
from reranker.evaluation.unjudged import unjudged_report, unjudged_top
from reranker.mining.in_blocks import mine_hard_negatives_in_blocks
from reranker.mining.suspects import PairScores, apply_policy, audit, flag, report, summary
from reranker.mining.verdicts import false_negative_rate, read_verdicts, text_id, wilson_interval
from reranker.params import Params, read_params


def rules(absolute_margin=None, positive_share=None, teacher_threshold=None, policy="keep"):
    return SimpleNamespace(absolute_margin=absolute_margin, positive_share=positive_share,
                           teacher_threshold=teacher_threshold, policy=policy)


def test_each_rule_flags_exactly_its_constructed_cases():
    positive = np.full(5, 0.8)
    # far below, within the margin, equal, above, and above 95% of the positive but outside a 0.01 margin
    candidate = np.array([0.2, 0.76, 0.8, 0.9, 0.77])
    assert flag(positive, candidate, rules(absolute_margin=0.05), False) == [
        "", "absolute_margin", "absolute_margin", "absolute_margin", "absolute_margin"]
    assert flag(positive, candidate, rules(absolute_margin=0.01), False) == [
        "", "", "absolute_margin", "absolute_margin", ""]
    assert flag(positive, candidate, rules(positive_share=0.95), False) == [
        "", "", "positive_share", "positive_share", "positive_share"]  # 0.76 = 95% of 0.8 exactly: not above
    assert flag(positive, candidate, rules(teacher_threshold=0.85), True) == ["", "", "", "teacher_threshold", ""]
    # the threshold reads a cross-encoder's scores only; every rule off flags nothing
    assert flag(positive, candidate, rules(teacher_threshold=0.85), False) == [""] * 5
    assert flag(positive, candidate, rules(), True) == [""] * 5


SCORES = {"p": 0.9, "n1": 0.88, "n2": 0.3, "n3": 0.89}  # n1 and n3 suspects at a 0.05 margin, n2 not


def scorer():
    return PairScores(lambda pairs: np.array([SCORES[document] for _, document in pairs], dtype="float32"))


def pair_block():
    return pd.DataFrame({"query": ["q"] * 4, "document": ["p", "n1", "n2", "n3"], "label": [1, 0, 0, 0],
                         "rank": [0, 2, 3, 4]})


def tuple_block():
    return pd.DataFrame({"query": ["q", "r"], "positive": ["p", "p"], "negative_1": ["n1", "n2"],
                         "negative_2": ["n2", "n2"], "rank_1": [2, 2], "rank_2": [3, 3]})


def list_block():
    return pd.DataFrame({"query": ["q"], "documents": [["p", "n1", "n2", "n3"]], "labels": [[1, 0, 0, 0]],
                         "ranks": [[0, 2, 3, 4]]})


def audited(block, form, policy, verdicts=None):
    suspects = audit(block, form, scorer(), rules(absolute_margin=0.05), False, verdicts)
    return apply_policy(block, form, suspects, policy)


def test_the_audit_records_scores_ranks_and_rules():
    suspects = audit(pair_block(), "pair", scorer(), rules(absolute_margin=0.05), False)
    assert suspects["candidate"].tolist() == ["n1", "n3"]
    assert suspects["positive"].tolist() == ["p", "p"]
    assert suspects["rank"].tolist() == [2, 4]
    assert np.allclose(suspects["positive_score"], 0.9) and np.allclose(suspects["candidate_score"], [0.88, 0.89])
    assert suspects["document_id"].tolist() == [text_id("n1", "d"), text_id("n3", "d")]
    counts = summary(suspects, negatives=3)
    assert counts["suspects"] == 2 and counts["queries_affected"] == 1
    assert counts["by_rank"]["2-3"] == 1 and counts["by_rank"]["4-10"] == 1
    assert counts["by_rule"] == {"absolute_margin": 2, "positive_share": 0, "teacher_threshold": 0}


@pytest.mark.parametrize("form, block", [("pair", pair_block), ("list", list_block)])
def test_keep_changes_nothing_but_the_rank_columns(form, block):
    rows, counts = audited(block(), form, "keep")
    assert rows.equals(block().drop(columns=["rank" if form == "pair" else "ranks"]))
    assert counts == {"made_positive": 0, "dropped": 0}


def test_each_policy_on_labelled_pairs():
    dropped, _ = audited(pair_block(), "pair", "drop")
    assert dropped["document"].tolist() == ["p", "n2"] and dropped["label"].tolist() == [1, 0]
    positive, counts = audited(pair_block(), "pair", "positive")
    assert positive["label"].tolist() == [1, 1, 0, 1] and counts["made_positive"] == 2


def test_each_policy_on_lists():
    dropped, _ = audited(list_block(), "list", "drop")
    assert dropped["documents"][0] == ["p", "n2"] and dropped["labels"][0] == [1, 0]
    positive, _ = audited(list_block(), "list", "positive")
    assert positive["documents"][0] == ["p", "n1", "n2", "n3"] and positive["labels"][0] == [1, 1, 0, 1]


def test_drop_takes_a_tuple_with_its_suspect():
    rows, counts = audited(tuple_block(), "tuple", "drop")
    assert rows["query"].tolist() == ["r"] and "rank_1" not in rows and counts["tuples_dropped"] == 1


def test_a_verdict_overrides_the_rules_and_the_policy():
    verdicts = pd.DataFrame({"query_id": [text_id("q", "q")] * 3,
                             "document_id": [text_id(d, "d") for d in ("n1", "n3", "n2")],
                             "relevant": [False, True, True]})
    rows, _ = audited(pair_block(), "pair", "drop", verdicts)
    # n1: flagged, judged not relevant: stays a negative despite drop; n3 flagged and n2 unflagged: relevant, so
    # positives
    assert dict(zip(rows["document"], rows["label"])) == {"p": 1, "n1": 0, "n2": 1, "n3": 1}


def test_false_negative_rate_and_wilson_interval():
    low, high = wilson_interval(3, 52)  # by hand: centre (3/52 + z²/104) / (1 + z²/52)
    assert (round(low, 4), round(high, 4)) == (0.0198, 0.1564)
    suspects = pd.DataFrame({"query_id": ["q-1", "q-1", "q-2"], "document_id": ["d-1", "d-2", "d-3"]})
    verdicts = pd.DataFrame({"query_id": ["q-1", "q-2", "q-9"], "document_id": ["d-1", "d-3", "d-9"],
                             "relevant": [True, False, True]})  # q-9 is no suspect: not counted
    rate = false_negative_rate(verdicts, suspects)
    assert rate["reviewed"] == 2 and rate["relevant"] == 1 and rate["rate"] == 0.5
    by_rule = false_negative_rate(verdicts, suspects.assign(
        rules=["absolute_margin", "absolute_margin,positive_share", "positive_share"]))["by_rule"]
    assert (by_rule["absolute_margin"]["reviewed"], by_rule["absolute_margin"]["relevant"]) == (1, 1)
    assert (by_rule["positive_share"]["reviewed"], by_rule["positive_share"]["relevant"]) == (1, 0)


def test_the_report_shows_texts_as_texts():
    suspects = audit(pair_block().assign(query="<b>q</b> | *x*"), "pair", scorer(), rules(absolute_margin=0.05),
                     False)
    page = report(suspects, summary(suspects, 3), "keep", rows=10)
    assert "<b>" not in page and "&lt;b&gt;q&lt;/b&gt; \\| \\*x\\*" in page
    row = next(line for line in page.splitlines() if line.startswith("| 1 "))
    assert len(re.split(r"(?<!\\)\|", row)) == 10  # 8 cells: the escaped pipe splits none


def test_mining_with_ranks_adds_the_first_stage_ranks_only():
    corpus = ["p", "a", "b", "c", "d"]
    vectors = np.eye(5, dtype="float32")[[0, 1, 2, 3, 4]]
    query = np.array([[0.5, 0.6, 0.45, 0.3, 0.1]], dtype="float32")
    query /= np.linalg.norm(query)
    dataset = {"query": ["q"], "document": ["p"]}
    plain = pd.concat(mine_hard_negatives_in_blocks(dataset, query, corpus, vectors, output_format="labeled-pair",
                                                    num_negatives=2))
    ranked = pd.concat(mine_hard_negatives_in_blocks(dataset, query, corpus, vectors, output_format="labeled-pair",
                                                     num_negatives=2, with_ranks=True))
    assert ranked.drop(columns="rank").equals(plain)
    # first-stage order: a (1), p (2), b (3), c (4): the negatives a and b at ranks 1 and 3
    assert ranked["document"].tolist() == ["p", "a", "b"] and ranked["rank"].tolist() == [0, 1, 3]


def test_judged_at_10_against_hand_computed_values():
    qrels = {"q1": {"d1": 1, "d2": 0, "d9": 1}, "q2": {"x": 0}, "q3": {"y": 1}}
    run = {"q1": {f"d{i}": 20.0 - i for i in range(1, 13)},  # d1, d2 judged in its top 10 (d9 too): 3/10
           "q2": {"x": 1.0, "z": 0.5}}  # 1 of 2 retrieved judged: ir-measures divides by the documents ranked
    assert judged(qrels, run, at_k=10) == {"q1": 0.3, "q2": 0.5, "q3": 0.0}  # q3: nothing retrieved


def test_the_unjudged_report_lists_the_top_unjudged_documents():
    candidates = pd.DataFrame({"query_id": ["q"] * 3, "doc_id": ["a", "b", "c"], "query": ["Q"] * 3,
                               "document": ["<i>A</i>", "B", "C"]})
    holes = unjudged_top(candidates, [0.1, 0.9, 0.5], {"q": {"b": 1}}, at_k=2)
    assert holes["doc_id"].tolist() == ["c"]  # a is out of the top 2, b is judged
    page = unjudged_report("dev", unjudged_top(candidates, [0.9, 0.1, 0.5], {"q": {}}, 3), {}, rows=5)
    assert "&lt;i&gt;A&lt;/i&gt;" in page and "<i>" not in page


def params_with(tmp_path, monkeypatch, verdicts_text: str | None, **suspects) -> Params:
    raw = read_params(ROOT / "params.yaml")
    raw["download"]["source"] = str(ROOT / "sample" / "qa")
    raw["mine"]["suspects"] = {**raw["mine"]["suspects"], **suspects}
    monkeypatch.chdir(tmp_path)
    if verdicts_text is not None:
        (tmp_path / "verdicts").mkdir()
        (tmp_path / "verdicts" / "v.tsv").write_text(verdicts_text)
        raw["mine"]["suspects"]["verdicts"] = "verdicts/v.tsv"
    return Params.model_validate(raw)


QUESTION = "How do arteries differ from veins?"  # a question of the shipped sample


@pytest.mark.parametrize("text, words", [
    ("query\tdoc\trelevant\n", ["has the columns ['query', 'doc', 'relevant']"]),
    (f"query\tdocument\trelevant\n{QUESTION}\td-0000000000\tmaybe\n",
     ["line 2 has relevant 'maybe'; write yes or no"]),
    (f"query\tdocument\trelevant\n{QUESTION}\td-0000000000\n", ["line 2 has 2 tab-separated fields"]),
    ("query\tdocument\trelevant\nq-0000000000\td-0000000000\tyes\n",
     ["names query q-0000000000, which is not", "; fix or remove the line"]),
    (f"query\tdocument\trelevant\n{QUESTION}\td-0000000000\tyes\n",
     ["names document d-0000000000, which is not", "; fix or remove the line"]),
])
def test_bad_verdict_files_fail_the_check_in_one_line(tmp_path, monkeypatch, text, words):
    params = params_with(tmp_path, monkeypatch, text)
    with pytest.raises(PipelineError, match="mine.suspects.verdicts") as error:
        check_suspects(params)
    assert all(word in str(error.value) for word in words) and "\n" not in str(error.value), str(error.value)


def test_a_good_verdict_file_passes_and_reads_texts_and_ids(tmp_path, monkeypatch):
    reviewed = (ROOT / "verdicts" / "sample.tsv").read_text().splitlines()[1].split("\t")  # ids of the sample
    params = params_with(tmp_path, monkeypatch, f"query\tdocument\trelevant\n{reviewed[0]}\t{reviewed[1]}\tno\n"
                         f"{QUESTION}\t{reviewed[1]}\tYes\n")
    check_suspects(params)
    assert read_verdicts("verdicts/v.tsv").values.tolist() == [[reviewed[0], reviewed[1], False],
                                                               [text_id(QUESTION, "q"), reviewed[1], True]]


def test_policy_positive_with_an_n_tuple_loss_and_a_threshold_without_teacher_fail(tmp_path, monkeypatch):
    params = params_with(tmp_path, monkeypatch, None, policy="positive")
    params.train.loss = "MultipleNegativesRankingLoss"
    with pytest.raises(PipelineError, match="reads \\(query, positive, negatives\\) tuples with one positive"):
        check_suspects(params)
    params = params_with(tmp_path, monkeypatch, None, teacher_threshold=2.0)
    with pytest.raises(PipelineError, match="teacher_threshold reads a cross-encoder teacher's scores"):
        check_suspects(params)
