"""The chunked prototype vs mine_hard_negatives (one call), on synthetic embeddings fed through the library's
cache: 74 cases (3 output formats x 12 option sets x whole/chunked x exact/FAISS, plus the dev call), all "same"
in session 4. Scratch harness kept for the integration of issue 14 (not run by CI):
TINY_MODEL=<a SentenceTransformer folder, any small one> python bench/prototypes/check_chunked_mining.py"""
import os, random, sys, tempfile, numpy as np, pandas as pd
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import mine_hard_negatives
from reranker import embeddings as E
from chunked_mining import mine_chunks

m = SentenceTransformer(os.environ["TINY_MODEL"])
D = 32
rng = np.random.default_rng(0)
NQ, NC = 1500, 5000
qv = rng.standard_normal((NQ, D)).astype("f4")
rows, doc_vecs = [], []
for i in range(NQ):
    npos = int(rng.integers(1, 5)) if i < NQ // 10 else 1
    for j in range(npos):
        rows.append((f"q{i}", f"d{len(doc_vecs)}"))
        doc_vecs.append(qv[i] + rng.normal(0, 0.6 + 0.2 * j, D))
        if j == 0 and i % 50 == 0:  # a duplicated (query, positive) row
            rows.append((f"q{i}", f"d{len(doc_vecs) - 1}"))
    for _ in range(2):
        doc_vecs.append(qv[i] + rng.normal(0, 0.7, D))
while len(doc_vecs) < NC:
    doc_vecs.append(rng.standard_normal(D))
order = rng.permutation(len(rows))  # queries' rows interleaved, as real data is
rows = [rows[i] for i in order]
cv = np.array(doc_vecs, "f4"); cv /= np.linalg.norm(cv, axis=1, keepdims=True)
qv /= np.linalg.norm(qv, axis=1, keepdims=True)
ds = Dataset.from_dict({"query": [r[0] for r in rows], "document": [r[1] for r in rows]})
corpus = [f"d{j}" for j in range(len(cv))]
queries = list(dict.fromkeys(ds["query"]))
qmat = qv[[int(q[1:]) for q in queries]]
tmp = Path(tempfile.mkdtemp()); cache = tmp / "cache"
np.save(tmp / "c.npy", cv); np.save(tmp / "q.npy", qmat)
cmap, qmap = np.load(tmp / "c.npy", mmap_mode="r"), np.load(tmp / "q.npy", mmap_mode="r")
E.place_in_library_cache(cache, m, "document", corpus, cmap)
E.place_in_library_cache(cache, m, "query", queries, qmap)

def library(**kw):
    random.seed(12)
    with E.no_encoding(m):
        return mine_hard_negatives(ds, m, anchor_column_name="query", positive_column_name="document", corpus=corpus,
                                   verbose=False, cache_folder=str(cache), **kw).to_pandas()

def ours(batch, **kw):
    random.seed(12)
    kw.pop("use_faiss_lib", None)
    return pd.concat(list(mine_chunks(list(ds["query"]), list(ds["document"]), corpus, qmap, cmap, batch_size=batch, **kw)),
                     ignore_index=True)

def same(a, b):
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return f"DIFFERENT columns/shape {a.shape} {list(a.columns)} vs {b.shape} {list(b.columns)}"
    if list(a.dtypes.astype(str)) != list(b.dtypes.astype(str)):
        return f"DIFFERENT dtypes {list(a.dtypes)} vs {list(b.dtypes)}"
    norm = lambda f: f.map(lambda v: repr(tuple(v.tolist() if hasattr(v, "tolist") else v)) if not isinstance(v, str) and hasattr(v, "__len__") else repr(v))
    d = (norm(a).values != norm(b).values).any(axis=1).sum()
    return "same" if d == 0 else f"DIFFERENT in {d}/{len(a)} rows"

cases = {
 "top": dict(), "top range_max=20": dict(range_max=20), "random": dict(sampling_strategy="random"),
 "random range_max=20": dict(range_max=20, sampling_strategy="random"),
 "top range_min=2 range_max=20": dict(range_min=2, range_max=20),
 "top absolute_margin=0": dict(absolute_margin=0.0),
 "random absolute_margin=0 range_max=20": dict(absolute_margin=0.0, range_max=20, sampling_strategy="random"),
 "top relative_margin=.05 range_max=10": dict(relative_margin=0.05, range_max=10),
 "random relative_margin=.05": dict(relative_margin=0.05, sampling_strategy="random"),
 "top max_score=.5 range_max=10": dict(max_score=0.5, range_max=10),
 "top min_score=.3 range_max=10": dict(min_score=0.3, range_max=10),
 "random range_min=3 max_score=.6 min_score=.2": dict(range_min=3, max_score=0.6, min_score=0.2, sampling_strategy="random"),
}
bad = 0
FMTS = sys.argv[1:] or ("labeled-pair", "n-tuple", "labeled-list")
for faiss in (False, True):
    for fmt in FMTS:
        for name, c in cases.items():
            c = dict(num_negatives=3, output_format=fmt, use_faiss=faiss, **c)
            ref = library(**c)
            for batch in (97, 100000):
                r = same(ref, ours(batch, **c)); bad += r != "same"
                print(f"faiss={faiss!s:5} {fmt:12} {name:45} batch={batch:6} rows={len(ref):6}: {r}", flush=True)
    c = dict(num_negatives=20, include_positives=True, output_format="n-tuple", use_faiss=faiss)
    ref = library(**c); r = same(ref, ours(64, **c)); bad += r != "same"
    print(f"faiss={faiss!s:5} dev include_positives n-tuple rows={len(ref)}: {r}", flush=True)
print("ALL SAME" if not bad else f"{bad} DIFFERENT")
