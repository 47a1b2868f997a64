"""Detected chapters: topic boundaries from the sentence vectors the index already stores.

Most episodes publish no chapters, so a long transcript reads as one block and a hit lacks context.
The method is TextTiling (Hearst 1997) with sentence embeddings in place of word counts, as in
recent embedding-based segmenters (e.g. Solbiati et al. 2021): at every gap between sentences, the
cosine between the mean (episode-centred) vector of the sentences just before and just after it;
smoothed; a gap's depth is how far that similarity dips below the peaks on either side, plus a bonus
when the next sentence opens with a spoken transition ("let's talk about …"). Deep valleys are boundaries,
deepest first, none closer than `min_chapter_s` to another or to the episode's ends.

Pure functions on arrays: vectors are whatever unit-norm sentence vectors the home stores (any
dimension, any embedder or ensemble), so detection is model-agnostic and costs no extra encoding.
Titles are extractive: the chapter's most central sentence, cut to a short phrase; never invented.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..records import Chapter

DETECTED = "detected"
TITLE_WORDS = 9  # a detected chapter's title: at most this many words of its central sentence


@dataclass(frozen=True)
class DetectOptions:
    """Tuned on devset3 and devset/devset2 concatenations (benchmarks/bench_chapters.py)."""

    block: int = 16  # sentences on each side of a gap whose mean vectors are compared, at most …
    block_share: int = 6  # … 1/block_share of the episode's sentences (short talks, short blocks), at least 4
    smooth: int = 2  # moving-average half-width over the gap similarities
    spread: int = 4  # a boundary is the lowest similarity among this many gaps on either side
    min_depth: float = 0.4  # a valley must dip at least this far below its surrounding peaks …
    relative: float = 0.4  # … and at least this fraction of the episode's deepest valley
    min_chapter_s: float = 20.0  # no boundary closer than this to another or to either end
    min_sentences: int = 12  # shorter transcripts get one chapter: too little text to compare
    cue_weight: float = 0.4  # added to the depth of a gap whose next sentence opens with a transition


# Spoken transitions that open a new topic ("okay, let's talk about …", "we're almost out of time"):
# cue phrases mark segment starts in spoken discourse (Passonneau & Litman 1997; LCseg, Galley et al. 2003).
_LEAD = r"^(?:(?:okay|ok|alright|all right|so|now|well|right|and|great|good)[,.!]?\s+)*"
CUE = re.compile(_LEAD + r"(?:"
                 r"let'?s (?:talk|move|switch|turn|get|go|start|dive|shift|look|come|wrap|finish|close|end)\b"
                 r"|(?:moving|turning|switching) (?:on|to)\b|on to\b|next(?: up)?,|now for\b"
                 r"|the (?:next|last|final|third|second|other) (?:piece|part|topic|thing|question|area|bit)\b"
                 r"|(?:to sum up|to wrap up|in summary|to conclude|to recap)\b"
                 r"|we'?re (?:almost|nearly|just about|about|running) (?:out of|at) time\b"
                 r"|before we (?:go|wrap|finish|close)\b"
                 r"|(?:hello|hi)(?: everyone| all| and)?,? (?:and )?welcome\b|welcome (?:to|back)\b)",
                 re.IGNORECASE)


def cue(text: str) -> bool:
    """Does the sentence open with a topic transition?"""
    return bool(CUE.match(text.strip()))


def gap_similarity(vecs: np.ndarray, block: int) -> np.ndarray:
    """Cosine between the mean vectors of up to `block` sentences before and after each gap (n-1 gaps)."""
    v = np.asarray(vecs, np.float32)
    n = len(v)
    if n < 2:
        return np.zeros(0, np.float32)
    csum = np.vstack([np.zeros((1, v.shape[1]), np.float32), np.cumsum(v, axis=0)])
    gaps = np.arange(1, n)
    lo, hi = np.maximum(gaps - block, 0), np.minimum(gaps + block, n)
    left = csum[gaps] - csum[lo]
    right = csum[hi] - csum[gaps]
    norm = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    return np.einsum("ij,ij->i", left, right) / np.maximum(norm, 1e-9)


def centred(vecs: np.ndarray) -> np.ndarray:
    """Unit vectors less the episode's mean direction: what every sentence shares (the show's domain, the
    speakers' style) says nothing about where topics change, and it swamps the cosines that do."""
    v = np.asarray(vecs, np.float32)
    v = v - v.mean(axis=0)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)


def depth_scores(sim: np.ndarray) -> np.ndarray:
    """Hearst's depth: (highest peak reached climbing left − s) + (highest climbing right − s)."""
    n = len(sim)
    depth = np.zeros(n, np.float32)
    for i in range(n):
        lpk = sim[i]
        for j in range(i - 1, -1, -1):
            if sim[j] < lpk:
                break
            lpk = sim[j]
        rpk = sim[i]
        for j in range(i + 1, n):
            if sim[j] < rpk:
                break
            rpk = sim[j]
        depth[i] = (lpk - sim[i]) + (rpk - sim[i])
    return depth


