"""The cross-encoder to train or evaluate: the base model with a score head (new unless it has one), and the
subclass whose `preprocess` also takes the tokenize stage's token ids."""

from __future__ import annotations

import importlib

from sentence_transformers.cross_encoder import CrossEncoder

from reranker.core.errors import PipelineError
from reranker.core.paths import loading_model, resolve_model
from reranker.training.token_ids import PairEncoder, is_token_id_pairs


class TokenIdCrossEncoder(CrossEncoder):
    """A CrossEncoder whose `preprocess` also takes pairs of token-id lists, in place of the tokenizer: the
    losses call `model.preprocess` unchanged, so the training loop never tokenizes. Text (the evaluators'
    input) goes the usual way. It saves and loads as a plain CrossEncoder."""

    def preprocess(self, inputs, prompt=None, **kwargs):
        if is_token_id_pairs(inputs):
            if getattr(self, "pair_encoder", None) is None or self.pair_encoder.max_length != self.max_seq_length:
                self.pair_encoder = PairEncoder(self.tokenizer, self.max_seq_length)
            return self.pair_encoder(inputs)
        return super().preprocess(inputs, prompt=prompt, **kwargs)


def load_cross_encoder(train, max_length: int, model_class: type[CrossEncoder] = CrossEncoder,
                       config: dict | None = None) -> CrossEncoder:
    """The base model of `train` (the params' train section) with its score head, truncating at max_length;
    `config` overrides fields of the model's config (the train stage passes train.config_kwargs, e.g. dropout; the
    check stage refuses a key the config lacks, which transformers would drop without a word).

    Example: ``load_cross_encoder(params.train, params.tokenize.max_length, TokenIdCrossEncoder,
    config=params.train.config_kwargs)``.
    """
    with loading_model("train.base_model", train.base_model):
        model = model_class(resolve_model(train.base_model), num_labels=train.num_labels, max_length=max_length,
                            activation_fn=activation(train.activation_fn), trust_remote_code=train.trust_remote_code,
                            config_kwargs=dict(config) if config else None)
    return model


def activation(dotted: str | None):
    """An activation module from its dotted class path in params; None leaves the model's own."""
    return import_object(dotted)() if dotted else None


def import_object(dotted: str):
    """Example: ``import_object("torch.nn.Identity")`` is the class torch.nn.Identity."""
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise PipelineError(f"'{dotted}' is not an importable Python object; "
                            "give a dotted path like torch.nn.Identity") from None
