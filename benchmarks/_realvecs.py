"""Vectors that look like a real index's: embeddings of perturbed real transcript text by the index's models.

Goal 4 of issue 14 asks for recall measured on embeddings of real text, not random vectors (random
vectors in 384 dimensions are nearly orthogonal, a worst case no real index has). Source text: the
spoken devset scripts (`devset`, `devset2`) and the episode descriptions of the real podcast feeds
in ../shared/fixtures. Each base text is a window of 1-3 consecutive sentences (at most 48 words) of one document with
~15% of its words dropped and ~5% replaced by words of other documents (ASR-like noise), embedded
with the product's own passage encoder of each model (the ONNX export under the user cache,
`talkindex.embed.passages.export_dir(name)`, batch 64, `query=False`). An ensemble's vector is the models'
unit vectors joined exactly like the product (`talkindex.embed.passages.join_unit`: concatenated / sqrt(n)).
`expand()` reaches millions by mixing two real embeddings (weights 0.55-0.9, renormalised per model,
the same pair and weight for every model): points inside the cloud of real embeddings, so no tight
clusters of near-copies that would flatter an IVF index.

Cached under benchmarks/.cache in blocks of `BLOCK` texts per model (the texts are a fixed sequence,
so a block serves every size that covers it, and an interrupted run resumes). mpnet encodes ~5x
slower than MiniLM: 20k texts take minutes on 2 cores the first time (`--real-base` sets how many).
"""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FIX = HERE.parent.parent / "shared" / "fixtures"
CACHE = HERE / ".cache"


def documents() -> list[list[str]]:
    """Real text as lists of sentences: devset scripts and feed item descriptions."""
    docs: list[list[str]] = []
    for s in ("devset", "devset2"):
        p = FIX / s / "episodes.json"
        if p.exists():
            docs += [[x["text"] if isinstance(x, dict) else str(x) for x in e["sentences"]]
                     for e in json.loads(p.read_text())]
    import feedparser

    for p in sorted((FIX / "feeds").glob("*.rss")):
        for it in feedparser.parse(str(p)).entries:
            text = html.unescape(re.sub(r"<[^>]+>", " ", it.get("summary", "") or ""))
            sents = [x.strip() for x in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if len(x.split()) >= 3]
            if sents:
                docs.append([it.get("title", "")] + sents)
    return docs


def perturbed_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    docs = documents()
    if not docs:
        raise SystemExit(f"no fixture text under {FIX}")
    vocab = [w for d in docs for s in d for w in s.split()]
    weights = np.array([len(d) for d in docs], float)
    weights /= weights.sum()
    out = []
    for _ in range(n):
        d = docs[rng.choice(len(docs), p=weights)]
        w = int(rng.integers(1, 4))
        i = int(rng.integers(0, max(1, len(d) - w + 1)))
        words = " ".join(d[i:i + w]).split()[:48]
        kept = []
        for word in words:
            r = rng.random()
            if r < 0.15:
                continue
            kept.append(vocab[rng.integers(len(vocab))] if r < 0.20 else word)
        out.append(" ".join(kept) or words[0])
    return out


BLOCK = 1024  # texts per cached block of vectors


def embedders(names=None) -> list[str]:
    """The models to embed with: `names` ("a+b", a list), else the product's default ensemble."""
    from talkindex.home import default_embedders, split_embedders

    return split_embedders(names) if names else default_embedders()[0]


def export_of(name: str) -> Path:
    from talkindex.embed.passages import export_dir

    d = export_dir(name)
    if not (d / "meta.json").exists():
        raise SystemExit(f"no ONNX export of {name} under {d}: ingest something with it once (or "
                         f"`talkindex ingest --embedder {name} ...`) so the export exists")
    return d


def dims(names=None) -> list[int]:
    """Each model's dimension, from its ONNX export's meta (nothing loaded)."""
    return [int(json.loads((export_of(n) / "meta.json").read_text())["dim"]) for n in embedders(names)]


def model_vectors(name: str, texts: list[str], log=print) -> np.ndarray:
    """Passage embeddings of `texts` by one model, float32 unit. `texts`: `perturbed_texts(k * BLOCK)` (whole
    blocks, so every cached block holds the same texts whatever size asked for it)."""
    from talkindex.embed.passages import embedder_key

    CACHE.mkdir(parents=True, exist_ok=True)
    enc, out = None, []
    t0 = time.perf_counter()
    for b in range(0, len(texts), BLOCK):
        path = CACHE / f"realvecs-{embedder_key(name)}-b{b // BLOCK:04d}.npy"
        if path.exists():
            v = np.load(path)
        else:
            if enc is None:
                from talkindex.embed.onnx import OnnxQueryEncoder

                enc = OnnxQueryEncoder(export_of(name))
            v = enc.encode(texts[b:b + BLOCK], batch_size=64, query=False)
            np.save(path.with_suffix(".tmp.npy"), v)
            path.with_suffix(".tmp.npy").replace(path)
            log(f"  {name}: embedded {b + len(v)}/{len(texts)} real-text windows ({time.perf_counter() - t0:.0f} s)")
        out.append(v)
    return np.concatenate(out).astype(np.float32, copy=False)


def base_vectors(n: int, log=print, names=None) -> tuple[np.ndarray, list[str]]:
    """`n` real embeddings (float32, unit; an ensemble's joined like the product's) and their texts."""
    from talkindex.embed.passages import join_unit

    texts = perturbed_texts(-(-n // BLOCK) * BLOCK)
    return join_unit([model_vectors(m, texts, log)[:n] for m in embedders(names)]), texts[:n]


def expand(base: np.ndarray, n: int, seed: int = 1, dims: list[int] | None = None) -> np.ndarray:
    """`n` vectors: the base ones, then normalised mixes of two random base vectors. `dims`: the
    models' dimensions when `base` is an ensemble's (each model's part mixed and renormalised on its
    own, then scaled by 1/sqrt(n models) as `join_unit` does); one part by default."""
    if n <= len(base):
        return base[:n].copy()
    dims = dims or [base.shape[1]]
    if sum(dims) != base.shape[1]:
        raise ValueError(f"dims {dims} do not add up to {base.shape[1]}")
    scale = np.float32(1 / np.sqrt(len(dims)) if len(dims) > 1 else 1.0)
    edges = np.cumsum([0, *dims])
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), np.float32)  # written in place: 4.6 GB at 1M x 1152, no copies
    out[: len(base)] = base
    step = 100_000
    for i in range(len(base), n, step):
        m = min(step, n - i)
        a = rng.integers(0, len(base), m)
        b = rng.integers(0, len(base), m)
        w = rng.uniform(0.55, 0.9, (m, 1)).astype(np.float32)
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            v = w * base[a, lo:hi] + (1 - w) * base[b, lo:hi]
            out[i:i + m, lo:hi] = v * (scale / np.linalg.norm(v, axis=1, keepdims=True))
    return out


def queries(n: int, seed: int = 2, names=None) -> np.ndarray:
    """Query vectors: embeddings of fresh perturbed windows (held-out noise, same documents), each model's
    query encoder joined like the product's."""
    from talkindex.embed.onnx import OnnxQueryEncoder
    from talkindex.embed.passages import join_unit

    qs = [" ".join(q.split()[:12]) for q in perturbed_texts(n, seed=seed + 1000)]
    return join_unit([OnnxQueryEncoder(export_of(m)).encode(qs) for m in embedders(names)])
