"""Build a talkindex home with N synthetic chunks (benchmarks only; never used by tests).

Writes exactly what an ingest writes — episodes/sentences/chunks rows in DuckDB, the fts index,
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
    return unit(c + noise * rng.standard_normal((n, d), dtype=np.float32) / np.sqrt(d) * 4)


def build_home(home: Path, n_chunks: int, encoder_from: Path | None = None, fts: bool = True,
               sentence_vectors: bool = True, seed: int = 0, factory: str = "auto", log=print) -> dict:
    """Create `home` with `n_chunks` chunks; returns timings and sizes."""
    from talkindex.pipeline import Layout
    from talkindex.store import Store, _bulk
    from talkindex.vectors import VectorIndex

    rng = np.random.default_rng(seed)
    home = Path(home)
    if home.exists():
        shutil.rmtree(home)
    layout = Layout(home)
    store = Store(layout.db, writer=True)
    store.init()
    store.set_meta("embedder", "all-MiniLM-L6-v2")
    vocab = _vocab(rng)
    zipf = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
    zipf /= zipf.sum()
    centers = unit(rng.standard_normal((2000, DIM), dtype=np.float32))
    n_eps = max(1, -(-n_chunks // CHUNKS_PER_EPISODE))
    t0 = time.perf_counter()
    next_id = 1
    all_vecs = np.empty((n_chunks, DIM), np.float32)
    with store.connect() as con:
        con.begin()
        for e in range(n_eps):
            eid = f"syn{e:05d}"
            n = min(CHUNKS_PER_EPISODE, n_chunks - (next_id - 1))
            ns = n * SENTS_PER_CHUNK
            words = vocab[rng.choice(len(vocab), ns * 14, p=zipf)].reshape(ns, 14)
            sent_text = [" ".join(w) for w in words]
            st = np.arange(ns, dtype=np.float64) * 2.25
            ids = np.arange(next_id, next_id + n, dtype=np.int64)
            con.execute(
                "INSERT INTO episodes (id, title, \"show\", source, media_url, webpage_url, published, duration, "
                "extractor, local, status, model, n_chunks, embedder) VALUES (?, ?, 'Synthetic show', 'synth', ?, "
                "'', DATE '2024-01-01' + INTERVAL (? % 365) DAY, ?, 'rss', false, 'indexed', 'tiny.en', ?, "
                "'all-MiniLM-L6-v2')",
                [eid, f"Synthetic episode {e}", f"https://example.invalid/{eid}.mp3", e, float(ns * 2.25), n],
            )
            _bulk(con, "sentences", {
                "episode_id": [eid] * ns, "idx": list(range(ns)), "start": st.tolist(),
                "end": (st + 2.2).tolist(), "text": sent_text, "quality": [1.0] * ns,
            })
            first = np.arange(n) * SENTS_PER_CHUNK
            _bulk(con, "chunks", {
                "id": ids.tolist(), "episode_id": [eid] * n, "idx": list(range(n)),
                "start": st[first].tolist(), "end": (st[first + SENTS_PER_CHUNK - 1] + 2.2).tolist(),
                "text": [" ".join(sent_text[i:i + SENTS_PER_CHUNK]) for i in first],
                "quality": [1.0] * n, "first_sentence": first.tolist(),
                "last_sentence": (first + SENTS_PER_CHUNK - 1).tolist(),
            })
            cv = clustered_vectors(rng, n, centers)
            all_vecs[next_id - 1: next_id - 1 + n] = cv
            if sentence_vectors:
                sv = unit(np.repeat(cv, SENTS_PER_CHUNK, 0) + 0.3 * rng.standard_normal((ns, DIM), dtype=np.float32)
                          / np.sqrt(DIM) * 4)
                d = layout.episode_dir(eid)
                d.mkdir(parents=True, exist_ok=True)
                np.savez(layout.embeddings(eid), chunk_ids=ids, chunk_vecs=cv.astype(np.float16),
                         sent_vecs=sv.astype(np.float16), embedder=np.array("all-MiniLM-L6-v2"))
            next_id += n
        con.execute("INSERT OR REPLACE INTO meta VALUES ('next_chunk_id', ?)", [str(next_id)])
        con.commit()
    t_rows = time.perf_counter() - t0
    log(f"  rows: {n_chunks} chunks / {n_eps} episodes in {t_rows:.1f} s")
    t0 = time.perf_counter()
    if fts:
        store.rebuild_fts()
    t_fts = time.perf_counter() - t0
    log(f"  fts: {t_fts:.1f} s")
    t0 = time.perf_counter()
    vi = VectorIndex(layout.vectors, factory=factory)
    vi.add(np.arange(1, n_chunks + 1, dtype=np.int64), all_vecs, "all-MiniLM-L6-v2")
    t_vec = time.perf_counter() - t0
    log(f"  vectors: {t_vec:.1f} s ({vi.manifest()['segments'][0].get('factory', '?')})")
    if encoder_from is not None:
        src = Path(encoder_from) / "query_encoder"
        shutil.copytree(src, home / "query_encoder")
    return {"rows_s": t_rows, "fts_s": t_fts, "vectors_s": t_vec, "vecs": all_vecs}


def dir_bytes(p: Path, exclude: tuple[str, ...] = ()) -> int:
    return sum(f.stat().st_size for f in Path(p).rglob("*") if f.is_file() and not any(x in f.parts for x in exclude))


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def save_json(path: Path, data: dict) -> None:
    Path(path).write_text(json.dumps(data, indent=1, default=str))
