"""Build a talkindex home with N synthetic chunks (benchmarks only; never used by tests).

Writes exactly what an ingest writes — episodes/sentences/chunks rows in DuckDB, the keyword index,
per-episode embeddings.npz (chunk + sentence vectors), FAISS segments through `VectorIndex`,
config.json — but from generated text and clustered random unit vectors (or real-text embeddings,
`real=True`), so a 1M-chunk index builds in minutes instead of ~2,500 hours of audio.

`embedders`: the index's models (default: the product's default ensemble, MiniLM + mpnet). Vectors
are each model's unit vectors joined exactly like the product's (`talkindex.embed.passages.join_unit`:
concatenated / sqrt(n), 1152-d for the pair); config.json lists the models, and the store's meta,
episodes, embeddings.npz and the vectors' manifest carry the ensemble's key ("a+b"), so `Index(home)`
loads one ONNX query encoder per model (the machine-wide exports, `talkindex.embed.passages.export_dir`).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

CHUNKS_PER_EPISODE = 400  # about one hour of speech with the default chunking
SENTS_PER_CHUNK = 4
DIM = 384  # MiniLM's; an index's dimension is sum(model_dims(embedders))


def _vocab(rng: np.random.Generator, n: int = 6000) -> np.ndarray:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = {"".join(rng.choice(letters, rng.integers(3, 10))) for _ in range(n * 2)}
    return np.array(sorted(words)[:n])


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered_vectors(rng: np.random.Generator, n: int, centers: np.ndarray, noise: float = 0.6,
                      dims: list[int] | None = None) -> np.ndarray:
    """Unit vectors around random `centers`; with `dims` (an ensemble's model dimensions, summing to the
    centers' width) each model's part is made unit on its own and the parts joined like the product's."""
    c = centers[rng.integers(0, len(centers), n)]
    return per_model(lambda part: part + noise * rng.standard_normal(part.shape, dtype=np.float32)
                     / np.sqrt(part.shape[1]), c, dims)


def per_model(f, x: np.ndarray, dims: list[int] | None) -> np.ndarray:
    """`f` applied to each model's part of `x`, each part made unit, joined (`join_unit`)."""
    from talkindex.embed.passages import join_unit

    edges = np.cumsum([0, *(dims or [x.shape[1]])])
    return join_unit([unit(f(x[:, lo:hi] * np.sqrt(len(edges) - 1)))
                      for lo, hi in zip(edges[:-1], edges[1:], strict=True)])


def model_dims(embedders=None) -> list[int]:
    """Each model's dimension (from its ONNX export's meta)."""
    from _realvecs import dims

    return dims(embedders)


def index_key(embedders=None) -> str:
    """The ensemble's key ("a+b"): config.embedder, the store's meta, the vectors' manifest."""
    from _realvecs import embedders as names

    from talkindex.home import IndexConfig

    return IndexConfig(embedders=names(embedders)).embedder


def build_home(home: Path, n_chunks: int, encoder_from: Path | None = None, fts: bool = True,
               sentence_vectors: bool = True, seed: int = 0, factory: str = "auto", log=print,
               real: bool = False, embedders=None, real_base: int = 20_000) -> dict:
    """Create `home` with `n_chunks` chunks; returns timings and sizes. `real`: chunk vectors are
    embeddings of perturbed real text by each model and mixes of them (_realvecs.py, `real_base` real
    texts) instead of clusters. `embedders`: "a+b" or a list (default: the product's default ensemble)."""
    from _realvecs import embedders as names_of

    from talkindex.home import IndexConfig, Layout
    from talkindex.index.store import Store
    from talkindex.index.vectors import VectorIndex

    names = names_of(embedders)
    dims = model_dims(names)
    dim = sum(dims)
    config = IndexConfig(embedders=names)
    key = config.embedder
    rng = np.random.default_rng(seed)
    home = Path(home)
    if home.exists():
        shutil.rmtree(home)
    layout = Layout(home)
    store = Store(layout, writer=True)
    store.init()
    store.set_meta("embedder", key)
    vocab = _vocab(rng)
    zipf = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
    zipf /= zipf.sum()
    centers = None if real else per_model(lambda x: x, rng.standard_normal((2000, dim), dtype=np.float32), dims)
    t0 = time.perf_counter()
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
                   'indexed', 'tiny.en', count(*), ?
            FROM chunks GROUP BY episode_id""", [key])
        con.execute("INSERT OR REPLACE INTO meta VALUES ('next_chunk_id', ?)", [str(n_chunks + 1)])
        eps = con.execute("SELECT episode_id, min(id), count(*) FROM chunks GROUP BY 1 ORDER BY 1").fetchall()
    if real:  # the joined array is the index's: filled in place (4.6 GB at 1M x 1152), never copied
        from _realvecs import base_vectors, expand

        all_vecs = expand(base_vectors(min(real_base, n_chunks), log=log, names=names)[0], n_chunks, dims=dims)
    else:
        all_vecs = np.empty((n_chunks, dim), np.float32)
    for eid, first_id, n in eps:
        if real:
            cv = all_vecs[first_id - 1: first_id - 1 + n]
        else:
            cv = all_vecs[first_id - 1: first_id - 1 + n] = clustered_vectors(rng, n, centers, dims=dims)
        if sentence_vectors:  # each sentence near its window, per model (norm of the noise ~1.2)
            ids = np.arange(first_id, first_id + n, dtype=np.int64)
            sv = per_model(lambda part: part + 1.2 * rng.standard_normal(part.shape, dtype=np.float32)
                           / np.sqrt(part.shape[1]), np.repeat(cv, SENTS_PER_CHUNK, 0), dims)
            layout.episode_dir(eid).mkdir(parents=True, exist_ok=True)
            np.savez(layout.embeddings(eid), chunk_ids=ids, chunk_vecs=cv.astype(np.float16),
                     sent_vecs=sv.astype(np.float16), embedder=np.array(key),
                     sent_starts=np.arange(n * SENTS_PER_CHUNK, dtype=np.float64) * 2.25)
    n_eps = len(eps)
    t_rows = time.perf_counter() - t0
    log(f"  rows: {n_chunks} chunks / {n_eps} episodes in {t_rows:.1f} s")
    t0 = time.perf_counter()
    if fts:  # the keyword (BM25) index, as ingest builds it (here in one segment)
        from talkindex.index.bm25 import KeywordIndex

        KeywordIndex(layout.keywords).rebuild(*store.chunk_texts())
    t_fts = time.perf_counter() - t0
    log(f"  keyword index: {t_fts:.1f} s")
    layout.save_config(config)
    t0 = time.perf_counter()
    vi = VectorIndex(layout.vectors, factory=factory)
    vi.add(np.arange(1, n_chunks + 1, dtype=np.int64), all_vecs, key)
    t_vec = time.perf_counter() - t0
    log(f"  vectors: {t_vec:.1f} s ({vi.manifest()['segments'][0].get('factory', '?')})")
    store.prepare_readers()  # the readers' snapshot, as ingest publishes it (rows files + catalog.json)
    if encoder_from is not None and (Path(encoder_from) / "query_encoder").is_dir():  # older homes
        shutil.copytree(Path(encoder_from) / "query_encoder", home / "query_encoder")
    return {"rows_s": t_rows, "fts_s": t_fts, "vectors_s": t_vec, "vecs": all_vecs, "embedders": names,
            "dims": dims, "embedder": key}


def dir_bytes(p: Path, exclude: tuple[str, ...] = ()) -> int:
    return sum(f.stat().st_size for f in Path(p).rglob("*") if f.is_file() and not any(x in f.parts for x in exclude))


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def save_json(path: Path, data: dict) -> None:
    Path(path).write_text(json.dumps(data, indent=1, default=str))
