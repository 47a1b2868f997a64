"""Issue 23, goal 5 (issue 14's goal 4 before it): a 1M-chunk index of two models (synthetic rows and
vectors, real code paths).

Builds a home of `--chunks` synthetic chunks through Store/VectorIndex (see _synth.py) for the index's
models (`--embedders`, default the product's ensemble MiniLM + mpnet: 1152-d joined vectors, both ONNX
query encoders). Chunk vectors are each model's embeddings of perturbed real transcript text
(`--real-base` texts per model) and mixes of them (_realvecs.py), joined like the product's. Reports:
  - the FAISS index type chosen by size, build time, bytes per chunk on disk (vectors, DuckDB,
    sentence vectors) and RSS per chunk of a warm process after its first question;
  - recall@10 of the chosen index vs exact brute force over the same vectors (queries: both models'
    query encoders on held-out perturbed text, joined; goal >= 0.95);
  - cold `talkindex ask` (new processes, interleaved with `python -c "import numpy, faiss, duckdb"`;
    goal <= 1.5 s) and warm Index.ask() median and p90 (goal p50 <= 50 ms);
  - adding one episode (400 chunks): seconds, bytes written, and that the base segment is untouched.
Memory: the build holds the joined vectors once (4.6 GB at 1M x 1152 float32) plus FAISS's codes;
recall reads them back once more. Usage:

    PYTHONPATH=src python benchmarks/bench_scale.py [--chunks 1000000] [--reps 5] [--no-fts] [--reuse]
        [--embedders A+B] [--real-base 20000] [--recall-queries 100] [--warm-queries 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

from _synth import clustered_vectors, dir_bytes, median, unit  # noqa: E402
from bench_ask import CACHE, cold, encoder_home, index_sets, label, queries, warm_home  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-fts", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="reuse an existing synthetic home of this size")
    ap.add_argument("--encoder-home", type=Path)
    ap.add_argument("--embedders", metavar="A+B", help="the index's models (default: the product's ensemble)")
    ap.add_argument("--real-base", type=int, default=20_000,
                    help="real-text embeddings per model (mixes of them beyond)")
    ap.add_argument("--recall-queries", type=int, default=100)
    ap.add_argument("--warm-queries", type=int, default=100, help="warm questions after the first (>= 41)")
    a = ap.parse_args()
    names = index_sets([a.embedders] if a.embedders else None)[0]
    home = CACHE / f"scale-real-{label(names)}-{a.chunks}"
    enc = encoder_home(a.encoder_home, names)
    from talkindex.index.vectors import VectorIndex

    if not (a.reuse and (home / "vectors" / "manifest.json").exists()):
        if home.with_name(home.name + ".json").exists():
            home.with_name(home.name + ".json").unlink()
        print(f"building {a.chunks} chunks of {'+'.join(names)} in {home} ...", flush=True)
        t0 = time.perf_counter()
        warm_home(a.chunks, names, a.real_base, prefix="scale-real", encoder_from=enc, fts=not a.no_fts)
        print(f"  built in {time.perf_counter() - t0:.0f} s")
    vi = VectorIndex(home / "vectors")
    segs = vi.manifest()["segments"]
    print(f"index: {vi.manifest()['embedder']}, {vi.manifest()['dim']}-d, {[(s['n'], s.get('factory')) for s in segs]}")
    n = vi.ntotal
    b_vec = dir_bytes(home / "vectors")
    b_db = (home / "talkindex.duckdb").stat().st_size
    b_sent = dir_bytes(home / "episodes")
    b_kw = dir_bytes(home / "keywords")
    print(f"disk per chunk: vectors {b_vec / n:.0f} B, DuckDB rows {b_db / n:.0f} B, keyword index {b_kw / n:.0f} B, "
          f"sentence vectors {b_sent / n:.0f} B")

    # warm process first (the recall check below reads every vector into memory): RSS per chunk, warm ask
    from talkindex.api import Index

    r0 = rss_mb()
    idx = Index(home)
    nq = max(41, a.warm_queries)
    qs = queries(home, nq + 1, seed=3)
    idx.ask(qs[0])
    r1 = rss_mb()
    first, ts = [], []
    for i, q in enumerate(qs[1:]):
        t0 = time.perf_counter()
        idx.ask(q)
        (first if i < 20 else ts if i >= nq * 3 // 5 else []).append(time.perf_counter() - t0)
    r2 = rss_mb()
    p90 = sorted(ts)[int(0.9 * len(ts))]
    print(f"warm process: +{r1 - r0:.0f} MB RSS after the first question ({(r1 - r0) * 2**20 / n:.0f} B/chunk, "
          f"{len(names)} ONNX encoder(s) included), +{r2 - r0:.0f} MB after {nq}")
    print(f"warm ask: questions 2-21 median {median(first) * 1000:.1f} ms; questions {nq * 3 // 5 + 2}-{nq + 1} "
          f"(steady) median {median(ts) * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms   (goal <= 50 ms)")
    del idx

    # recall of the chosen index vs exact search over the same vectors, for queries embedded from
    # held-out perturbations of the same real text (the index holds their neighbours, as a real one does)
    from _realvecs import queries as real_queries

    ids, vecs = vi.read_all()
    qv = real_queries(a.recall_queries, names=names)
    sims = qv @ vecs.T
    exact = np.argpartition(-sims, 10, axis=1)[:, :10]  # the top 10, in any order
    del sims
    got = vi.search(qv, 10)[1]
    recall = np.mean([len(set(ids[e]) & set(g)) / 10 for e, g in zip(exact, got, strict=True)])
    print(f"recall@10 vs exact ({a.recall_queries} queries through {'+'.join(names)}): {recall:.3f}   "
          f"(goal >= 0.95)")
    del vecs, ids

    c = cold(home, a.reps, qs[0])
    print(f"cold ask: {c['ask_s']:.3f} s vs baseline {c['baseline_s']:.3f} s (ratio {c['ratio']:.2f}x; goal <= 1.5 s)")
    print(f"  runs: ask {c['ask_runs']}  baseline {c['baseline_runs']}")

    # add one episode: a new small vector segment and keyword segment, the bases untouched

    from talkindex.index.bm25 import KeywordIndex

    saved = {d: (home / d / "manifest.json").read_bytes() for d in ("vectors", "keywords")}
    base = {s["file"]: os.stat(home / "vectors" / s["file"]).st_mtime_ns for s in segs}
    rng = np.random.default_rng(7)
    from _synth import model_dims

    dims = model_dims(names)
    new = clustered_vectors(rng, 400, unit(rng.standard_normal((8, sum(dims)), dtype=np.float32)), dims=dims)
    new_ids = np.arange(10**9, 10**9 + 400, dtype=np.int64)
    t0 = time.perf_counter()
    m = vi.manifest()
    vi.add(new_ids, new, m["embedder"])
    vi.compact()
    dt = time.perf_counter() - t0
    m2 = vi.manifest()
    written = sum((home / "vectors" / s["file"]).stat().st_size for s in m2["segments"] if s["file"] not in base)
    untouched = all(os.stat(home / "vectors" / f).st_mtime_ns == t for f, t in base.items()
                    if (home / "vectors" / f).exists())
    print(f"add one episode (400 chunks) to the vectors: {dt * 1000:.0f} ms, {written / 1e6:.2f} MB written, "
          f"base untouched: {untouched}")
    import duckdb

    con = duckdb.connect(str(home / "talkindex.duckdb"), read_only=True)
    texts = [r[0] for r in con.execute("SELECT text FROM chunks LIMIT 400").fetchall()]
    con.close()
    ki = KeywordIndex(home / "keywords")
    kbase = {s["name"] for s in ki.manifest()["segments"]}
    t0 = time.perf_counter()
    ki.add(new_ids.tolist(), texts)
    dk = time.perf_counter() - t0
    merged = kbase - {s["name"] for s in ki.manifest()["segments"]}
    print(f"add one episode (400 chunks) to the keyword index: {dk * 1000:.0f} ms (goal <= 2 s), "
          f"segments rewritten: {len(merged)}")
    for d, data in saved.items():  # leave the home as it was: old manifests back, probe segments removed
        (home / d / "manifest.json").write_bytes(data)
    vi.gc()
    ki.gc()


if __name__ == "__main__":
    main()
