"""Build a talkindex home with N synthetic chunks (benchmarks only; never used by tests).

Writes exactly what an ingest writes — episodes/sentences/chunks rows in DuckDB, the keyword index,
per-episode embeddings.npz (chunk + sentence vectors), FAISS segments through `VectorIndex`, and
the ONNX query encoder copied from an existing home — but from generated text and clustered random
unit vectors, so a 1M-chunk index builds in minutes instead of ~2,500 hours of audio.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

CHUNKS_PER_EPISODE = 400  # about one hour of speech with the default chunking
SENTS_PER_CHUNK = 4
DIM = 384


def _vocab(rng: np.random.Generator, n: int = 6000) -> np.ndarray:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = {"".join(rng.choice(letters, rng.integers(3, 10))) for _ in range(n * 2)}
    return np.array(sorted(words)[:n])


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered_vectors(rng: np.random.Generator, n: int, centers: np.ndarray, noise: float = 0.6) -> np.ndarray:
    c = centers[rng.integers(0, len(centers), n)]
    d = centers.shape[1]
    return unit(c + noise * rng.standard_normal((n, d), dtype=np.float32) / np.sqrt(d))


def build_home(home: Path, n_chunks: int, encoder_from: Path | None = None, fts: bool = True,
               sentence_vectors: bool = True, seed: int = 0, factory: str = "auto", log=print,
               real: bool = False) -> dict:
    """Create `home` with `n_chunks` chunks; returns timings and sizes. `real`: chunk vectors are
    MiniLM embeddings of perturbed real text and mixes of them (_realvecs.py) instead of clusters."""
    from talkindex.home import Layout
    from talkindex.store import Store
    from talkindex.vectors import VectorIndex

    rng = np.random.default_rng(seed)
    home = Path(home)
    if home.exists():
        shutil.rmtree(home)
    layout = Layout(home)
    store = Store(layout, writer=True)
    store.init()
    store.set_meta("embedder", "all-MiniLM-L6-v2")
    vocab = _vocab(rng)
    zipf = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
    zipf /= zipf.sum()
    centers = unit(rng.standard_normal((2000, DIM), dtype=np.float32))
    t0 = time.perf_counter()
    all_vecs = np.empty((n_chunks, DIM), np.float32)
    spe = CHUNKS_PER_EPISODE * SENTS_PER_CHUNK
    ns = n_chunks * SENTS_PER_CHUNK
    with store.connect() as con:
        # rows generated inside DuckDB: ~1 s per 100k chunks instead of ~1 s per episode from Python
        con.execute("SELECT setseed(0.42)")
        con.register("_vocab", {"w": vocab})
        con.execute("CREATE TEMP TABLE v AS SELECT list(w ORDER BY w) AS words FROM _vocab")
        word = f"v.words[1 + floor(pow(random(), 3) * {len(vocab)})::INT]"  # Zipf-like word frequencies
        con.execute(f"""
            INSERT INTO sentences (episode_id, idx, start, "end", text, quality)
            SELECT printf('syn%05d', i // {spe}), i % {spe}, (i % {spe}) * 2.25, (i % {spe}) * 2.25 + 2.2,
                   array_to_string(list_transform(range(14), x -> {word}), ' '),
                   1.0
            FROM range({ns}) t(i), v""")
        con.execute(f"""
            INSERT INTO chunks (id, episode_id, idx, start, "end", text, quality, first_sentence, last_sentence)
            SELECT row_number() OVER (ORDER BY episode_id, idx // {SENTS_PER_CHUNK}), episode_id,
                   idx // {SENTS_PER_CHUNK}, min(start), max("end"), string_agg(text, ' ' ORDER BY idx), 1.0,
                   min(idx), max(idx)
            FROM sentences GROUP BY episode_id, idx // {SENTS_PER_CHUNK}""")
        con.execute("""
            INSERT INTO episodes (id, title, "show", source, media_url, webpage_url, published, duration, extractor,
                                  local, status, model, n_chunks, embedder)
            SELECT episode_id, 'Synthetic episode ' || episode_id, 'Synthetic show', 'synth',
                   'https://example.invalid/' || episode_id || '.mp3', '', DATE '2024-01-01', max("end"), 'rss', false,
                   'indexed', 'tiny.en', count(*), 'all-MiniLM-L6-v2'
            FROM chunks GROUP BY episode_id""")
        con.execute("INSERT OR REPLACE INTO meta VALUES ('next_chunk_id', ?)", [str(n_chunks + 1)])
        eps = con.execute("SELECT episode_id, min(id), count(*) FROM chunks GROUP BY 1 ORDER BY 1").fetchall()
    if real:
        from _realvecs import base_vectors, expand

        real_vecs = expand(base_vectors(20_000, log=log)[0], n_chunks)
    for eid, first_id, n in eps:
        cv = real_vecs[first_id - 1: first_id - 1 + n] if real else clustered_vectors(rng, n, centers)
        all_vecs[first_id - 1: first_id - 1 + n] = cv
        if sentence_vectors:
            ids = np.arange(first_id, first_id + n, dtype=np.int64)
            sv = unit(np.repeat(cv, SENTS_PER_CHUNK, 0)
                      + 0.3 * rng.standard_normal((n * SENTS_PER_CHUNK, DIM), dtype=np.float32) / np.sqrt(DIM) * 4)
            layout.episode_dir(eid).mkdir(parents=True, exist_ok=True)
            np.savez(layout.embeddings(eid), chunk_ids=ids, chunk_vecs=cv.astype(np.float16),
                     sent_vecs=sv.astype(np.float16), embedder=np.array("all-MiniLM-L6-v2"),
                     sent_starts=np.arange(n * SENTS_PER_CHUNK, dtype=np.float64) * 2.25)
    n_eps = len(eps)
    t_rows = time.perf_counter() - t0
    log(f"  rows: {n_chunks} chunks / {n_eps} episodes in {t_rows:.1f} s")
    t0 = time.perf_counter()
    if fts:  # the keyword (BM25) index, as ingest builds it (here in one segment)
        from talkindex.bm25 import KeywordIndex

        KeywordIndex(layout.keywords).rebuild(*store.chunk_texts())
    t_fts = time.perf_counter() - t0
    log(f"  keyword index: {t_fts:.1f} s")
    from talkindex.home import IndexConfig

    layout.save_config(IndexConfig())
    t0 = time.perf_counter()
    vi = VectorIndex(layout.vectors, factory=factory)
    vi.add(np.arange(1, n_chunks + 1, dtype=np.int64), all_vecs, "all-MiniLM-L6-v2")
    t_vec = time.perf_counter() - t0
    log(f"  vectors: {t_vec:.1f} s ({vi.manifest()['segments'][0].get('factory', '?')})")
    if encoder_from is not None and (Path(encoder_from) / "query_encoder").is_dir():  # older homes
        shutil.copytree(Path(encoder_from) / "query_encoder", home / "query_encoder")
    return {"rows_s": t_rows, "fts_s": t_fts, "vectors_s": t_vec, "vecs": all_vecs}


def dir_bytes(p: Path, exclude: tuple[str, ...] = ()) -> int:
    return sum(f.stat().st_size for f in Path(p).rglob("*") if f.is_file() and not any(x in f.parts for x in exclude))


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def save_json(path: Path, data: dict) -> None:
    Path(path).write_text(json.dumps(data, indent=1, default=str))
