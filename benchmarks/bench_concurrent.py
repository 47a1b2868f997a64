"""Issue 23, goal 4 (issue 14's goal 5 before it): how long a concurrent `ask` waits while an ingest adds episodes.

Copies the 100k-chunk warm home of bench_ask.py (the product's default ensemble unless `--embedders`
names another; the ingest then embeds with the same models), starts a reader process that asks questions back
to back (Index.ask, a live process like `serve`), then ingests a feed of the bundled samples whose
items carry Podcasting 2.0 transcripts (so the writer's work is chunking, embedding, DuckDB rows,
vector and keyword segments, not ASR) in another process. Prints the reader's latencies before and
during the ingest: p50, p99, max, and the worst wait beyond the reader's normal time (max during
minus p50 before; goal: <= 250 ms). The reader is, by `--reader`:

  * `api`: one live process calling Index.ask back to back (a notebook, a batch job);
  * `serve`: `talkindex serve`, one client calling GET /api/ask back to back;
  * `cli`: one-shot `talkindex ask --json` processes back to back (each pays a cold start).

Usage:

    PYTHONPATH=src python benchmarks/bench_concurrent.py [--chunks 100000] [--embedders A+B]
        [--reader api|serve|cli]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

from bench_ask import CACHE, index_sets, label, queries  # noqa: E402
from bench_transcripts import make_site  # noqa: E402

READER = """
import json, subprocess, sys, time
from pathlib import Path
from urllib.parse import quote_plus
home, qs, stop, kind = Path(sys.argv[1]), json.loads(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
if kind == "api":
    from talkindex.api import Index
    idx = Index(home)
    ask = idx.ask
elif kind == "serve":
    sys.path.insert(0, sys.argv[5])
    from bench_server import Server
    srv = Server(home)
    ask = lambda q: srv.get(f"/api/ask?q={quote_plus(q)}&k=5")
else:
    def ask(q):
        p = subprocess.run([sys.executable, "-m", "talkindex", "ask", q, "--json", "--home", str(home)],
                           capture_output=True)
        assert p.returncode == 0, p.stderr[-500:]
out, i = [], 0
while not stop.exists():
    t0 = time.time()
    ask(qs[i % len(qs)])
    out.append((t0, time.time() - t0))
    i += 1
if kind == "serve":
    srv.close()
print(json.dumps(out))
"""


def timed_ingest(site: Path, home: Path, env: dict,
                 extra: list[str] | None = None) -> tuple[float, float, subprocess.CompletedProcess]:
    """Serve `site` (made by bench_transcripts.make_site) on loopback and ingest its feed with
    transcripts into `home` in a new process: (start, end, the CompletedProcess)."""
    from talkindex.serve.files import serve_directory

    with serve_directory(site) as base:
        feed = site / "with.xml"
        feed.write_text(feed.read_text().replace("PORT", base.rsplit(":", 1)[1]))
        t0 = time.time()
        p = subprocess.run([sys.executable, "-m", "talkindex", "ingest", f"{base}/with.xml", "--home", str(home),
                            *(extra or [])], capture_output=True, text=True, env=env)
        return t0, time.time(), p


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--embedders", metavar="A+B", help="the index's models (default: the product's ensemble)")
    ap.add_argument("--reader", choices=("api", "serve", "cli"), default="api", help="who asks (see above)")
    ap.add_argument("--ingest-nice", type=int, help="the ingest's --nice (default: ingest's own default)")
    a = ap.parse_args()
    names = index_sets([a.embedders] if a.embedders else None)[0]
    src = CACHE / f"synth-real-{label(names)}-{a.chunks}"
    if not (src / "vectors" / "manifest.json").exists():
        raise SystemExit(f"{src} is missing: run bench_ask.py --warm-chunks {a.chunks} "
                         f"--embedders {'+'.join(names)} first")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        home = tmp / "home"
        shutil.copytree(src, home)
        site = tmp / "site"
        site.mkdir()
        make_site(site)
        stop = tmp / "stop"
        reader = subprocess.Popen([sys.executable, "-c", READER, str(home), json.dumps(queries(home, 50)), str(stop),
                                   a.reader, str(HERE)], stdout=subprocess.PIPE, text=True, env=env)
        time.sleep(15 if a.reader == "cli" else 8)  # questions before the ingest starts
        nice = [] if a.ingest_nice is None else ["--nice", str(a.ingest_nice)]
        t0, t1, p = timed_ingest(site, home, env, nice)
        time.sleep(3)
        stop.touch()
        lat = json.loads(reader.communicate(timeout=120)[0])
        if p.returncode != 0:
            raise SystemExit(f"ingest failed: {p.stderr[-1500:]}")
        before = [d for t, d in lat if t + d < t0]
        during = [d for t, d in lat if t < t1 and t + d > t0]
        print(f"reader: {a.reader}; ingest --nice {'default' if a.ingest_nice is None else a.ingest_nice}; "
              f"ingest of 3 episodes (transcripts) into a {a.chunks}-chunk home of "
              f"{'+'.join(names)}: {t1 - t0:.1f} s; load average at the end {os.getloadavg()[0]:.2f}")
        slow = sorted(((d, t - t0) for t, d in lat if t < t1 and t + d > t0), reverse=True)[:5]
        print("  slowest asks during the ingest (ms, started at s into it): "
              + ", ".join(f"{d * 1000:.0f} @ {at:.1f}" for d, at in slow))
        for name, xs in (("before the ingest", before), ("during the ingest", during)):
            print(f"  asks {name}: {len(xs)}, p50 {pct(xs, 0.5) * 1000:.0f} ms, p99 {pct(xs, 0.99) * 1000:.0f} ms, "
                  f"max {max(xs, default=float('nan')) * 1000:.0f} ms")
        if before and during:
            print(f"  worst wait beyond normal (max during - p50 before): "
                  f"{(max(during) - pct(before, 0.5)) * 1000:.0f} ms   (goal <= 250 ms)")


if __name__ == "__main__":
    main()
