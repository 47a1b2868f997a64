"""`talkindex eval`: retrieval quality on a spoken QA set, and ASR word error rate.

Retrieval sets have the layout of the project's devset: feed.xml (enclosures at
http://127.0.0.1:PORT/…), the media files, questions.json and truth.json. A result counts as a hit
when it is in the question's episode and its [start, end] overlaps the answer sentence ±1 sentence.

One question is 1.5-5 % of a devset score, so a difference between two configurations means little
on its own: every summary carries a bootstrap 95 % interval over questions, and two configurations
are compared question by question (wins/losses of reciprocal rank or hit@5, two-sided sign test).
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
import tempfile
import time
import unicodedata
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from ..errors import UsageError
from ..home import DEFAULT_MODEL


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
        rows.append(question_row(q, rank, err))
    return summarize(rows)


def question_row(q: dict, rank: int | None, start_error: float | None) -> dict:
    """One question's outcome, with the per-question metrics that summaries and paired tests use."""
    return {"qid": q.get("qid"), "kind": q.get("kind", "all"), "rank": rank, "start_error": start_error,
            "rr": 1.0 / rank if rank else 0.0, "hit1": rank == 1, "hit5": rank is not None and rank <= 5,
            "within_10s": rank is not None and rank <= 5 and start_error is not None and start_error <= 10}


METRICS = {"r@1": "hit1", "r@5": "hit5", "mrr@10": "rr", "within_10s": "within_10s"}


def summary(rs: list[dict], ci: bool = True, n_boot: int = 2000, seed: int = 0) -> dict:
    """Figures over `rs` (question rows), with a bootstrap 95 % interval per figure when `ci`."""
    n = len(rs) or 1
    errs = [r["start_error"] for r in rs if r["start_error"] is not None and r["rank"] <= 5]
    out = {"n": len(rs), **{m: round(sum(float(r[f]) for r in rs) / n, 3) for m, f in METRICS.items()},
           "start_error_median": _pct(errs, 0.5), "start_error_p90": _pct(errs, 0.9)}
    if ci:
        out["ci95"] = bootstrap_ci(rs, n_boot=n_boot, seed=seed)
    return out


def summarize(rows: list[dict], ci: bool = True) -> dict:
    """Overall and per-kind summaries of question rows (rows from several sets may be pooled)."""
    kinds = sorted({r["kind"] for r in rows})
    return {"overall": summary(rows, ci), "by_kind": {k: summary([r for r in rows if r["kind"] == k], ci)
                                                     for k in kinds}, "questions": rows}


