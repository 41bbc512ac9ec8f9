"""Step 1, retrieve: each evaluation collection's first stage (BM25 through bm25s, the embedding model, or a TREC
run file you bring), computed once: the top `k` candidates per query with their texts and the collection's
judgments, so that changing a training param never rebuilds an index or re-retrieves."""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

from reranker.core.errors import entrypoint
from reranker.core.outputs import atomic_output
from reranker.core.paths import outside_path
from reranker.data.collections import load_collection
from reranker.evaluation.candidates import candidates_from_run, write_set
from reranker.evaluation.first_stage import bm25_run, check_k, dense_run, read_trec_run
from reranker.params import load_sections


def first_stage(collection, settings, embed):
    """The first-stage run of `collection` that `settings` (one entry of evaluate.collections) names."""
    if settings.first_stage == "bm25":
        return bm25_run(collection, settings.k, show_progress_bar=True)
    if settings.first_stage == "run_file":
        return read_trec_run(outside_path(settings.run_file), collection, settings.k)
    from sentence_transformers import SentenceTransformer

    from reranker.core.paths import resolve_model

    model = SentenceTransformer(resolve_model(embed.model))
    # FAISS where installed (the faiss extra): the same exact top k, found faster
    use_faiss = importlib.util.find_spec("faiss") is not None
    return dense_run(collection, model, settings.k, batch_size=embed.batch_size, use_faiss=use_faiss,
                     show_progress_bar=True)


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    out_dir = parser.parse_args().out_dir
    params = load_sections("evaluate", "embed")

    with atomic_output(out_dir) as partial:
        partial.mkdir()
        for settings in params.evaluate.collections:
            started = time.perf_counter()
            # 1. The collection: corpus, judged queries and qrels, checked
            collection = load_collection(settings.name, settings.source, settings.split, settings.qrels,
                                         settings.revision)
            check_k(settings.k, collection)
            # 2. Its first stage's top k, with texts, for the evaluate stages to rerank
            run = first_stage(collection, settings, params.embed)
            write_set(partial / settings.name, candidates_from_run(collection, run), collection.qrels)
            print(f"retrieve: {settings.name}: {settings.first_stage} top {settings.k} for {len(run)} queries "
                  f"over {len(collection.corpus)} documents in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
