"""`talkindex eval`: retrieval quality on a spoken QA set, and ASR word error rate.

Retrieval sets have the layout of the project's devset: feed.xml (enclosures at
http://127.0.0.1:PORT/…), the media files, questions.json and truth.json. A result counts as a hit
when it is in the question's episode and its [start, end] overlaps the answer sentence ±1 sentence.
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
import unicodedata
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from .errors import UsageError


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))], 2)


def answer_span(truth: dict, episode: str, i: int) -> tuple[float, float, float]:
    """(span start, span end, answer sentence start) with ±1 sentence of context."""
    sents = truth[episode]["sentences"]
    lo, hi = max(0, i - 1), min(len(sents) - 1, i + 1)
    return sents[lo]["start"], sents[hi]["end"], sents[i]["start"]


def score(questions: list[dict], truth: dict, results: list[list[dict]], episode_of: dict[str, str]) -> dict:
    """Hit@1, hit@5, MRR@10 and start-error figures, overall and per question kind."""
    rows = []
    for q, hits in zip(questions, results):
        s0, s1, ans = answer_span(truth, q["episode"], q["answer_sentence_index"])
        rank, err = None, None
        for r, h in enumerate(hits[:10], 1):
            if episode_of.get(h["episode_id"]) == q["episode"] and h["start"] < s1 and h["end"] > s0:
                rank, err = r, abs(h["start"] - ans)
                break
        rows.append({"qid": q.get("qid"), "kind": q.get("kind", "all"), "rank": rank, "start_error": err})

    def summary(rs: list[dict]) -> dict:
        n = len(rs) or 1
        errs = [r["start_error"] for r in rs if r["start_error"] is not None and r["rank"] <= 5]
        return {
            "n": len(rs),
            "r@1": round(sum(r["rank"] == 1 for r in rs) / n, 3),
            "r@5": round(sum(r["rank"] is not None and r["rank"] <= 5 for r in rs) / n, 3),
            "mrr@10": round(sum(1 / r["rank"] for r in rs if r["rank"]) / n, 3),
            "within_10s": round(sum(e <= 10 for e in errs) / n, 3),
            "start_error_median": _pct(errs, 0.5), "start_error_p90": _pct(errs, 0.9),
        }

    kinds = sorted({r["kind"] for r in rows})
    return {"overall": summary(rows), "by_kind": {k: summary([r for r in rows if r["kind"] == k]) for k in kinds},
            "questions": rows}


def eval_retrieval(directory: Path, home: Path | None = None, k: int = 10, modes: tuple[str, ...] = ("hybrid",),
                   ingest_options=None, progress=None) -> dict:
    """Serve `directory` on loopback, ingest its feed, ask every question, score."""
    from .api import Index
    from .serve import serve_directory

    directory = Path(directory)
    for name in ("feed.xml", "questions.json", "truth.json"):
        if not (directory / name).is_file():
            raise UsageError(f"{directory}: not an eval set (missing {name}; see `talkindex eval retrieval --help`)")
    questions = json.loads((directory / "questions.json").read_text())
    truth = json.loads((directory / "truth.json").read_text())
    scratch = None
    if home is None:
        scratch = tempfile.TemporaryDirectory(prefix="talkindex-eval-")
        home = Path(scratch.name)
    try:
        idx = Index(home)
        with serve_directory(directory) as base:
            t0 = time.perf_counter()
            report = idx.ingest([f"{base}/feed.xml"], ingest_options, progress)
            ingest_s = time.perf_counter() - t0
        if not report.ok:
            errs = report.input_errors + [r.error for r in report.results if r.error]
            raise UsageError(f"{directory}: ingest failed: {errs[0] if errs else 'unknown error'}")
        episode_of = {e["id"]: PurePosixPath(urlsplit(e["media_url"]).path).stem for e in idx.episodes()}
        out = {"set": str(directory), "questions": len(questions), "ingest_seconds": round(ingest_s, 2), "modes": {}}
        for mode in modes:
            qs = [q["query"] for q in questions]
            idx.ask_many(qs[:1], k=k, mode=mode)  # warm up: load models once
            t0 = time.perf_counter()
            results = idx.ask_many(qs, k=k, mode=mode)
            per_q = (time.perf_counter() - t0) / max(1, len(qs))
            from dataclasses import asdict

            res = score(questions, truth, [[asdict(h) for h in hs] for hs in results], episode_of)
            res["ask_ms_per_question"] = round(per_q * 1000, 1)
            out["modes"][mode] = res
        return out
    finally:
        if scratch is not None:
            scratch.cleanup()


# -- ASR ---------------------------------------------------------------------------------------
def normalize(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s']", " ", text).replace("'", "")
    return text.split()


def wer_counts(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def eval_asr(manifest: Path, model: str = "tiny.en", language: str | None = "en", exact_only: bool = True,
             **transcribe_kwargs) -> dict:
    """WER per clip and overall (normalised text) and real-time factor, through the pipeline's transcriber."""
    from .transcribe import TranscribeOptions, Transcriber

    manifest = Path(manifest)
    clips = json.loads(manifest.read_text())
    if isinstance(clips, dict):
        clips = clips.get("clips", [])
    base = manifest.parent
    tr = Transcriber(TranscribeOptions(model=model, **transcribe_kwargs))
    tr.load()
    rows, errs, words, audio, wall = [], 0, 0, 0.0, 0.0
    for c in clips:
        if language and c.get("language", "en") != language:
            continue
        ref_text = c.get("transcript_text") or (base / c["transcript"]).read_text()
        if exact_only and not _exact_reference(c):
            continue
        t0 = time.perf_counter()
        t = tr(Path(c["file"]).stem, base / c["file"])
        dt = time.perf_counter() - t0
        hyp = " ".join(s.text for s in t.segments)
        ref = normalize(ref_text)
        e = wer_counts(ref, normalize(hyp))
        rows.append({"clip": c["file"], "words": len(ref), "errors": e, "wer": round(e / max(1, len(ref)), 3),
                     "seconds": round(t.duration, 1), "rtf": round(dt / max(t.duration, 1e-6), 3)})
        errs, words, audio, wall = errs + e, words + len(ref), audio + t.duration, wall + dt
    return {"model": model, "clips": rows, "words": words, "wer": round(errs / max(1, words), 4),
            "audio_seconds": round(audio, 1), "rtf": round(wall / max(audio, 1e-6), 4),
            "median_clip_wer": statistics.median([r["wer"] for r in rows]) if rows else None}


def _exact_reference(clip: dict) -> bool:
    """Skip clips whose reference is per-channel, per-speaker or machine-made (see fixtures README)."""
    ref = (clip.get("reference") or "").lower()
    name = clip["file"].lower()
    return not any(s in ref or s in name for s in ("machine", "pseudo", "per channel", "per-channel",
                                                   "per speaker", "per-speaker", "stereo", "ami_meeting"))
