#!/usr/bin/env python
"""Plain `talkindex ingest` vs pipelines/ray_ingest.py on a loopback feed where transcripts exist.

The site is the test's (tests/test_pipelines.py): one feed episode with a publisher transcript, one
needing ASR, and a page with a caption track. Each engine runs in a fresh home, `--runs` times; the
median wall time is printed with what each did (transcribed, existing transcripts, media files).

    .venv/bin/python benchmarks/bench_batch_transcripts_first.py --runs 3
    .venv/bin/python benchmarks/bench_batch_transcripts_first.py --also old_ray_ingest.py   # e.g. git show REV:…
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from httpserver import serve  # noqa: E402
from test_pipelines import transcripts_first_site, write_urls  # noqa: E402


def run(cmd: list[str], home: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("TALKINDEX_HOME", None)
    t0 = time.perf_counter()
    p = subprocess.run([*cmd, "--home", str(home)], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{cmd} exited {p.returncode}:\n{p.stderr[-2000:]}")
    summary = [ln for ln in p.stdout.splitlines() if ln.startswith("{") and '"wall_s"' in ln]
    s = json.loads(summary[-1]) if summary else {}
    media = [f for f in (home / "media").glob("*") if f.suffix != ".ok"]
    return {"wall_s": wall, "transcribed": s.get("transcribed"), "existing": s.get("existing_transcripts"),
            "media_files": len(media), "load": os.getloadavg()[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--also", type=Path, action="append", default=[],
                    help="Another ray_ingest.py to time the same way (e.g. an older revision).")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-transcripts-first-"))
    site = tmp / "site"
    site.mkdir()
    transcripts_first_site(site)
    py = sys.executable
    engines = {"talkindex ingest": lambda urls: [py, "-m", "talkindex", "ingest", urls],
               "ray_ingest.py": lambda urls: [py, str(ROOT / "pipelines" / "ray_ingest.py"), urls, "--json", "-q"]}
    for k, path in enumerate(args.also):
        engines[f"{path.name} ({k + 1})"] = lambda urls, path=path: [py, str(path.resolve()), urls, "--json", "-q"]
    results: dict[str, list[dict]] = {name: [] for name in engines}
    with serve(site) as base:
        urls = str(write_urls(tmp / "urls.txt", [f"{base}/feed.xml", f"{base}/page.html"]))
        for r in range(args.runs):
            for k, (name, cmd) in enumerate(engines.items()):
                results[name].append(run(cmd(urls), tmp / f"home-{r}-{k}"))
    for name, rs in results.items():
        walls = [x["wall_s"] for x in rs]
        last = rs[-1]
        print(f"{name:28s} median {statistics.median(walls):6.1f} s  runs {', '.join(f'{w:.1f}' for w in walls)}  "
              f"transcribed={last['transcribed']} existing={last['existing']} media_files={last['media_files']}  "
              f"load {min(x['load'] for x in rs):.1f}-{max(x['load'] for x in rs):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