def _smooth(x: np.ndarray, half: int) -> np.ndarray:
    if half <= 0 or len(x) < 3:
        return x
    k = np.ones(2 * half + 1, np.float32)
    pad = np.pad(x, half, mode="edge")
    return np.convolve(pad, k / k.sum(), mode="valid")


def boundaries(starts: np.ndarray, vecs: np.ndarray, duration: float, opts: DetectOptions | None = None,
               texts: list[str] | None = None) -> list[int]:
    """Indexes of the sentences that open a new chapter (sorted; the first chapter is implied)."""
    opts = opts or DetectOptions()
    n = len(starts)
    if n < opts.min_sentences or len(vecs) != n:
        return []
    block = int(np.clip(n // opts.block_share, 4, opts.block))
    sim = _smooth(gap_similarity(centred(vecs), block), opts.smooth)
    depth = depth_scores(sim)
    gaps = np.arange(1, n)  # blocks cut short by the episode's ends are noisier: their valleys count less
    depth = depth * np.sqrt(np.minimum(np.minimum(gaps, n - gaps), block) / block)
    # only the lowest point of a valley counts (a noisy slope has local minima of its own)
    low = np.array([sim[g] <= sim[max(0, g - opts.spread):g + opts.spread + 1].min() for g in range(len(sim))])
    depth = np.where(low, depth, 0.0)
    if texts is not None and opts.cue_weight:
        depth = depth + opts.cue_weight * np.array([cue(t) for t in texts[1:]], np.float32)
    end = max(float(duration), float(starts[-1]))
    chosen: list[int] = []
    floor = max(opts.min_depth, opts.relative * float(depth.max(initial=0.0)))
    for g in np.argsort(-depth, kind="stable"):
        if depth[g] < floor:
            break
        i = int(g) + 1  # gap g lies before sentence g+1
        t = float(starts[i])
        if t - float(starts[0]) < opts.min_chapter_s or end - t < opts.min_chapter_s:
            continue
        if all(abs(t - float(starts[j])) >= opts.min_chapter_s for j in chosen):
            chosen.append(i)
    return sorted(chosen)


def title_for(texts: list[str], vecs: np.ndarray) -> str:
    """The chapter's most central sentence (closest to its mean vector), cut to a short phrase."""
    v = np.asarray(vecs, np.float32)
    words = [len(t.split()) for t in texts]
    centroid = v.mean(axis=0)
    score = v @ centroid
    if any(w >= 5 for w in words):  # "Right." or "Thanks." are central to nothing
        score = np.where(np.asarray(words) >= 5, score, -np.inf)
    return short_phrase(texts[int(np.argmax(score))])


_FILLER = re.compile(r"^(?:(?:and|so|but|yes|yeah|no|oh|well|okay|ok|right|um|uh|now|also)\b[,.!]?\s+)+", re.IGNORECASE)


def short_phrase(text: str, max_words: int = TITLE_WORDS) -> str:
    """A sentence's first clause (or first `max_words` words), without leading fillers ("So, …", "And …")
    or trailing punctuation."""
    rest = _FILLER.sub("", text.strip())
    words = (rest[:1].upper() + rest[1:]).split() if rest else text.split()
    cut = words[:max_words]
    for i, w in enumerate(cut):  # stop at the first clause break after a few words
        if i >= 3 and w.endswith((",", ";", ":", "—")):
            cut = cut[: i + 1]
            break
    phrase = " ".join(cut).rstrip(",;:—.?!…")
    return phrase + ("…" if len(cut) < len(words) else "")


def detect_chapters(starts: np.ndarray, texts: list[str], vecs: np.ndarray, duration: float,
                    opts: DetectOptions | None = None) -> list[Chapter]:
    """Chapters (source 'detected') of one episode from its sentences' starts, texts and unit vectors."""
    n = len(texts)
    if n == 0:
        return []
    starts = np.asarray(starts, np.float64)
    cuts = [0, *boundaries(starts, vecs, duration, opts, texts), n]
    out = []
    for a, b in zip(cuts, cuts[1:]):
        start = 0.0 if a == 0 else float(starts[a])
        end = float(starts[b]) if b < n else max(float(duration), float(starts[-1]))
        out.append(Chapter(start=start, title=title_for(texts[a:b], vecs[a:b]), end=end, source=DETECTED))
    return out


def episode_chapters(chapters: list[Chapter], sents: list, vecs: np.ndarray, duration: float,
                     opts: DetectOptions | None = None) -> list[Chapter]:
    """An episode's chapters: the published ones when it has any (they win), else detected ones."""
    published = [c for c in chapters if c.source != DETECTED]
    if published:
        return published
    return detect_chapters(np.asarray([s.start for s in sents], np.float64), [s.text for s in sents], vecs,
                           duration, opts)
