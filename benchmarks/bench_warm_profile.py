"""Where a warm question's time goes on a given home (issue 23 goals 3 and 5): whole `Index.ask()`, the
query encoders alone, and the rest (`ask(qvec=)`: FAISS, rows, sentence vectors, ranking), interleaved
per question after 60 warm-up questions; then a cProfile of the rest. Usage:

    PYTHONPATH=src python benchmarks/bench_warm_profile.py HOME [--questions 100] [--top 18]

(e.g. HOME = benchmarks/.cache/scale-real-…-1000000, the home bench_scale.py builds)
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from bench_ask import queries  # noqa: E402


def pct(xs: list[float], f: float) -> float:
    xs = sorted(xs)
    return xs[int(f * (len(xs) - 1))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("home", type=Path)
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("--top", type=int, default=18)
    a = ap.parse_args()
    from talkindex.api import Index

    n = a.questions
    qs = queries(a.home, 60 + 2 * n, seed=11)
    idx = Index(a.home)
    idx.searcher.encode(qs[:2])  # the second call swaps in the throughput sessions, as a live reader's does
    vecs = idx.searcher.encode(qs)
    for q, v in zip(qs[:60], vecs[:60], strict=True):
        idx.ask(q, qvec=v)
    rest, whole, enc = [], [], []
    for q, v, q2 in zip(qs[60:60 + n], vecs[60:60 + n], qs[60 + n:], strict=True):
        t0 = time.perf_counter()
        idx.ask(q, qvec=v)
        rest.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        idx.searcher.encode([q2])
        enc.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        idx.ask(q2)
        whole.append(time.perf_counter() - t0)
    print(f"{a.home.name}: load {os.getloadavg()[0]:.2f}; whole ask p50 {pct(whole, .5):.1f} ms, p90 "
          f"{pct(whole, .9):.1f}; the encoders alone p50 {pct(enc, .5):.1f} ms; the rest (ask(qvec=)) p50 "
          f"{pct(rest, .5):.1f} ms, p90 {pct(rest, .9):.1f}")
    prof = cProfile.Profile()
    prof.enable()
    for q, v in zip(qs[60:60 + n], vecs[60:60 + n], strict=True):
        idx.ask(q, qvec=v)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(a.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
