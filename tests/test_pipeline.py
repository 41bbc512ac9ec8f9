"""A whole `dvc repro` of the tiny project: its outputs, its caching, and the card it renders."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil

import pandas as pd
import pytest
import yaml
from sentence_transformers.cross_encoder import CrossEncoder

from conftest import SHARED_DATA, dvc, set_params

pytestmark = pytest.mark.e2e


def ran(result) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", result.stdout))


def copy(repo, tmp_path):
    # A copy with its DVC cache and outputs, so a test can change params without touching the others' repo
    target = tmp_path / "repo"
    shutil.copytree(repo, target, symlinks=True)
    return target


def test_repro_trains_a_model_that_loads_and_ranks(reproduced):
    """The trained model loads as a CrossEncoder, tells two documents apart and ranks them by its scores."""
    model = CrossEncoder(str(reproduced / "data/model"))
    query = "What is a caldera?"
    documents = ["A caldera is a basin left by a collapsed volcano summit.",
                 "Jazz grew out of blues and ragtime in New Orleans."]
    scores = model.predict([(query, document) for document in documents])
    assert scores.shape == (2,) and scores[0] != scores[1]
    ranked = model.rank(query, documents, return_documents=True)
    assert [row["corpus_id"] for row in ranked] == sorted(range(2), key=lambda index: -scores[index])
    assert [row["text"] for row in ranked] == [documents[row["corpus_id"]] for row in ranked]
    assert [row["score"] for row in ranked] == pytest.approx(sorted(scores.tolist(), reverse=True), abs=1e-6)


SETS = {"dev": "reranking", "climatefever": "collection", "wikiqa": "collection"}


def test_metrics_hold_each_run_the_gains_and_their_significance(reproduced):
    metrics = json.loads((reproduced / "metrics/evaluate.json").read_text())
    base = json.loads((reproduced / "metrics/evaluate_base.json").read_text())
    assert set(metrics) - {"seconds"} == set(SETS)
    for name, kind in SETS.items():
        entry = metrics[name]
        assert entry["kind"] == base[name]["kind"] == kind
        # the base model's score head is new (random): not a baseline; the embedding model is
        assert base["base_model_is_reranker"] is False and "base_model" not in entry and "delta" not in entry
        for side in ("trained", "embedding_model", "first_stage"):
            assert set(entry[side]) == {"ndcg@10", "mrr@10", "map"}, (name, side)
        assert entry["embedding_model"] == base[name]["embedding_model"]
        assert entry["first_stage"] == base[name]["first_stage"]
        for versus, reference in (("vs_first_stage", "first_stage"), ("vs_embedding_model", "embedding_model")):
            for metric, comparison in entry[versus].items():
                assert abs(comparison["delta"] - (entry["trained"][metric] - entry[reference][metric])) < 1e-3
                assert comparison["ci_low"] <= comparison["delta"] <= comparison["ci_high"], comparison
                assert 0 < comparison["p_value"] <= 1
                counted = comparison["better"] + comparison["worse"] + comparison["same"]
                assert counted == len(pd.read_csv(reproduced / f"plots/per_query_gains/{name}.csv"))
        assert "randomization" in entry["test"]
    tokenize = json.loads((reproduced / "metrics/tokenize.json").read_text())
    assert tokenize["pairs"] == len(pd.read_parquet(reproduced / "data/tokenize/train.parquet"))
    assert 0 < tokenize["tokens_mean"] <= tokenize["tokens_p95"] and 0 <= tokenize["truncated_share"] <= 1


def test_dvc_shows_the_headline_metrics_and_plots_by_training_step(reproduced):
    from reranker.evaluation.reranking import headline

    # dvc exp show: the headline of each metrics file, not every interval, p-value, kind and timing
    header = next(csv.reader(io.StringIO(dvc(reproduced, "exp", "show", "--csv").stdout)))
    metrics = header[header.index("parent") + 1:header.index("recipe")]
    assert metrics == ["evaluation_queries_in_training", "dropped_rows", "train_rows", "dev_positive_retrieved",
                       "truncated_share", "train_loss", "train_seconds",
                       *(f"{name}.{key}" for name in SETS
                         for key in ("ndcg@10", "vs_first_stage", "than_first_stage", "p_value", "vs_embedding_model",
                                     "than_embedding_model"))],\
        metrics
    full = json.loads((reproduced / "metrics/evaluate.json").read_text())
    assert json.loads((reproduced / "metrics/summary/evaluate.json").read_text()) == headline(full, alpha=0.05)

    # dvc plots show: loss, learning rate, one panel per dev metric, the score distribution, each row of DVCLive's
    # log at the trainer's global step (logging every 3 steps, evaluating every 6)
    panels = json.loads(dvc(reproduced, "plots", "show", "--json").stdout)["data"]
    live = "dvclive/train/plots/metrics"
    assert list(panels) == ["Training loss", "Learning rate", *(f"{live}/eval/dev_{metric}.tsv" for metric in
                                                                ("map", "mrr@10", "ndcg@10")),
                            "Dev score distribution of the trained model",
                            *(f"plots/per_query_gains/{name}.csv" for name in sorted(SETS))], list(panels)
    steps = json.loads((reproduced / "metrics/train.json").read_text())["steps"]
    assert pd.read_csv(reproduced / live / "loss.tsv", sep="\t")["step"].tolist() == list(range(3, steps + 1, 3))
    evaluated = pd.read_csv(reproduced / live / "eval/dev_ndcg@10.tsv", sep="\t")["step"].tolist()
    assert evaluated[:2] == [6, 12] and all(step % 6 == 0 or step == steps for step in evaluated), evaluated


def test_runs_and_per_query_metrics_are_small_git_files(reproduced):
    from reranker.evaluation.measures import read_per_query

    metrics = json.loads((reproduced / "metrics/evaluate.json").read_text())
    for name in SETS:
        for run in ("first_stage", "embedding_model", "trained"):
            lines = (reproduced / f"runs/{name}/{run}.trec").read_text().splitlines()
            assert lines and all(len(line.split()) == 6 and line.split()[1] == "Q0" for line in lines)
        per_query = read_per_query((reproduced / f"metrics/per_query/{name}.csv").read_text())
        assert set(per_query) == {"first_stage", "embedding_model", "trained"}
        for run in ("first_stage", "embedding_model", "trained"):
            side = "first_stage" if run == "first_stage" else run
            for metric, values in per_query[run].items():
                if metric.startswith("judged@"):  # reported beside the measures, in the set's `judged` entry
                    assert abs(sum(values.values()) / len(values) - metrics[name]["judged"][side]) < 1e-3
                    continue
                assert abs(sum(values.values()) / len(values) - metrics[name][side][metric]) < 1e-3
    # the shipped BM25 run is the first stage of climatefever, cut at k = 4
    shipped = {}
    for line in (SHARED_DATA / "beir/climatefever-nano/bm25.trec").read_text().splitlines():
        query, _, doc, rank, *_ = line.split()
        if int(rank) <= 4:
            shipped.setdefault(query, set()).add(doc)
    ours = {}
    for line in (reproduced / "runs/climatefever/first_stage.trec").read_text().splitlines():
        query, _, doc, *_ = line.split()
        ours.setdefault(query, set()).add(doc)
    assert ours == {query: docs for query, docs in shipped.items() if query in ours} and len(ours) == 50


def trec_scores(path) -> dict[tuple[str, str], float]:
    return {(query, doc): float(score) for query, _, doc, _, score, _ in
            (line.split() for line in path.read_text().splitlines())}


def test_fusion_adds_a_fused_run_and_its_comparisons_beside_an_unchanged_trained_model(reproduced, tmp_path):
    from reranker.evaluation.fusion import fuse
    from reranker.evaluation.measures import read_per_query
    from reranker.evaluation.reranking import headline

    repo = copy(reproduced, tmp_path)
    set_params(repo, {"evaluate.fusion": {"first_stage_weight": 0.3}})
    # the baselines read no fusion param: only the check (any param) and evaluate rerun
    assert ran(dvc(repo, "repro", "evaluate")) == {"check", "evaluate"}
    plain = json.loads((reproduced / "metrics/evaluate.json").read_text())
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    for name, kind in SETS.items():
        entry = dict(metrics[name])
        fused = entry.pop("fused")
        assert entry == plain[name], "the trained model's metrics and comparisons are the same with fusion"
        for run in ("first_stage", "embedding_model", "trained"):
            path = f"runs/{name}/{run}.trec"
            assert (repo / path).read_text() == (reproduced / path).read_text()
        # the fused run: w * the first stage's min-max normalised scores + (1 - w) * the trained model's, per query;
        # the dev set's first stage scores are the embedding model's cosine (its candidates keep only their rank)
        runs = repo / "runs" / name
        first = trec_scores(runs / ("embedding_model.trec" if kind == "reranking" else "first_stage.trec"))
        trained, written = trec_scores(runs / "trained.trec"), trec_scores(runs / "fused.trec")
        assert set(written) == set(trained) == set(first)
        pairs = sorted(trained)
        expected = fuse([query for query, _ in pairs], [first[pair] for pair in pairs],
                        [trained[pair] for pair in pairs], 0.3)
        assert [written[pair] for pair in pairs] == pytest.approx(expected.tolist(), abs=1e-12)
        assert all(line.endswith(" fused") for line in (runs / "fused.trec").read_text().splitlines())
        # its per-query metrics, means and comparisons with the first stage, the embedding model and the trained model
        per_query = read_per_query((repo / f"metrics/per_query/{name}.csv").read_text())
        assert set(per_query) == {"first_stage", "embedding_model", "trained", "fused"}
        assert fused["first_stage_weight"] == 0.3
        for metric, value in fused["means"].items():
            assert abs(sum(per_query["fused"][metric].values()) / len(per_query["fused"][metric]) - value) < 1e-3
        for versus, side in (("vs_first_stage", "first_stage"), ("vs_embedding_model", "embedding_model"),
                             ("vs_trained", "trained")):
            reference = entry[side]
            assert set(fused[versus]) == set(fused["means"]) == {"ndcg@10", "mrr@10", "map"}
            for metric, comparison in fused[versus].items():
                assert abs(comparison["delta"] - (fused["means"][metric] - reference[metric])) < 1e-3
                assert comparison["ci_low"] <= comparison["delta"] <= comparison["ci_high"], comparison
                assert 0 < comparison["p_value"] <= 1
                counted = comparison["better"] + comparison["worse"] + comparison["same"]
                assert counted == len(per_query["fused"][metric])
    # the summary adds the fused ndcg@10 and its gain over the first stage, nothing else
    summary = json.loads((repo / "metrics/summary/evaluate.json").read_text())
    assert summary == headline(metrics, alpha=0.05)
    for name in SETS:
        fused = metrics[name]["fused"]
        assert summary[name].pop("fused") == {"ndcg@10": fused["means"]["ndcg@10"],
                                              "vs_first_stage": fused["vs_first_stage"]["ndcg@10"]["delta"]}
    assert summary == json.loads((reproduced / "metrics/summary/evaluate.json").read_text())


def test_train_stage_reads_token_ids_not_text(reproduced):
    ids = pd.read_parquet(reproduced / "data/tokenize/train.parquet")
    assert list(ids.columns) == ["query_ids", "document_ids", "label"]
    assert all(isinstance(token, (int,)) or hasattr(token, "dtype") for token in ids["query_ids"].iloc[0])


def test_second_repro_runs_nothing(reproduced):
    assert ran(dvc(reproduced, "repro")) == set()
    assert "up to date" in dvc(reproduced, "status").stdout


def test_learning_rate_change_reruns_train_evaluate_card_only(reproduced, tmp_path):
    repo = copy(reproduced, tmp_path)
    base_metrics = (repo / "metrics/evaluate_base.json").read_text()
    set_params(repo, {"train.args.learning_rate": 1e-4})
    # the check reruns on any param (seconds) and writes the same file: nothing else is invalidated by it
    assert ran(dvc(repo, "repro")) == {"check", "train", "evaluate", "export", "card"}
    assert (repo / "metrics/evaluate_base.json").read_text() == base_metrics  # read from the cache, not recomputed
    log = json.loads((repo / "data/train/log.json").read_text())
    assert log["all_args"]["learning_rate"] == 1e-4


def test_sampling_param_remines_without_reencoding_and_is_seeded(reproduced, tmp_path):
    repo = copy(reproduced, tmp_path)
    set_params(repo, {"mine.train.sampling_strategy": "random", "mine.train.range_max": 8})
    stages = ran(dvc(repo, "repro", "mine"))
    assert stages == {"check", "mine"}, "changing a sampling param must not re-encode the corpus"
    # a cache miss would write new embeddings into embed's output, which DVC would report as changed
    assert "up to date" in dvc(repo, "status", "embed").stdout
    first = pd.read_parquet(repo / "data/mine/train.parquet")
    dvc(repo, "repro", "--force", "--single-item", "mine")
    second = pd.read_parquet(repo / "data/mine/train.parquet")
    pd.testing.assert_frame_equal(first, second)
    old = pd.read_parquet(reproduced / "data/mine/train.parquet")
    assert not first.equals(old), "random sampling should pick other negatives than top sampling"


def test_a_new_verdict_reruns_from_mine_not_embed(reproduced, tmp_path):
    """The verdicts folder is a dependency of check and mine, not of download or embed: a verdict on a mined
    suspect re-mines and re-tokenizes from the embeddings already computed."""
    repo = copy(reproduced, tmp_path)
    verdicts = repo / "verdicts/mine.tsv"
    verdicts.write_text("query\tdocument\trelevant\n")
    set_params(repo, {"mine.suspects.verdicts": "verdicts/mine.tsv"})
    assert {"check", "mine"} <= ran(dvc(repo, "repro", "tokenize")) <= {"check", "mine", "tokenize"}
    suspects = pd.read_parquet(repo / "data/mine/suspects.parquet")
    assert len(suspects), "the tiny pipeline must mine suspects to review"
    train = pd.read_parquet(repo / "data/mine/train.parquet")
    untouched = ["data/download", "data/embeddings"]
    mtimes = {path: path.stat().st_mtime_ns for folder in untouched for path in (repo / folder).rglob("*")}

    suspect = suspects.iloc[0]
    with verdicts.open("a") as file:
        file.write(f"{suspect.query_id}\t{suspect.document_id}\tyes\n")
    stages = ["check", "download", "embed", "mine", "tokenize"]
    status = json.loads(dvc(repo, "status", "--json", *stages).stdout)
    # tokenize is not stale yet: its dependency is mine's output, which changes only when mine reruns
    assert set(status) == {"check", "mine"}, status
    assert {"changed deps": {"verdicts": "modified"}} in status["mine"]
    assert ran(dvc(repo, "repro", "--dry", "tokenize")) == {"check", "mine"}

    assert ran(dvc(repo, "repro", "tokenize")) == {"check", "mine", "tokenize"}
    assert {path: path.stat().st_mtime_ns for path in mtimes} == mtimes, "download or embed rewrote its outputs"
    assert "up to date" in dvc(repo, "status", "download", "embed").stdout
    audit = json.loads((repo / "metrics/mine.json").read_text())["suspects"]
    assert audit["verdicts"] == {"given": 1, "matched": 1} and audit["made_positive"] >= 1
    assert not pd.read_parquet(repo / "data/mine/train.parquet").equals(train), "the verdict must reach training"


def test_dev_set_holds_out_queries_and_keeps_retrieval_order(reproduced):
    """No dev query is a training query, and each dev query's candidates are in the embedding model's order: the
    cosine of the query's stored embedding with each document's, highest first."""
    from reranker.mining import embeddings

    train = pd.read_parquet(reproduced / "data/download/train.parquet")
    dev = pd.read_parquet(reproduced / "data/download/dev.parquet")
    assert not set(train["query"]) & set(dev["query"])
    samples = pd.read_parquet(reproduced / "data/mine/dev.parquet")
    assert len(samples) == 8 and all(len(documents) == 6 for documents in samples["documents"])
    corpus = embeddings.load(reproduced / "data/embeddings/corpus.npy")
    queries = embeddings.load(reproduced / "data/embeddings/dev_queries.npy")
    document_vector = dict(zip(corpus.texts(), corpus.vectors))
    query_vector = dict(zip(queries.texts(), queries.vectors))
    for query, documents in zip(samples["query"], samples["documents"]):
        cosines = [float(query_vector[query] @ document_vector[document]) for document in documents]
        assert all(first >= second - 1e-5 for first, second in zip(cosines, cosines[1:])), (query, cosines)
    mine = json.loads((reproduced / "metrics/mine.json").read_text())
    assert mine["dev_queries"] == 8 and 0 < mine["dev_positive_retrieved"] <= 1


def test_hub_folder_holds_the_model_and_a_card_with_a_valid_model_index(reproduced):
    hub = reproduced / "data/hub"
    assert CrossEncoder(str(hub)).predict([("a question?", "an answer.")]).shape == (1,)
    card = (hub / "README.md").read_text()
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["pipeline_tag"] == "text-ranking" and meta["library_name"] == "sentence-transformers"
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "loss:BinaryCrossEntropyLoss" in meta["tags"] and meta["co2_eq_emissions"]["source"] == "codecarbon"
    results = meta["model-index"][0]["results"]
    assert {r["dataset"]["type"] for r in results} == set(SETS)
    for result in results:
        assert result["task"]["type"] == "cross-encoder-reranking"
        assert isinstance(result["metrics"][0]["value"], float)
    assert {m["type"] for r in results for m in r["metrics"]} == {"map", "mrr@10", "ndcg@10"}
    for heading in ("## Usage", "model.predict(pairs)", "model.rank(", "## Evaluation", "#### Cross Encoder Reranking",
                    "| Metric | First stage | Embedding model | Trained | Trained vs first stage |",
                    "### Training Dataset", "* Loss: [BinaryCrossEntropyLoss]",
                    "#### Non-Default Hyperparameters", "#### All Hyperparameters", "### Training Logs",
                    "### Environmental Impact", "### Training Hardware", "### Framework Versions", "## Citation"):
        assert heading in body, heading
    for name in SETS:  # each set's per-query gains, as a picture beside the card
        picture = reproduced / f"data/hub/per_query_gains_{name}.svg"
        assert f"]({picture.name})" in body and picture.read_text().startswith("<svg")
    assert "not the base model, whose score head was new (random) before training" in body
    best = json.loads((reproduced / "data/train/log.json").read_text())["best_global_step"]
    assert re.search(rf"^\| \*\*[0-9.]+\*\* \| \*\*{best}\*\* \|", body, re.MULTILINE), "best step row in bold"
    # a gain is bold only when its interval excludes 0; otherwise it says so
    metrics = json.loads((reproduced / "metrics/evaluate.json").read_text())
    for name in SETS:
        comparison = metrics[name]["vs_embedding_model"]["ndcg@10"]
        shown = f"**{comparison['delta']:+.4f}** [" if comparison["ci_low"] > 0 else f"{comparison['delta']:+.4f} ["
        assert shown in body, (name, comparison)