def bootstrap_ci(rows: list[dict], n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile bootstrap over questions: resample the questions with replacement `n_boot` times.

    Why: the sets are small (20-68 questions), so the interval, not the point figure, says whether a
    goal is met. A fixed seed keeps reports reproducible."""
    if not rows:
        return {m: [None, None] for m in METRICS}
    rng = random.Random(seed)
    n = len(rows)
    cols = {m: [float(r[f]) for r in rows] for m, f in METRICS.items()}
    draws: dict[str, list[float]] = {m: [] for m in METRICS}
    for _ in range(n_boot):
        idx = [rng.randrange(n) for _ in range(n)]
        for m, c in cols.items():
            draws[m].append(sum(c[i] for i in idx) / n)
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    out = {}
    for m, d in draws.items():
        d.sort()
        out[m] = [round(d[int(lo_q * (n_boot - 1))], 3), round(d[int(math.ceil(hi_q * (n_boot - 1)))], 3)]
    return out


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact sign test (binomial, p = 0.5) on the questions where two configurations differ."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return round(min(1.0, 2 * tail), 4)


def paired(rows_a: list[dict], rows_b: list[dict], metric: str = "rr") -> dict:
    """Question-by-question comparison of B against A: wins (B better), losses, ties, sign-test p.

    `metric` is a per-question field: "rr" (reciprocal rank @10), "hit5", "hit1" or "within_10s".
    Rows are matched by (set, qid) so pooled sets line up."""
    def key(r: dict) -> tuple:
        return r.get("set"), r["qid"]

    a = {key(r): float(r[metric]) for r in rows_a}
    wins = losses = ties = 0
    for r in rows_b:
        if key(r) not in a:
            continue
        d = float(r[metric]) - a[key(r)]
        if abs(d) < 1e-12:
            ties += 1
        elif d > 0:
            wins += 1
        else:
            losses += 1
    return {"metric": metric, "wins": wins, "losses": losses, "ties": ties, "p": sign_test_p(wins, losses)}


def compare(rows_a: list[dict], rows_b: list[dict]) -> dict:
    """Paired comparison on reciprocal rank and on hit@5 (the two the adoption rule looks at)."""
    return {m: paired(rows_a, rows_b, m) for m in ("rr", "hit5", "within_10s")}


def eval_retrieval(directory: Path, home: Path | None = None, k: int = 10, modes: tuple[str, ...] | None = None,
                   ingest_options=None, progress=None, configs: dict[str, dict] | None = None) -> dict:
    """Serve `directory` on loopback, ingest its feed, ask every question, score.

    `configs` maps a name to SearchOptions fields (e.g. {"kw0": {"keyword_weight": 0}}); without it each
    of `modes` is one configuration. With two or more, "paired" compares each one against the first."""
    from ..api import Index
    from ..serve.files import serve_directory

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
        out = {"set": str(directory), "questions": len(questions), "ingest_seconds": round(ingest_s, 2),
               "environment": environment(idx.layout), "modes": {}}
        from dataclasses import asdict

        from ..requests import DEFAULT_MODE

        configs = configs or {m: {"mode": m} for m in (modes or (DEFAULT_MODE,))}
        qs = [q["query"] for q in questions]
        for name, cfg in configs.items():
            idx.ask_many(qs[:1], k=k, **cfg)  # warm up: load models once
            t0 = time.perf_counter()
            results = idx.ask_many(qs, k=k, **cfg)
            per_q = (time.perf_counter() - t0) / max(1, len(qs))
            res = score(questions, truth, [[asdict(h) for h in hs] for hs in results], episode_of)
            res["ask_ms_per_question"] = round(per_q * 1000, 1)
            res["config"] = cfg
            out["modes"][name] = res
        names = list(out["modes"])
        if len(names) > 1:
            base = out["modes"][names[0]]["questions"]
            out["paired"] = {n: {"against": names[0], **compare(base, out["modes"][n]["questions"])}
                             for n in names[1:]}
        return out
    finally:
        if scratch is not None:
            scratch.cleanup()


# What decides a figure besides the commit: ASR output and vectors change with these packages' versions
# (constraints.txt pins them for `make install`), so `eval --json` records them with the index it scored.
REPRO_PACKAGES = ("faster-whisper", "ctranslate2", "av", "onnxruntime", "torch", "sentence-transformers",
                  "transformers", "tokenizers", "numpy", "faiss-cpu")


def environment(layout) -> dict:
    """Package versions, the index config and a digest of every stored transcript (text and word times):
    two evaluations are comparable only when these agree (see benchmarks/README.md, reproducibility)."""
    import hashlib
    from importlib import metadata

    versions = {}
    for name in REPRO_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    h = hashlib.sha256()
    n = 0
    for f in sorted(layout.episodes_root.glob("*/transcript.json")):
        try:
            segs = json.loads(f.read_text(encoding="utf-8")).get("segments") or []
        except (OSError, ValueError):
            continue
        n += 1
        for sg in segs:
            h.update(f"{sg.get('start')}|{sg.get('end')}|{sg.get('text')}\n".encode())
    cfg = layout.load_config()
    return {"packages": versions, "embedders": cfg.embedders if cfg else None, "asr_model": cfg.model if cfg else None,
            "transcripts": n, "transcripts_sha256": h.hexdigest()[:16]}


# -- ASR ---------------------------------------------------------------------------------------
def normalize(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s']", " ", text).replace("'", "")
    return text.split()


def wer_breakdown(ref_text: str, hyp_text: str) -> dict:
    """S/D/I/hits with jiwer's standard normalisation (lower-case, punctuation removed, spaces collapsed).

    jiwer is the reference implementation people compare against; the built-in `wer_counts` stays as
    the fallback where jiwer is not installed."""
    try:
        import jiwer
    except ImportError:
        ref, hyp = normalize(ref_text), normalize(hyp_text)
        e = wer_counts(ref, hyp)
        return {"words": len(ref), "errors": e, "substitutions": None, "deletions": None, "insertions": None}
    t = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip(),
                       jiwer.ReduceToListOfListOfWords()])
    ref_text = ref_text if ref_text.strip() else "<empty>"
    o = jiwer.process_words(ref_text, hyp_text if hyp_text.strip() else "", reference_transform=t,
                            hypothesis_transform=t)
    words = o.hits + o.substitutions + o.deletions
    return {"words": words, "errors": o.substitutions + o.deletions + o.insertions,
            "substitutions": o.substitutions, "deletions": o.deletions, "insertions": o.insertions}


def wer_counts(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def eval_asr(manifest: Path, model: str = DEFAULT_MODEL, language: str | None = "en", exact_only: bool = True,
             **transcribe_kwargs) -> dict:
    """WER per clip and overall (normalised text) and real-time factor, through the pipeline's transcriber."""
    from ..transcripts.asr import TranscribeOptions, Transcriber

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
        b = wer_breakdown(ref_text, hyp)
        e, n = b["errors"], b["words"]
        rows.append({"clip": c["file"], **b, "wer": round(e / max(1, n), 3),
                     "seconds": round(t.duration, 1), "rtf": round(dt / max(t.duration, 1e-6), 3)})
        errs, words, audio, wall = errs + e, words + n, audio + t.duration, wall + dt
    sdi = {k: sum(r[k] for r in rows) if rows and rows[0][k] is not None else None
           for k in ("substitutions", "deletions", "insertions")}
    return {"model": model, "clips": rows, "words": words, "errors": errs, **sdi,
            "wer": round(errs / max(1, words), 4), "audio_seconds": round(audio, 1),
            "rtf": round(wall / max(audio, 1e-6), 4),
            "median_clip_wer": statistics.median([r["wer"] for r in rows]) if rows else None}


def _exact_reference(clip: dict) -> bool:
    """Skip clips whose reference is per-channel, per-speaker or machine-made (see fixtures README)."""
    ref = (clip.get("reference") or "").lower()
    name = clip["file"].lower()
    return not any(s in ref or s in name for s in ("machine", "pseudo", "per channel", "per-channel",
                                                   "per speaker", "per-speaker", "stereo", "ami_meeting"))
