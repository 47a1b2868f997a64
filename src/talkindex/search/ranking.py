"""Ranking, free of storage: fuse the retrievers' candidates, mix in sentence and episode evidence,
deduplicate, choose where each hit starts. Pure functions over plain dicts, so the retrieval benchmark
(benchmarks/bench_retrieval.py) ranks hundreds of configurations in memory with exactly this code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .searcher import SearchOptions

RRF_K = 60


def _rrf(ranked: list[dict[int, float]], weights: list[float]) -> dict[int, float]:
    fused: dict[int, float] = {}
    for w, scores in zip(weights, ranked):
        for rank, cid in enumerate(sorted(scores, key=scores.get, reverse=True)):
            fused[cid] = fused.get(cid, 0.0) + w / (RRF_K + rank + 1)
    return fused


def _linear(ranked: list[dict[int, float]], weights: list[float]) -> dict[int, float]:
    fused: dict[int, float] = {}
    for w, scores in zip(weights, ranked):
        top = max(scores.values(), default=0.0) or 1.0
        for cid, sc in scores.items():
            fused[cid] = fused.get(cid, 0.0) + w * sc / top
    return fused


@dataclass
class Ranked:
    """One ranked candidate: its chunk, fused score, and the sentence its start should move to."""

    chunk_id: int
    score: float
    sentence: int | None  # absolute sentence index in the episode; None: keep the window's start


class _SentenceSims:
    """Query-to-sentence similarities of a candidate window, computed once per window per query."""

    def __init__(self, vectors_of, qvec: np.ndarray | None):
        self.vectors_of = vectors_of  # episode id → its sentence vectors (or None)
        self.qvec = qvec
        self._memo: dict[tuple[str, int, int], np.ndarray | None] = {}
        self._episodes: dict[str, np.ndarray | None] = {}

    def __call__(self, r: dict) -> np.ndarray | None:
        if self.qvec is None:
            return None
        key = (r["episode_id"], r["first_sentence"], r["last_sentence"])
        if key not in self._memo:
            eid = r["episode_id"]
            if eid not in self._episodes:  # one file stat per episode per question
                self._episodes[eid] = self.vectors_of(eid)
            sv = self._episodes[eid]
            lo, hi = r["first_sentence"], r["last_sentence"]
            ok = sv is not None and 0 <= lo <= hi < len(sv)
            self._memo[key] = (sv[lo : hi + 1].astype(np.float32) @ self.qvec) if ok else None
        return self._memo[key]


def rank_candidates(query: str, dense: dict[int, float] | None, keyword: dict[int, float] | None,
                    rows: dict[int, dict], sims, opts: SearchOptions) -> list[Ranked]:
    """Fuse the retrievers' candidates and rank them: the whole ranking, free of storage.

    Why a pure function: the retrieval benchmark (benchmarks/bench_retrieval.py) evaluates hundreds of
    configurations from stored transcripts in memory, and must rank with exactly this code. Inputs:
    `dense` chunk id → cosine, `keyword` chunk id → BM25 (None: retriever not used), `rows` chunk id →
    {episode_id, start, end, quality, first_sentence, last_sentence, text}, `sims(row)` → the query's
    similarity to each sentence of the window (or None)."""
    ranked: list[dict[int, float]] = []
    weights: list[float] = []
    if dense is not None:
        if opts.sentence_weight > 0:
            dense = _sentence_mix(dense, rows, sims, opts.sentence_weight)
        if opts.episode_weight > 0:
            dense = _episode_prior(dense, rows, opts.episode_weight)
        ranked.append(dense)
        weights.append(opts.dense_weight)
    if keyword is not None:
        ranked.append(keyword)
        weights.append(opts.keyword_weight if dense is not None else 1.0)
    fused = _rrf(ranked, weights) if opts.fusion == "rrf" else _linear(ranked, weights)
    top = sorted(fused, key=fused.get, reverse=True)[: max(opts.k * 4, 20)]
    cands = []
    for cid in top:
        r = rows.get(cid)
        if r is None:  # a vector whose chunk was replaced; doctor/compaction drops these
            continue
        q = r["quality"] if r.get("quality") is not None else 1.0
        cands.append((cid, fused[cid] * (0.5 + 0.5 * q)))
    cands.sort(key=lambda c: c[1], reverse=True)
    if opts.dedupe:
        cands = _dedupe_spans(cands, rows)
    out = []
    for cid, score in cands[: opts.k]:
        out.append(Ranked(cid, score, start_sentence(rows[cid], sims(rows[cid]), opts.start)))
    return out


def rerank_stage(query: str, dense: dict[int, float] | None, keyword: dict[int, float] | None,
                 rows: dict[int, dict], sims, opts: SearchOptions, scorer) -> list[Ranked]:
    """Two-stage ranking: the fused top `opts.rerank_top` windows re-scored by `scorer(query, texts)`
    (a cross-encoder, or a stronger bi-encoder), then deduplicated and cut to k as usual.

    Why pluggable: the stronger model only ever sees rerank_top windows per question, so its cost does
    not grow with the index; the benchmark plugs in mpnet cosine, `--reranker NAME` a cross-encoder."""
    from dataclasses import replace

    first = rank_candidates(query, dense, keyword, rows, sims, replace(opts, k=opts.rerank_top, dedupe=False))
    if not first:
        return []
    scores = scorer(query, [rows[r.chunk_id]["text"] for r in first])
    sub = {r.chunk_id: float(s) for r, s in zip(first, scores)}
    # one retriever under RRF keeps the scorer's order whatever its scale (cross-encoder logits may be < 0)
    return rank_candidates(query, sub, None, rows, sims, replace(opts, sentence_weight=0.0, episode_weight=0.0,
                                                                 fusion="rrf"))


def _sentence_mix(dense: dict[int, float], rows: dict[int, dict], sims, w: float) -> dict[int, float]:
    """Blend a window's similarity with that of its best-matching sentence (multi-granularity)."""
    out = {}
    for cid, sim in dense.items():
        r = rows.get(cid)
        s = sims(r) if r is not None else None
        out[cid] = sim if s is None or not len(s) else (1 - w) * sim + w * float(np.max(s))
    return out


