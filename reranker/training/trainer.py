"""The train stage's assembly, steps 1 to 5 of every recipe: the base model with its score head, the loss named in
params, and the trainer over the token-id datasets. The train stage, the throughput benchmark and the tests build
their trainers here, so that what they measure is what the pipeline trains."""

from __future__ import annotations

from datasets import Value
from sentence_transformers.cross_encoder import CrossEncoderTrainer

from reranker.training.batching import LengthGroupedTrainer
from reranker.training.cross_encoder import TokenIdCrossEncoder, load_cross_encoder
from reranker.training.losses import build_loss


def build_trainer(train, max_length: int, args, train_dataset, *, eval_dataset=None, evaluators=None,
                  callbacks=None) -> CrossEncoderTrainer:
    """A CrossEncoderTrainer as the train stage builds it.

    Args:
        train: The params' train section (TrainParams): base model, loss and its arguments, config overrides,
            num_labels, group_by_length.
        max_length: tokenize.max_length, the model's maximum pair length.
        args: The built CrossEncoderTrainingArguments.
        train_dataset: Token ids as the tokenize stage writes them (a `datasets.Dataset`).
        eval_dataset, evaluators, callbacks: As CrossEncoderTrainer takes them.

    Example::

        trainer = build_trainer(params.train, 256, args, Dataset.from_parquet("data/tokenize/train.parquet"))
        trainer.train()
    """
    # 1. Model: the base model with a fresh score head (unless it has one); it takes token ids as well as text
    model = load_cross_encoder(train, max_length, TokenIdCrossEncoder, config=train.config_kwargs)

    # 2. Data: CrossEntropyLoss reads class ids (int64; the steps stage checked their range), not float labels
    if train.loss == "CrossEntropyLoss":
        train_dataset = train_dataset.cast_column("label", Value("int64"))
        if eval_dataset is not None:
            eval_dataset = eval_dataset.cast_column("label", Value("int64"))

    # 3. Loss, named in params
    loss = build_loss(model, train.loss, train.loss_args)

    # 5. Trainer; train.group_by_length: batches of similar length pad less (reranker/training/batching.py)
    trainer_class = LengthGroupedTrainer if train.group_by_length else CrossEncoderTrainer
    return trainer_class(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset, loss=loss,
                         evaluator=evaluators or None, callbacks=callbacks or [])
