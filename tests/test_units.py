"""The library's pure functions on small hand-made inputs: splitting, dev sets, relevance, fingerprints,
score distributions and the training-args field cache."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from datasets import Dataset

from reranker.checks.training import check_training_args, training_fields
from reranker.core.errors import PipelineError
from reranker.core.outputs import write_frames
from reranker.core.paths import outside_path
from reranker.core.relevance import is_relevant
from reranker.data.loading import split_by_query
from reranker.evaluation.score_distribution import score_distribution
from reranker.mining.hard_negatives import (
    EmbeddingTeacher,
    dev_pairs,
    dev_samples,
    float_labels,
    lift_positives,
    mining_corpora,
    teacher_pairs,
    with_teacher_labels,
)
from reranker.training.checkpoints import fingerprint, last_complete_checkpoint
from reranker.training.metric_names import split_evaluator_key


def test_split_by_query_holds_out_whole_queries_and_is_seeded():
    dataset = Dataset.from_dict({"query": ["a", "a", "b", "c", "c", "d"], "document": list("uvwxyz")})
    train, dev = split_by_query(dataset, dev_queries=2, seed=3)
    assert len(set(dev["query"])) == 2 and not set(train["query"]) & set(dev["query"])
    assert len(train) + len(dev) == 6
    again_train, again_dev = split_by_query(dataset, dev_queries=2, seed=3)
    assert list(again_dev["query"]) == list(dev["query"])
    with pytest.raises(PipelineError, match="only 4 distinct queries; lower it"):
        split_by_query(dataset, dev_queries=4, seed=3)


def test_one_relevance_rule():
    assert is_relevant([0, 0.3, 0.49, 0.5, 1, 2]).tolist() == [False, False, False, True, True, True]
    assert is_relevant(1.0) and not is_relevant(0.3)


def test_dev_samples_from_candidates_labelled_pairs_and_lists():
    dev = pd.DataFrame({"query": ["q1", "q2"], "document": ["p1", "p2"]})
    candidates = pd.DataFrame({"query": ["q1", "q2"], "positive": ["p1", "p2"],
                               "negative_1": ["p1", "x"], "negative_2": ["y", "p2"]})
    samples = dev_samples(dev, candidates)
    assert samples.to_dict("list") == {"query": ["q1", "q2"], "positives": [["p1"], ["p2"]],
                                       "documents": [["p1", "y"], ["x", "p2"]]}
    pairs = dev_pairs(dev, samples)
    assert pairs.values.tolist() == [["q1", "p1", 1.0], ["q1", "y", 0.0], ["q2", "x", 0.0], ["q2", "p2", 1.0]]
    # scored pairs: a 0.3 score is a negative, as in classification and the score plot
    scored = pd.DataFrame({"query": ["q", "q", "q"], "document": ["a", "b", "c"], "label": [0.9, 0.3, 0.0]})
    samples = dev_samples(scored, None)
    assert samples["positives"].tolist() == [["a"]] and samples["documents"].tolist() == [["a", "b", "c"]]
    assert dev_pairs(scored, samples)["label"].tolist() == [0.9, 0.3, 0.0]
    listwise = pd.DataFrame({"query": ["q", "r"], "documents": [["a", "b"], ["c"]], "labels": [[0.0, 1.0], [0.2]]})
    samples = dev_samples(listwise, None)
    assert samples["query"].tolist() == ["q"] and samples["positives"].tolist() == [["b"]]


def test_mining_corpora_keep_dev_documents_out_of_training():
    train_corpus, full_corpus = mining_corpora(["a", "b", "a"], ["c", "b"])
    assert train_corpus == ["a", "b"] and full_corpus == ["a", "b", "c"]


def test_float_labels_for_numbers_and_lists():
    frame = float_labels(pd.DataFrame({"label": [1, 0], "labels": [[1, 0], [0, 1]]}))
    assert frame["label"].dtype == np.float32 and frame["labels"].tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_fingerprint_changes_with_params_and_data(tmp_path):
    data = tmp_path / "train.parquet"
    data.write_bytes(b"one")
    section = SimpleNamespace(model_dump=lambda: {"learning_rate": 1e-4})
    first = fingerprint([section], data)
    assert fingerprint([section], data) == first
    data.write_bytes(b"two")
    assert fingerprint([section], data) != first
    other = SimpleNamespace(model_dump=lambda: {"learning_rate": 2e-4})
    assert fingerprint([other], data) != fingerprint([section], data)


def test_write_frames_streams_blocks_into_one_file_of_one_type(tmp_path):
    import pyarrow.parquet as pq

    blocks = [pd.DataFrame({"query": pd.Series([], dtype=str), "label": pd.Series([], dtype="float32")}),
              pd.DataFrame({"query": ["a", "b"], "label": np.array([1.0, 0.0], dtype="float32")}),
              pd.DataFrame({"query": ["c"], "label": [None]})]  # pandas types an all-null column differently
    rows = write_frames(iter(blocks), tmp_path / "train.parquet")
    written = pq.ParquetFile(tmp_path / "train.parquet")
    assert rows == written.metadata.num_rows == 3
    assert written.metadata.num_row_groups == 2  # one per non-empty block
    assert str(written.schema_arrow.field("label").type) == "float"
    assert write_frames(blocks[:1], tmp_path / "empty.parquet") == 0
    assert list(pd.read_parquet(tmp_path / "empty.parquet").columns) == ["query", "label"]


def test_last_complete_checkpoint_skips_one_killed_mid_save(tmp_path):
    for step, complete in ((6, True), (12, True), (18, False)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if complete:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-12")
    assert last_complete_checkpoint(tmp_path / "none") is None


def test_score_distribution_shares_sum_to_one_per_class():
    scores = np.array([0.1, 0.2, 0.8, 0.9, 0.95])
    frame = score_distribution(scores, [0, 0, 1, 1, 0.3], bins=4)
    assert list(frame.columns) == ["score", "positive", "negative"] and len(frame) == 4
    assert frame["positive"].sum() == pytest.approx(1) and frame["negative"].sum() == pytest.approx(1)
    assert frame["positive"].iloc[-1] == 1.0  # both positives score highest


def test_split_evaluator_key():
    assert split_evaluator_key("dev_base_ndcg@10") == ("dev", True, "ndcg@10")
    assert split_evaluator_key("NanoBEIR_R20_mean_map") == ("NanoBEIR_R20_mean", False, "map")
    assert split_evaluator_key("eval_f1_macro") == ("eval", False, "f1_macro")
    assert split_evaluator_key("dev_runtime") is None


def test_outside_path_resolves_against_the_checkout(monkeypatch):
    monkeypatch.setenv("DVC_ROOT", "/home/me/project")
    assert outside_path("../shared/data") == "/home/me/shared/data"
    assert outside_path("sample/qa") == "sample/qa" and outside_path("/abs") == "/abs"


def test_training_args_keys_and_types_come_from_the_library():
    fields = training_fields()
    assert fields["learning_rate"] == "float" and fields["bf16"] == "bool"
    with pytest.raises(PipelineError, match="'train.args.learning_rate' should be float"):
        check_training_args({"learning_rate": "fast"})
    with pytest.raises(PipelineError, match="Did you mean 'num_train_epochs'"):
        check_training_args({"num_train_epoch": 1})


def test_embedding_teacher_scores_are_scaled_cosines_of_the_stored_vectors():
    corpus_vectors = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype="float32")
    query_vectors = np.array([[0.8, 0.6], [0.0, 1.0]], dtype="float32")
    pairs = [("q2", "c"), ("q1", "a"), ("q1", "b"), ("q2", "a")]
    teacher = EmbeddingTeacher((["q1", "q2"], query_vectors), (["a", "b", "c"], corpus_vectors), scale=10.0)
    scores = teacher.scores(pairs)
    assert scores.dtype == np.float32
    assert scores == pytest.approx([10.0, 8.0, 9.6, 0.0])
    # read back per row as MarginMSELoss wants them: the positive's score, then each negative's
    train = pd.DataFrame({"query": ["q1", "q2"], "positive": ["a", "c"], "negative_1": ["b", "a"]})
    labelled = with_teacher_labels(train, teacher.scores(teacher_pairs(train)))
    assert [list(label) for label in labelled["label"]] == [pytest.approx([8.0, 9.6]), pytest.approx([10.0, 0.0])]


def test_positive_margin_lifts_positives_the_teacher_ranks_too_low_in_every_form():
    # q1's positive scores 8 under its negative's 9.6 (the teacher is wrong); q2's is 10 against 0 (right, by 10)
    scores = {("q1", "a"): 8.0, ("q1", "b"): 9.6, ("q2", "c"): 10.0, ("q2", "a"): 0.0}
    tuples = pd.DataFrame({"query": ["q1", "q2"], "positive": ["a", "c"], "negative_1": ["b", "a"]})
    pairs = pd.DataFrame({"query": ["q1", "q1", "q2", "q2"], "document": ["b", "a", "c", "a"],
                          "label": [0.0, 1.0, 1.0, 0.0]})
    lists = pd.DataFrame({"query": ["q1", "q2"], "documents": [["a", "b"], ["c", "a"]],
                          "labels": [[1.0, 0.0], [1.0, 0.0]]})

    def labelled(frame, margin):
        return with_teacher_labels(frame, [scores[pair] for pair in teacher_pairs(frame)], margin)

    assert [list(label) for label in labelled(tuples, None)["label"]] == [[8.0, pytest.approx(9.6)], [10.0, 0.0]]
    assert [list(label) for label in labelled(tuples, 1.0)["label"]] == [pytest.approx([10.6, 9.6]), [10.0, 0.0]]
    assert list(labelled(pairs, 1.0)["label"]) == pytest.approx([9.6, 10.6, 10.0, 0.0])
    assert [list(labels) for labels in labelled(lists, 1.0)["labels"]] == [pytest.approx([10.6, 9.6]), [10.0, 0.0]]
    # a margin wider than the teacher's own raises a right positive too; a query without a negative is left alone
    assert list(labelled(tuples, 12.0)["label"][1]) == [12.0, 0.0]
    assert list(lift_positives(np.array([3.0, 5.0]), np.array([True, True]), 1.0)) == [3.0, 5.0]


def test_pairs_per_epoch_counts_documents_not_rows():
    from stages.train import pairs_per_epoch

    pairs = Dataset.from_dict({"query_ids": [[1], [2]], "document_ids": [[3], [4]], "label": [1.0, 0.0]})
    tuples = Dataset.from_dict({"query_ids": [[1], [2]], "positive_ids": [[3], [4]], "negative_1_ids": [[5], [6]],
                                "negative_2_ids": [[7], [8]], "label": [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]})
    lists = Dataset.from_dict({"query_ids": [[1], [2]], "documents_ids": [[[3], [4], [5]], [[6]]],
                               "labels": [[1.0, 0.0, 0.0], [1.0]]})
    assert [pairs_per_epoch(data) for data in (pairs, tuples, lists)] == [2, 6, 4]


def test_dvclive_logs_each_row_at_the_global_step_and_only_what_a_plot_answers(tmp_path):
    from dvclive import Live
    from stages.train import StepDVCLiveCallback

    live = Live(str(tmp_path / "live"), save_dvc_exp=False, dvcyaml=None, report=None)
    callback = StepDVCLiveCallback(live=live)
    args = SimpleNamespace(to_dict=dict)
    logs = [(3, {"loss": 1.2, "grad_norm": 0.9, "learning_rate": 5e-5, "epoch": 0.2}),
            (6, {"loss": 1.1, "grad_norm": 0.8, "learning_rate": 4e-5, "epoch": 0.4}),
            (6, {"eval_dev_ndcg@10": 0.4, "eval_dev_base_ndcg@10": 1.0, "eval_sequential_score": 0.4,
                 "eval_runtime": 0.2, "eval_samples_per_second": 0.0, "eval_steps_per_second": 0.0, "epoch": 0.4}),
            (7, {"train_runtime": 9.4, "train_samples_per_second": 26.3, "train_steps_per_second": 1.7,
                 "train_loss": 1.1, "total_flos": 0.0, "epoch": 1.0})]
    for step, values in logs:
        callback.on_log(args, SimpleNamespace(global_step=step, is_world_process_zero=True), None, logs=values)
    live.end()
    plots = tmp_path / "live/plots/metrics"
    assert sorted(str(path.relative_to(plots)) for path in plots.rglob("*.tsv")) == [
        "eval/dev_ndcg@10.tsv", "grad_norm.tsv", "learning_rate.tsv", "loss.tsv"]
    assert pd.read_csv(plots / "loss.tsv", sep="\t")["step"].tolist() == [3, 6]
    assert pd.read_csv(plots / "eval/dev_ndcg@10.tsv", sep="\t")["step"].tolist() == [6]