def _episode_prior(dense: dict[int, float], rows: dict[int, dict], w: float, top: int = 3) -> dict[int, float]:
    """Add evidence from the rest of the episode: a question is about one episode, and an episode whose
    several windows match is likelier than one lucky window of an episode that shares a few words."""
    per: dict[str, list[float]] = {}
    for cid, sc in dense.items():
        r = rows.get(cid)
        if r is not None:
            per.setdefault(r["episode_id"], []).append(sc)
    ep = {e: float(np.mean(sorted(v, reverse=True)[:top])) for e, v in per.items()}
    return {cid: sc + w * ep.get(rows[cid]["episode_id"], 0.0) if cid in rows else sc for cid, sc in dense.items()}


def start_sentence(r: dict, sims: np.ndarray | None, how: str = "best") -> int | None:
    """Where a hit should start: the window's best-matching sentence ("best"), the sentence before it
    ("before": a little lead-in, and the answer stays inside [start, end] since end is the window's), or
    None for the window's own start ("chunk")."""
    if how == "chunk" or sims is None or not len(sims):
        return None
    b = int(np.argmax(sims))
    if how == "before":
        b = max(0, b - 1)
    return r["first_sentence"] + b


def _dedupe_spans(cands: list[tuple[int, float]], rows: dict[int, dict]) -> list[tuple[int, float]]:
    """Drop a candidate that overlaps a better one of the same episode (overlapping windows)."""
    kept: list[tuple[int, float]] = []
    for cid, sc in cands:
        r = rows[cid]
        if any(rows[k]["episode_id"] == r["episode_id"] and r["start"] < rows[k]["end"] and r["end"] > rows[k]["start"]
               for k, _ in kept):
            continue
        kept.append((cid, sc))
    return kept


_UNITS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve thirteen "
                                      "fourteen fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i > 1}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}
_NUM_TOKEN = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*|\S+|\s+")


def normalize_numbers(text: str) -> str:
    """Spoken numbers → digits ("three hundred and forty two" → "342", "twenty-three" → "23").

    Why: Whisper writes most numbers as digits while people type words or digits, so both sides of a
    match are brought to digits. "percent" and "%" both become " percent". Lone "one" is left alone
    (it is a pronoun far more often than a number)."""
    text = re.sub(r"(\d)\s*%", r"\1 percent", text)
    toks = _NUM_TOKEN.findall(text)
    out: list[str] = []
    i = 0
    while i < len(toks):
        if toks[i].isspace():
            out.append(toks[i])
            i += 1
            continue
        j, total, cur, used = i, 0, 0, []
        while j < len(toks):
            t = toks[j]
            if t.isspace() or (t.lower() == "and" and used and used[-1].lower() in _SCALES and j + 2 < len(toks)
                               and toks[j + 2].lower().split("-")[0] in {**_UNITS, **_TENS}):
                j += 1
                continue
            parts = t.lower().split("-")
            if not all(p in _UNITS or p in _TENS or p in _SCALES for p in parts):
                break
            for p in parts:
                if p in _SCALES:
                    cur = max(cur, 1) * _SCALES[p]
                    if _SCALES[p] >= 1000:
                        total, cur = total + cur, 0
                else:
                    cur += _UNITS.get(p, 0) + _TENS.get(p, 0)
            used.append(t)
            j += 1
        if used and not (len(used) == 1 and used[0].lower() == "one"):
            while j > i and (toks[j - 1].isspace() or toks[j - 1].lower() == "and"):
                j -= 1
            out.append(str(total + cur))
            i = j
        else:
            out.append(toks[i])
            i += 1
    return "".join(out)
