"""A cross-encoder served from one exported file of a model folder, with ONNX Runtime (``*.onnx``) or OpenVINO
(``*.xml``) and the folder's tokenizer (the `tokenizers` library): no torch, transformers, sentence-transformers or
optimum needed. ``predict`` and ``rank`` take the arguments of sentence-transformers' ``CrossEncoder`` and return the
same types, with the activation the model was trained with. This file imports nothing of the rest of the pipeline,
so that it ships beside the model in a Hub folder and loads there.

Example::

    model = ExportedCrossEncoder("data/hub", "onnx/model_qint8_dynamic.onnx")
    model.predict([("how tall is the eiffel tower?", "The tower is 330 metres tall.")])
    # => array([4.12], dtype=float32)
    model.rank("how tall is the eiffel tower?", ["It is 330 metres tall.", "Paris is in France."], top_k=1)
    # => [{'corpus_id': 0, 'score': 4.12}]
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _sigmoid(scores: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-scores))


# The activations a CrossEncoder records in its config (sentence_transformers.activation_fn), in numpy
ACTIVATIONS = {
    "torch.nn.modules.linear.Identity": lambda scores: scores,
    "torch.nn.modules.activation.Sigmoid": _sigmoid,
    "torch.nn.modules.activation.Tanh": np.tanh,
    "torch.nn.modules.activation.ReLU": lambda scores: np.maximum(scores, 0),
}
BACKENDS = {".onnx": "onnxruntime", ".xml": "openvino"}


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def load_tokenizer(folder: str | Path, max_length: int | None = None):
    """The model's fast tokenizer (tokenizer.json) set to tokenize as CrossEncoder does: text pairs padded to the
    longest of a batch, the longer text truncated first, to `max_length` tokens (None: the length the model was saved
    with). The `tokenizers` library, not transformers' AutoTokenizer, whose import pulls in torch."""
    from tokenizers import Tokenizer

    folder = Path(folder)
    if not (folder / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{folder / 'tokenizer.json'} does not exist: expected a fast tokenizer's file in "
                                "the model folder")
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    config = _read_json(folder / "tokenizer_config.json")
    max_length = (max_length or _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
                  or min(config.get("model_max_length", 512), 8192))
    tokenizer.enable_truncation(max_length, strategy="longest_first",
                                direction=config.get("truncation_side", "right"))
    pad = config.get("pad_token") or "[PAD]"
    pad = pad["content"] if isinstance(pad, dict) else pad
    tokenizer.enable_padding(direction=config.get("padding_side", "right"), pad_id=tokenizer.token_to_id(pad) or 0,
                             pad_token=pad)
    return tokenizer


def tokenize_pairs(tokenizer, pairs: list, input_names: list[str]) -> dict[str, np.ndarray]:
    """The model's inputs (input name -> int64 array) for (query, document) pairs, from `load_tokenizer`'s
    tokenizer."""
    encodings = tokenizer.encode_batch([(str(pair[0]), str(pair[1])) for pair in pairs])
    columns = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
    return {name: np.array([getattr(encoding, columns[name]) for encoding in encodings], dtype=np.int64)
            for name in input_names}


