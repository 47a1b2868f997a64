"""Chapter detection quality and cost (issue 22).

Ingests devset3 (multi-topic episodes with exact section starts in truth.json) and devset + devset2
(one topic per episode) once each into cached homes, then detects chapters offline from the stored
sentences and sentence vectors, exactly as ingest does:

- devset3: detected vs true section starts (the episode's start is no boundary);
- concatenations of devset/devset2 episodes, 4 at a time: the joins are the true boundaries.

Prints boundary precision/recall within ±TOL seconds (one-to-one matching), Pk and WindowDiff
(1-s units, k = half the mean true section length), and detection time beside ingest wall time.

    PYTHONPATH=src python benchmarks/bench_chapters.py [--cache DIR] [--grid]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
sys.path.insert(0, str(ROOT / "src"))

from talkindex.transcripts.detect import DetectOptions, detect_chapters  # noqa: E402

REENCODE = None  # set by --embedder: texts → sentence vectors of another embedder / the ensemble
TOL = 15.0  # seconds: a detected boundary this close to a true one is a hit
GROUP = 4  # episodes per concatenation


@dataclass
class Ep:
    """One episode's (or concatenation's) sentences, vectors and true boundaries (seconds)."""

    name: str
    starts: np.ndarray
    texts: list[str]
    vecs: np.ndarray
    duration: float
    truth: list[float]


def ingest(fixture: Path, home: Path) -> float:
    """Ingest every MP3 of a fixture into `home` once; the wall time is kept beside it."""
    stamp = home / "bench_ingest_seconds.json"
    if stamp.exists():
        return json.loads(stamp.read_text())["seconds"]
    home.mkdir(parents=True, exist_ok=True)
    urls = home / "urls.txt"
    urls.write_text("\n".join(str(p) for p in sorted(fixture.glob("*.mp3"))) + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "talkindex", "ingest", str(urls), "--home", str(home)],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(p.stderr[-2000:])
    dt = time.perf_counter() - t0
    stamp.write_text(json.dumps({"seconds": dt}))
    return dt


def load_home(home: Path) -> dict[str, tuple[np.ndarray, list[str], np.ndarray, float]]:
    """Every indexed episode's sentence starts, texts, vectors and duration (id is the MP3's stem)."""
    import duckdb

    from talkindex.home import Layout

    layout = Layout(home)
    con = duckdb.connect(str(layout.db), read_only=True)
    out = {}
    for eid, media, duration in con.execute(
            "SELECT id, media_url, duration FROM episodes WHERE status = 'indexed'").fetchall():
        rows = con.execute("SELECT start, text FROM sentences WHERE episode_id = ? ORDER BY idx", [eid]).fetchall()
        with np.load(layout.embeddings(eid)) as z:
            vecs = z["sent_vecs"].astype(np.float32)
        if REENCODE:  # --embedder: the same sentences re-encoded (bench_retrieval's vector cache)
            vecs = REENCODE([r[1] for r in rows]).astype(np.float16).astype(np.float32)
        out[Path(media).stem] = (np.array([r[0] for r in rows]), [r[1] for r in rows], vecs, float(duration))
    con.close()
    return out


def devset3_eps(home: Path) -> list[Ep]:
    truth = json.loads((FIXTURES / "devset3" / "truth.json").read_text())
    return [Ep(k, s, t, v, d, [c["start"] for c in truth[k]["chapters"][1:]])
            for k, (s, t, v, d) in sorted(load_home(home).items())]


def concatenations(homes: list[Path]) -> list[Ep]:
    eps = {}
    for h in homes:
        eps.update(load_home(h))
    names = sorted(eps)
    out = []
    for g in range(0, len(names) - GROUP + 1, GROUP):
        part = names[g:g + GROUP]
        starts, texts, vecs, truth, offset = [], [], [], [], 0.0
        for i, n in enumerate(part):
            s, t, v, d = eps[n]
            if i:
                truth.append(offset)
            starts.append(s + offset)
            texts += t
            vecs.append(v)
            offset += d
        out.append(Ep("+".join(part), np.concatenate(starts), texts, np.vstack(vecs), offset, truth))
    return out


def match(found: list[float], truth: list[float], tol: float = TOL) -> int:
    """Hits under one-to-one matching (each true boundary claimed by at most one detected one)."""
    used: set[int] = set()
    hits = 0
    for f in found:
        best = min((abs(f - t), j) for j, t in enumerate(truth) if j not in used) if len(used) < len(truth) else None
        if best and best[0] <= tol:
            used.add(best[1])
            hits += 1
    return hits


def pk_wd(found: list[float], truth: list[float], duration: float) -> tuple[float, float]:
    """Pk (Beeferman 1999) and WindowDiff (Pevzner & Hearst 2002) over 1-s units."""
    n = int(duration)
    ref = np.searchsorted(np.array(sorted(truth)), np.arange(n), side="right")
    hyp = np.searchsorted(np.array(sorted(found)), np.arange(n), side="right")
    k = max(1, int(round(duration / (len(truth) + 1) / 2)))
    a, b = np.arange(n - k), np.arange(k, n)
    pk = float(np.mean((ref[a] == ref[b]) != (hyp[a] == hyp[b])))
    wd = float(np.mean((ref[b] - ref[a]) != (hyp[b] - hyp[a])))
    return pk, wd


def score(eps: list[Ep], opts: DetectOptions) -> dict:
    tp = nf = nt = 0
    pks, wds = [], []
    t0 = time.perf_counter()
    found_all = []
    for e in eps:
        chapters = detect_chapters(e.starts, e.texts, e.vecs, e.duration, opts)
        found_all.append((e, [c.start for c in chapters[1:]], chapters))
    dt = time.perf_counter() - t0
    for e, found, _ in found_all:
        tp += match(found, e.truth)
        nf += len(found)
        nt += len(e.truth)
        pk, wd = pk_wd(found, e.truth, e.duration)
        pks.append(pk)
        wds.append(wd)
    p = tp / nf if nf else 0.0
    r = tp / nt if nt else 0.0
    return {"P": p, "R": r, "F": 2 * p * r / (p + r) if p + r else 0.0, "Pk": float(np.mean(pks)),
            "WD": float(np.mean(wds)), "found": nf, "true": nt, "seconds": dt, "detail": found_all}


def line(name: str, s: dict) -> str:
    return (f"{name:<34} P {s['P']:.2f}  R {s['R']:.2f}  F1 {s['F']:.2f}  Pk {s['Pk']:.3f}  WD {s['WD']:.3f}"
            f"  ({s['found']} found / {s['true']} true)")


def topic_homes(cache: Path) -> dict[str, Path]:
    """Copies of the devset3 home re-chunked with chapter-bounded chunks off and on (no ASR again)."""
    import shutil

    from talkindex.home import ChunkOptions
    from talkindex.ingest.pipeline import IngestOptions, Pipeline

    out = {}
    for mode in ("off", "on"):
        h = cache / f"topics_{mode}"
        if not (h / "bench_done").exists():
            shutil.rmtree(h, ignore_errors=True)
            shutil.copytree(cache / "home_devset3", h)
            pipe = Pipeline(h, IngestOptions(chunk=ChunkOptions(chapter_bounded=mode == "on")))
            pipe.store.init()
            pipe.store.requeue_indexed(drop_chunks=True)  # re-chunk and re-embed from the stored transcripts
            pipe.ingest([])
            (h / "bench_done").write_text("")
        out[mode] = h
    return out


def topic_scores(h: Path) -> tuple[float, float, int, int]:
    """(topic questions whose top hit lies in the right section, sentence questions answered in the top 5)."""
    from talkindex.api import Index

    root = FIXTURES / "devset3"
    truth = json.loads((root / "truth.json").read_text())
    idx = Index(h)
    stem = {e["id"]: Path(e["media_url"]).stem for e in idx.episodes()}
    tq = json.loads((root / "topic_questions.json").read_text())
    inside = 0
    for q, hits in zip(tq, idx.ask_many([q["query"] for q in tq], k=1), strict=True):
        c = truth[q["episode"]]["chapters"][q["chapter_index"]]
        top = hits[0] if hits else None
        inside += bool(top) and stem[top.episode_id] == q["episode"] and c["start"] - 1 <= top.start <= c["end"]
    sq = json.loads((root / "questions.json").read_text())
    found = 0
    for q, hits in zip(sq, idx.ask_many([q["query"] for q in sq], k=5), strict=True):
        t = truth[q["episode"]]["sentences"][q["answer_sentence_index"]]["start"]
        found += any(stem[h.episode_id] == q["episode"] and h.start - 1 <= t <= h.end for h in hits)
    return inside / len(tq), found / len(sq), len(tq), len(sq)


def chapter_level(h: Path) -> float:
    """Topic questions whose best chapter as a whole (query vs the mean of its sentence vectors) has its
    midpoint in the right section: would a chapter-level score help broad questions?"""
    import duckdb

    from talkindex.embed.passages import Embedder
    from talkindex.home import Layout
    from talkindex.records import chapters_of

    root = FIXTURES / "devset3"
    truth = json.loads((root / "truth.json").read_text())
    tq = json.loads((root / "topic_questions.json").read_text())
    con = duckdb.connect(str(Layout(h).db), read_only=True)
    units = []
    for eid, media, chapters in con.execute("SELECT id, media_url, chapters FROM episodes").fetchall():
        starts = np.array([r[0] for r in con.execute(
            "SELECT start FROM sentences WHERE episode_id = ? ORDER BY idx", [eid]).fetchall()])
        with np.load(Layout(h).embeddings(eid)) as z:
            vecs = z["sent_vecs"].astype(np.float32)
        for c in chapters_of(chapters):
            m = (starts >= c.start - 0.05) & (starts < (c.end or np.inf))
            centroid = vecs[m].mean(axis=0)
            units.append((Path(media).stem, (c.start + (c.end or c.start)) / 2, centroid / np.linalg.norm(centroid)))
    con.close()
    q = Embedder().encode_queries([x["query"] for x in tq]) @ np.stack([u[2] for u in units]).T
    ok = 0
    for i, x in enumerate(tq):
        stem, mid, _ = units[int(np.argmax(q[i]))]
        sec = truth[x["episode"]]["chapters"][x["chapter_index"]]
        ok += stem == x["episode"] and sec["start"] - 1 <= mid <= sec["end"]
    return ok / len(tq)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / ".cache" / "chapters",
                    help="where the ingested homes are kept (one per fixture)")
    ap.add_argument("--grid", action="store_true", help="sweep the detector's parameters")
    ap.add_argument("--show", action="store_true", help="print every detected chapter")
    ap.add_argument("--topics", action="store_true",
                    help="devset3 questions with chapter-bounded chunks off vs on (re-chunks two copies once)")
    ap.add_argument("--embedder", help="re-encode the stored sentences with this bench_retrieval embedder "
                    "(e.g. minilm+mpnet, the ensemble) instead of the homes' own vectors")
    a = ap.parse_args()
    if a.embedder:
        global REENCODE
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from bench_retrieval import CACHE, EmbedCache

        cache = EmbedCache(CACHE / "emb")
        REENCODE = lambda texts: cache.encode(a.embedder, texts)  # noqa: E731
    if not (FIXTURES / "devset3" / "truth.json").exists():
        raise SystemExit(f"{FIXTURES}: the shared fixtures are absent")
    secs = {d: ingest(FIXTURES / d, a.cache / f"home_{d}") for d in ("devset3", "devset", "devset2")}
    d3 = devset3_eps(a.cache / "home_devset3")
    cat = concatenations([a.cache / "home_devset", a.cache / "home_devset2"])
    base = DetectOptions()
    if a.topics:
        for mode, h in topic_homes(a.cache).items():
            top, r5, nt, ns = topic_scores(h)
            print(f"chapter_bounded {mode:<3}: topic questions with the top hit in the right section {top:.2f} "
                  f"(of {nt}); sentence questions answered in the top 5 {r5:.2f} (of {ns})")
        print(f"chapter-level (query vs detected chapter centroid): best chapter in the right section "
              f"{chapter_level(a.cache / 'topics_on'):.2f}")
        return
    if a.grid:
        rows = []
        for block, share, spread, depth, cue, rel in itertools.product(
                (12, 16), (5, 6, 8), (2, 4), (0.3, 0.4, 0.5), (0.4, 0.5), (0.4, 0.5, 0.6)):
            o = replace(base, block=block, block_share=share, spread=spread, min_depth=depth, cue_weight=cue,
                        relative=rel)
            s3, sc = score(d3, o), score(cat, o)
            rows.append((min(s3["F"], sc["F"]), o, s3, sc))
        for _f, o, s3, sc in sorted(rows, key=lambda r: -r[0])[:15]:
            print(f"block {o.block} share {o.block_share} spread {o.spread} depth {o.min_depth} cue {o.cue_weight} "
                  f"relative {o.relative}: "
                  f"devset3 P {s3['P']:.2f} R {s3['R']:.2f} | concat P {sc['P']:.2f} R {sc['R']:.2f}")
        return
    print(f"detector: {base}")
    for name, eps in (("devset3 (4 episodes)", d3), (f"devset+devset2 concatenations ({len(cat)})", cat)):
        s = score(eps, base)
        print(line(name, s))
        if a.show:
            for e, found, chapters in s["detail"]:
                print(f"  {e.name}: true {[round(t) for t in e.truth]}  found {[round(t) for t in found]}")
                for c in chapters:
                    print(f"    {c.start:7.1f}  {c.title}")
    bare = replace(base, cue_weight=0.0)  # ablation: sentence vectors alone
    for name, eps in (("devset3, no cue phrases", d3), ("concatenations, no cue phrases", cat)):
        print(line(name, score(eps, bare)))
    audio = sum(e.duration for e in d3)
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        for e in d3:
            detect_chapters(e.starts, e.texts, e.vecs, e.duration, base)
    det = (time.perf_counter() - t0) / reps
    print(f"detection time, devset3 ({audio / 60:.1f} min of audio): {det * 1000:.1f} ms "
          f"vs ingest {secs['devset3']:.1f} s = {100 * det / secs['devset3']:.3f}% of ingest")


if __name__ == "__main__":
    main()
