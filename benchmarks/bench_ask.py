"""Goal 1: cold `talkindex ask` vs `python -c "import numpy, faiss, duckdb"`, and warm Index.ask().

Cold: every repetition is a new interpreter; baseline and candidate run interleaved, medians and
their ratio are printed (goal: ask <= 1.0 s and <= 2.5x the baseline). The index is synthetic
(~1 hour of audio = 400 chunks by default, `--cold-chunks`) with the real ONNX query encoder.
Warm: Index.ask() in this process over `--warm-chunks` synthetic chunks whose vectors are MiniLM
embeddings of perturbed real text (_realvecs.py) (goal: median <= 20 ms),
beside a baseline of a bare numpy brute-force scan of the same vectors (the least any dense search
can do). Usage:

    PYTHONPATH=src python benchmarks/bench_ask.py [--reps 9] [--cold-chunks 400] [--warm-chunks 100000]

Needs an ONNX query encoder: taken from --encoder-home, else made once by ingesting the bundled
samples into benchmarks/.cache/samples-home (torch, ~1 minute).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

from _synth import build_home, median  # noqa: E402

BASELINE = [sys.executable, "-c", "import numpy, faiss, duckdb"]
CACHE = HERE / ".cache"


def encoder_home(given: Path | None) -> Path | None:
    """The ONNX export is per machine (talkindex.embedding.export_dir); make it once if missing."""
    from talkindex.embedding import export_dir

    if given or (export_dir("all-MiniLM-L6-v2") / "meta.json").exists():
        return given
    home = CACHE / "samples-home"
    if not (export_dir("all-MiniLM-L6-v2") / "meta.json").exists():
        print("making the ONNX query encoder: ingesting data/samples (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "talkindex", "ingest", str(ROOT / "data" / "samples" / "urls.txt"),
                        "--home", str(home)], check=True, env=_env())
    return home


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}


def queries(home: Path, n: int, seed: int = 1) -> list[str]:
    """Questions made of words that occur in the index (so BM25 has work to do)."""
    import duckdb

    con = duckdb.connect(str(home / "talkindex.duckdb"), read_only=True)
    texts = [r[0] for r in con.execute("SELECT text FROM chunks USING SAMPLE 200 ROWS").fetchall()]
    con.close()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = texts[i % len(texts)].split()
        out.append("what did they say about " + " ".join(rng.choice(words, 3, replace=False)))
    return out


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{cmd} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return dt


def cold(home: Path, reps: int, question: str) -> dict:
    """Interleaved new-process runs; returns medians and the ratio."""
    cand = [sys.executable, "-m", "talkindex", "ask", question, "--home", str(home), "--json"]
    timed(BASELINE), timed(cand)  # page cache warm for both
    base, ask = [], []
    for _ in range(reps):
        base.append(timed(BASELINE))
        ask.append(timed(cand))
    b, a = median(base), median(ask)
    return {"baseline_s": round(b, 3), "ask_s": round(a, 3), "ratio": round(a / b, 2),
            "ask_runs": [round(x, 3) for x in ask], "baseline_runs": [round(x, 3) for x in base]}


def warm(home: Path, n_queries: int = 40, warmup: int = 60) -> dict:
    """A live process: the first 20 questions after start (episodes loaded on first touch), then,
    after `warmup` questions, `n_queries` timed ones (steady state), beside a numpy scan."""
    from talkindex.api import Index
    from talkindex.vectors import VectorIndex

    idx = Index(home)
    qs = queries(home, 20 + warmup + n_queries, seed=3)
    first = []
    for q in qs[:20]:
        t0 = time.perf_counter()
        idx.ask(q)
        first.append(time.perf_counter() - t0)
    for q in qs[20:20 + warmup]:
        idx.ask(q)
    vi = VectorIndex(home / "vectors")
    vecs = vi.read_all()[1]  # the baseline scans the same vectors
    timed_qs = qs[20 + warmup:]
    qv = idx.searcher.encode(timed_qs)
    ask_t, base_t = [], []
    for v in qv:  # the baseline in its own block: a 150 MB scan between asks would flush the CPU caches
        t0 = time.perf_counter()
        np.argpartition(-(vecs @ v), 50)[:50]
        base_t.append(time.perf_counter() - t0)
    n_vecs = len(vecs)
    del vecs
    for q in timed_qs:
        t0 = time.perf_counter()
        idx.ask(q)
        ask_t.append(time.perf_counter() - t0)
    a, b = median(ask_t), median(base_t)
    return {"chunks": n_vecs, "ask_ms": round(a * 1000, 1), "numpy_scan_ms": round(b * 1000, 1),
            "ratio": round(a / b, 2), "p90_ms": round(sorted(ask_t)[int(0.9 * len(ask_t))] * 1000, 1),
            "first20_ms": round(median(first) * 1000, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--cold-chunks", type=int, default=400)
    ap.add_argument("--warm-chunks", type=int, default=100_000)
    ap.add_argument("--encoder-home", type=Path)
    ap.add_argument("--skip-warm", action="store_true")
    a = ap.parse_args()
    enc = encoder_home(a.encoder_home)
    print(f"cold ask, {a.cold_chunks} chunks (~{a.cold_chunks / 400:.1f} h of audio), {a.reps} interleaved runs")
    home = CACHE / f"synth-{a.cold_chunks}"
    build_home(home, a.cold_chunks, encoder_from=enc, log=lambda *x: None)
    r = cold(home, a.reps, queries(home, 1)[0])
    print(f"  baseline (import numpy, faiss, duckdb): {r['baseline_s']:.3f} s   talkindex ask: {r['ask_s']:.3f} s"
          f"   ratio {r['ratio']:.2f}x   (goal <= 2.0x)")
    print(f"  runs: ask {r['ask_runs']}  baseline {r['baseline_runs']}")
    if not a.skip_warm:
        print(f"warm Index.ask(), {a.warm_chunks} chunks")
        home = CACHE / f"synth-real-{a.warm_chunks}"  # vectors: embeddings of real text (_realvecs.py)
        if not (home / "vectors" / "manifest.json").exists():
            build_home(home, a.warm_chunks, encoder_from=enc, real=True)
        w = warm(home)
        print(f"  steady state: median {w['ask_ms']} ms (p90 {w['p90_ms']} ms) vs numpy brute-force scan "
              f"{w['numpy_scan_ms']} ms: ratio {w['ratio']}x   (goal <= 20 ms, p90 <= 40 ms)")
        print(f"  first 20 questions of the process: median {w['first20_ms']} ms")


if __name__ == "__main__":
    main()
