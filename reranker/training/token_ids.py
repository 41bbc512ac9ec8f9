"""Token ids instead of text in the training loop: the tokenize stage stores each text's ids once, and
`PairEncoder` builds a model's pair inputs from them exactly as the tokenizer would from the text pair."""

from __future__ import annotations

from itertools import chain

import numpy as np


class PairEncoder:
    """Builds a model's pair inputs from token ids that the tokenize stage stored, with the special tokens,
    token types and 'longest_first' truncation that the tokenizer applies to a text pair. transformers 5
    has no `prepare_for_model`, so the template is read off the tokenizer by encoding a sentinel pair.

    Example::

        encoder = PairEncoder(tokenizer, max_length=256)
        batch = encoder([(query_ids, document_ids), ...])  # input_ids, token_type_ids, attention_mask tensors
    """

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length
        first = tokenizer("a", add_special_tokens=False)["input_ids"]
        second = tokenizer("b", add_special_tokens=False)["input_ids"]
        pair = tokenizer("a", "b")
        ids, types = pair["input_ids"], pair.get("token_type_ids")
        start = find_sublist(ids, first, 0)
        end = find_sublist(ids, second, start + len(first))
        self.prefix, self.middle, self.suffix = ids[:start], ids[start + len(first) : end], ids[end + len(second) :]
        self.first_type = types[0] if types else None
        self.second_type = types[end] if types else None
        self.budget = max_length - len(self.prefix) - len(self.middle) - len(self.suffix)

    def truncate(self, first: list[int], second: list[int]) -> tuple[list[int], list[int]]:
        # 'longest_first' as the Rust tokenizers do it: the shorter side keeps up to half the budget,
        # the longer side takes the rest (on odd budgets the longer side gets the extra token).
        if len(first) + len(second) <= self.budget:
            return first, second
        half = self.budget // 2
        if len(first) <= len(second):
            keep_first = min(len(first), half)
            return first[:keep_first], second[: self.budget - keep_first]
        keep_second = min(len(second), half)
        return first[: self.budget - keep_second], second[:keep_second]

    def encode(self, first: list[int], second: list[int]) -> dict[str, list[int]]:
        first, second = self.truncate(list(first), list(second))
        head = self.prefix + first + self.middle
        features = {"input_ids": head + second + self.suffix}
        if self.first_type is not None:
            features["token_type_ids"] = ([self.first_type] * len(head)
                                          + [self.second_type] * (len(second) + len(self.suffix)))
        return features

    def __call__(self, pairs) -> dict:
        """The batch as `encode` builds each pair and `tokenizer.pad` pads them (pad id, pad token type, attention
        mask, the tokenizer's padding side), but laid out with numpy: tokenizer.pad took ~95% of the time, 140 ms
        for a batch of 256 pairs, on the training loop's critical path."""
        import torch  # here, not at the top: the tokenize stage imports this module without needing torch

        kept = [self.truncate(list(first), list(second)) for first, second in pairs]
        fixed = len(self.prefix) + len(self.middle) + len(self.suffix)
        heads = np.fromiter((len(self.prefix) + len(first) + len(self.middle) for first, _ in kept), dtype=np.int64,
                            count=len(kept))
        lengths = heads + np.fromiter((len(second) for _, second in kept), dtype=np.int64, count=len(kept))
        lengths += len(self.suffix)
        width = int(lengths.max(initial=fixed))
        offsets = width - lengths if self.tokenizer.padding_side == "left" else np.zeros_like(lengths)
        positions = np.arange(width)[None, :] - offsets[:, None]  # each token's place in its own pair
        mask = (positions >= 0) & (positions < lengths[:, None])
        input_ids = np.full(mask.shape, self.tokenizer.pad_token_id, dtype=np.int64)
        input_ids[mask] = np.fromiter(
            chain.from_iterable(chain(self.prefix, first, self.middle, second, self.suffix) for first, second in kept),
            dtype=np.int64, count=int(lengths.sum()))
        batch = {"input_ids": torch.from_numpy(input_ids)}
        if self.first_type is not None:
            types = np.where(positions < heads[:, None], self.first_type, self.second_type)
            batch["token_type_ids"] = torch.from_numpy(np.where(mask, types, self.tokenizer.pad_token_type_id))
        if "attention_mask" in self.tokenizer.model_input_names:
            batch["attention_mask"] = torch.from_numpy(mask.astype(np.int64))
        return {**batch, "modality": "text"}


def is_token_id_pairs(inputs) -> bool:
    """Pairs of token-id lists (the tokenize stage's output), as opposed to pairs of texts."""
    return bool(inputs) and isinstance(inputs[0], (tuple, list)) and bool(inputs[0]) and isinstance(inputs[0][0], list)


def find_sublist(sequence: list[int], part: list[int], start: int) -> int:
    for index in range(start, len(sequence) - len(part) + 1):
        if sequence[index : index + len(part)] == part:
            return index
    raise ValueError("the tokenizer's pair template could not be read")