class ExportedCrossEncoder:
    """One exported variant of a cross-encoder model folder.

    Args:
        folder (str | Path): The model folder: config.json, the tokenizer's files and the exported file.
        file_name (str): The exported file inside it: ``onnx/*.onnx`` (ONNX Runtime) or ``openvino/*.xml``
            (OpenVINO, with its ``.bin`` beside it). Defaults to ``onnx/model.onnx``.
        threads (int | None): Threads of the runtime; None: the runtime's default (every core).
        max_length (int | None): Tokens per (query, document) pair; None: the length the model was saved with.
    """

    def __init__(self, folder: str | Path, file_name: str = "onnx/model.onnx", threads: int | None = None,
                 max_length: int | None = None):
        self.folder, self.file_name = Path(folder), file_name
        path = self.folder / file_name
        if path.suffix not in BACKENDS:
            raise ValueError(f"{file_name}: expected an exported file ending in .onnx or .xml, got {path.suffix!r}")
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: expected an exported file inside {self.folder}")
        config = _read_json(self.folder / "config.json")
        self.num_labels = len(config.get("id2label", {})) or 1
        # sentence-transformers 6 records the activation in config_sentence_transformers.json, earlier versions in
        # config.json; a model that records none gets CrossEncoder's default
        activation = (_read_json(self.folder / "config_sentence_transformers.json").get("activation_fn")
                      or config.get("sentence_transformers", {}).get("activation_fn")
                      or ("torch.nn.modules.activation.Sigmoid" if self.num_labels == 1
                          else "torch.nn.modules.linear.Identity"))
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation} of {self.folder}: expected one of {', '.join(ACTIVATIONS)}")
        self.activation_fn = ACTIVATIONS[activation]
        self.tokenizer = load_tokenizer(self.folder, max_length)
        self.backend = BACKENDS[path.suffix]
        if self.backend == "onnxruntime":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
            self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self._inputs = [node.name for node in self._session.get_inputs()]
        else:
            import openvino

            # f32: on CPUs with bf16 units OpenVINO would otherwise run an fp32 model in bf16
            properties = {"INFERENCE_PRECISION_HINT": "f32"} | ({"INFERENCE_NUM_THREADS": threads} if threads else {})
            self._compiled = openvino.Core().compile_model(str(path), "CPU", properties)
            self._inputs = [node.get_any_name() for node in self._compiled.inputs]

    def _logits(self, pairs: list) -> np.ndarray:
        feed = tokenize_pairs(self.tokenizer, pairs, self._inputs)
        if self.backend == "onnxruntime":
            return self._session.run(None, feed)[0]
        return next(iter(self._compiled(feed).values()))

    def predict(self, inputs, batch_size: int = 32, show_progress_bar: bool | None = None, activation_fn=None,
                apply_softmax: bool | None = False, convert_to_numpy: bool = True, convert_to_tensor: bool = False):
        """Scores of (query, document) pairs, as ``CrossEncoder.predict``: a float32 array of one score per pair
        (num_labels 1) or one row of scores per pair, a scalar (or row) for one pair; `activation_fn` is a numpy
        function here (None: the model's)."""
        single = len(inputs) == 2 and all(isinstance(text, str) for text in inputs)
        pairs = [inputs] if single else list(inputs)
        if batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        # Longest first, as CrossEncoder batches them: less padding per batch
        order = np.argsort([-len(str(query)) - len(str(document)) for query, document in pairs], kind="stable")
        batches = range(0, len(pairs), batch_size)
        if show_progress_bar:
            from tqdm import tqdm

            batches = tqdm(batches, desc="Batches")
        logits = [self._logits([pairs[index] for index in order[start:start + batch_size]]) for start in batches]
        scores = np.empty((len(pairs), self.num_labels), dtype=np.float32)
        if logits:
            scores[order] = np.concatenate(logits).astype(np.float32)
        scores = (activation_fn or self.activation_fn)(scores).astype(np.float32)
        if apply_softmax and self.num_labels > 1:
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores /= scores.sum(axis=1, keepdims=True)
        if self.num_labels == 1:
            scores = scores[:, 0]
        if convert_to_tensor:
            import torch

            scores = torch.from_numpy(scores)
        elif not convert_to_numpy:
            scores = list(scores)
        return scores[0] if single else scores

    def rank(self, query: str, documents: list[str], top_k: int | None = None, return_documents: bool = False,
             batch_size: int = 32, show_progress_bar: bool | None = None, activation_fn=None) -> list[dict]:
        """The documents by descending score, as ``CrossEncoder.rank``: ``corpus_id`` (the index in `documents`),
        ``score`` and, with `return_documents`, ``text``; the first `top_k` (None: all)."""
        if self.num_labels != 1:
            raise ValueError(f"rank() needs a model with num_labels=1, got {self.num_labels}; use predict()")
        scores = self.predict([(query, document) for document in documents], batch_size=batch_size,
                              show_progress_bar=show_progress_bar, activation_fn=activation_fn)
        ranked = [{"corpus_id": int(index), "score": float(scores[index])}
                  | ({"text": documents[index]} if return_documents else {})
                  for index in np.argsort(-scores, kind="stable")]
        return ranked[:top_k]

