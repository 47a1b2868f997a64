"""`talkindex serve`: warm /api/ask latency and throughput, beside the CLI's cold `ask` in the same run.

Builds a synthetic ~1 hour index (400 chunks, `--chunks`; see _synth.py) of the product's default
ensemble (MiniLM + mpnet, both real ONNX query encoders; `--embedders` for another index, repeat it to
measure several in one run), starts `talkindex serve` on a free loopback port, warms it up, then times

  * 100 sequential GET /api/ask (distinct questions made of indexed words): p50, p90, req/s,
  * the same 100 from 4 concurrent clients (per-request latency and throughput; issue 23 goal 6:
    >= 1.8x the sequential req/s on 2 cores),
  * warm `Index.ask()` in this process on the same questions (what the HTTP layer adds),
  * cold `talkindex ask --json` in a new process (`--cold-reps` runs): what a user waits without
    the server. Goal: warm /api/ask p50 <= 30 ms. Usage:

    PYTHONPATH=src python benchmarks/bench_server.py [--chunks 400] [--requests 100] [--concurrency 4]
        [--cold-reps 5] [--embedders A+B ...] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote_plus

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

from _synth import build_home  # noqa: E402
from bench_ask import encoder_home, index_sets, queries  # noqa: E402


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def summary(xs: list[float]) -> dict:
    return {"n": len(xs), "p50_ms": round(pct(xs, 50) * 1000, 1), "p90_ms": round(pct(xs, 90) * 1000, 1),
            "mean_ms": round(statistics.fmean(xs) * 1000, 1)}


class Server:
    """`talkindex serve --port 0` in a subprocess; `.get(path)` times one request on a fresh connection."""

    def __init__(self, home: Path):
        cmd = [sys.executable, "-m", "talkindex", "serve", "--home", str(home), "--port", "0"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=_env())
        line = ""
        deadline = time.monotonic() + 120
        while "serving" not in line:
            line = self.proc.stderr.readline()
            if not line and (self.proc.poll() is not None or time.monotonic() > deadline):
                raise SystemExit("talkindex serve did not start")
        m = re.search(r"http://([\d.]+):(\d+)", line)
        self.host, self.port = m.group(1), int(m.group(2))
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # drain

    def get(self, path: str) -> float:
        con = http.client.HTTPConnection(self.host, self.port, timeout=60)
        t0 = time.perf_counter()
        con.request("GET", path)
        r = con.getresponse()
        body = r.read()
        dt = time.perf_counter() - t0
        con.close()
        if r.status != 200:
            raise SystemExit(f"GET {path}: {r.status} {body[:300]!r}")
        return dt

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def cold_cli(home: Path, question: str, reps: int) -> list[float]:
    cmd = [sys.executable, "-m", "talkindex", "ask", question, "--home", str(home), "--json"]
    out = []
    for _ in range(reps + 1):  # the first run only warms the page cache
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=_env())
        out.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise SystemExit(f"cold ask failed: {p.stderr[-1000:]}")
    return out[1:]


def query_encoder_home(given: Path | None, embedders=None) -> Path | None:
    """A home to copy query_encoder/ from, or None when the machine-wide ONNX exports will be found."""
    return encoder_home(given, embedders)


def measure(home: Path, a) -> dict:
    """Sequential, then concurrent GET /api/ask on one server; in-process Index.ask(); cold CLI asks."""
    qs = queries(home, a.requests + 10)
    paths = [f"/api/ask?q={quote_plus(q)}&k=5" for q in qs]
    srv = Server(home)
    try:
        for p in paths[a.requests:]:  # warm-up: encoders, FAISS segment, sentence vectors
            srv.get(p)
        t0 = time.perf_counter()
        seq = [srv.get(p) for p in paths[: a.requests]]
        seq_wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        with ThreadPoolExecutor(a.concurrency) as pool:
            conc = list(pool.map(srv.get, paths[: a.requests]))
        wall = time.perf_counter() - t0
    finally:
        srv.close()
    from talkindex.api import Index

    idx = Index(home)
    for q in qs[a.requests:]:
        idx.ask(q, k=5)
    inproc = []
    for q in qs[: a.requests]:
        t0 = time.perf_counter()
        idx.ask(q, k=5)
        inproc.append(time.perf_counter() - t0)
    del idx
    cold = cold_cli(home, qs[0], a.cold_reps)
    seq_rps, conc_rps = len(seq) / seq_wall, len(conc) / wall
    return {
        "chunks": a.chunks, "embedders": json.loads((home / "config.json").read_text())["embedders"],
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "http_sequential": {**summary(seq), "requests_per_s": round(seq_rps, 1)},
        f"http_{a.concurrency}_concurrent": {**summary(conc), "requests_per_s": round(conc_rps, 1)},
        "concurrent_over_sequential": round(conc_rps / seq_rps, 2),
        "in_process_Index_ask": summary(inproc),
        "cli_cold_ask": {"n": len(cold), "p50_ms": round(pct(cold, 50) * 1000), "p90_ms": round(pct(cold, 90) * 1000)},
    }


def report(res: dict, a) -> None:
    print(f"index: {a.chunks} synthetic chunks (~{a.chunks / 400:.1f} h of audio), {'+'.join(res['embedders'])}; "
          f"load average {res['load_average']}")
    print(f"{'':34} {'n':>4} {'p50 ms':>8} {'p90 ms':>8} {'req/s':>7}")
    for name, key in [("warm GET /api/ask, sequential", "http_sequential"),
                      (f"warm GET /api/ask, {a.concurrency} concurrent", f"http_{a.concurrency}_concurrent"),
                      ("warm Index.ask() in-process", "in_process_Index_ask"),
                      ("cold `talkindex ask --json` (CLI)", "cli_cold_ask")]:
        r = res[key]
        print(f"{name:34} {r['n']:>4} {r['p50_ms']:>8} {r['p90_ms']:>8} {r.get('requests_per_s', ''):>7}")
    print(f"{a.concurrency}-concurrent throughput: {res[f'http_{a.concurrency}_concurrent']['requests_per_s']} req/s "
          f"= {res['concurrent_over_sequential']}x sequential (goal >= 1.8x); "
          f"warm /api/ask p50 <= 30 ms: {'met' if res['http_sequential']['p50_ms'] <= 30 else 'NOT met'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=400, help="synthetic index size (400 ~ 1 hour of audio)")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--cold-reps", type=int, default=5)
    ap.add_argument("--encoder-home", type=Path, help="a home with query_encoder/ (default: ingest the samples)")
    ap.add_argument("--embedders", action="append", metavar="A+B",
                    help="an index's models (repeat to compare indexes; default: the product's ensemble)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    sets = index_sets(a.embedders)
    enc = query_encoder_home(a.encoder_home, sorted({n for s in sets for n in s}))
    results = []
    for names in sets:
        with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
            home = Path(tmp) / "home"
            build_home(home, a.chunks, encoder_from=enc, log=lambda *x: None, embedders=names)
            res = measure(home, a)
        results.append(res)
        if not a.json:
            report(res, a)
    if a.json:
        print(json.dumps(results[0] if len(results) == 1 else results))


if __name__ == "__main__":
    main()
