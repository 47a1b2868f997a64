"""Vectors that look like a real index's: MiniLM embeddings of perturbed real transcript text.

Goal 4 of issue 14 asks for recall measured on embeddings of real text, not random vectors (random
vectors in 384 dimensions are nearly orthogonal, a worst case no real index has). Source text: the
spoken devset scripts (`devset`, `devset2`) and the episode descriptions of the real podcast feeds
in ../shared/fixtures. Each base text is a window of 1-3 consecutive sentences (at most 48 words) of one document with
~15% of its words dropped and ~5% replaced by words of other documents (ASR-like noise), embedded
with the product's own passage encoder (ONNX export, batch 64). `expand()` reaches millions by mixing
two real embeddings (weights 0.55-0.9, renormalised): points inside the cloud of real embeddings, so
no tight clusters of near-copies that would flatter an IVF index. Cached under benchmarks/.cache.
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


def base_vectors(n: int, log=print) -> tuple[np.ndarray, list[str]]:
    """`n` real embeddings (float32, unit) and their texts, cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    vp, tp = CACHE / f"realvecs-{n}.npy", CACHE / f"realvecs-{n}.json"
    if vp.exists() and tp.exists():
        return np.load(vp), json.loads(tp.read_text())
    from talkindex.embedding import export_dir
    from talkindex.onnx_encoder import OnnxQueryEncoder

    texts = perturbed_texts(n)
    enc = OnnxQueryEncoder(export_dir("all-MiniLM-L6-v2"))
    t0 = time.perf_counter()
    out = np.empty((n, enc.dim), np.float32)
    step = 4096
    for i in range(0, n, step):
        out[i:i + step] = enc.encode(texts[i:i + step], batch_size=64, query=False)
        log(f"  embedded {min(n, i + step)}/{n} real-text windows ({time.perf_counter() - t0:.0f} s)")
    np.save(vp, out)
    tp.write_text(json.dumps(texts))
    return out, texts


def expand(base: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    """`n` vectors: the base ones, then normalised mixes of two random base vectors."""
    if n <= len(base):
        return base[:n].copy()
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), np.float32)
    out[: len(base)] = base
    step = 100_000
    for i in range(len(base), n, step):
        m = min(step, n - i)
        a = rng.integers(0, len(base), m)
        b = rng.integers(0, len(base), m)
        w = rng.uniform(0.55, 0.9, (m, 1)).astype(np.float32)
        v = w * base[a] + (1 - w) * base[b]
        out[i:i + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def queries(n: int, seed: int = 2) -> np.ndarray:
    """Query vectors: embeddings of fresh perturbed windows (held-out noise, same documents)."""
    from talkindex.embedding import export_dir
    from talkindex.onnx_encoder import OnnxQueryEncoder

    qs = perturbed_texts(n, seed=seed + 1000)
    return OnnxQueryEncoder(export_dir("all-MiniLM-L6-v2")).encode([" ".join(q.split()[:12]) for q in qs])
