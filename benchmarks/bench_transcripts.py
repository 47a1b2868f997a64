"""Transcript-first ingest vs the ASR path, same feed, same home layout (issue 13).

Serves the bundled samples on loopback twice: a feed whose items carry Podcasting 2.0 VTT transcripts
(made from the samples' exact sentence times) and the same feed without them. Each is ingested into a
fresh home by `talkindex ingest` in a new process; interleaved rounds, medians, ratio. Usage:

    PYTHONPATH=src python benchmarks/bench_transcripts.py [--reps 3]
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
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
sys.path.insert(0, str(ROOT / "src"))


def ts(t: float) -> str:
    ms = int(round(t * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def make_site(d: Path) -> None:
    truth = json.loads((SAMPLES / "truth.json").read_text())
    items = {"with": [], "without": []}
    for n, (key, ep) in enumerate(truth.items(), 1):
        shutil.copy(SAMPLES / ep["file"], d / ep["file"])
        cues = ["WEBVTT", ""] + [f"{ts(s['start'])} --> {ts(s['end'])}\n{s['text']}\n" for s in ep["sentences"]]
        (d / f"{key}.vtt").write_text("\n".join(cues))
        base = (f"<item><title>{ep['title']}</title><guid>bt-{n}</guid>"
                f'<enclosure url="http://127.0.0.1:PORT/{ep["file"]}" type="audio/mpeg" length="1"/>')
        items["without"].append(base + "</item>")
        items["with"].append(base + f'<podcast:transcript url="http://127.0.0.1:PORT/{key}.vtt" '
                                    'type="text/vtt" language="en"/></item>')
    for name, its in items.items():
        (d / f"{name}.xml").write_text(
            '<?xml version="1.0"?><rss version="2.0" xmlns:podcast="https://podcastindex.org/namespace/1.0">'
            f"<channel><title>bench</title><language>en</language>{''.join(its)}</channel></rss>")


def ingest(feed: str, home: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "talkindex", "ingest", feed, "--home", str(home)],
                       capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(p.stderr[-2000:])
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    from talkindex.serve.files import serve_directory

    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        make_site(site)
        times: dict[str, list[float]] = {"with": [], "without": []}
        with serve_directory(site) as base:
            for r in range(a.reps):
                for name in ("without", "with"):
                    home = Path(tmp) / f"home-{name}-{r}"
                    times[name].append(ingest(f"{base}/{name}.xml", home))
                print(f"  round {r + 1}: ASR {times['without'][-1]:.1f} s  transcripts {times['with'][-1]:.1f} s")
    w, wo = median(times["with"]), median(times["without"])
    print(f"3 sample episodes (253 s of audio): ASR path median {wo:.1f} s, transcript-first median {w:.1f} s, "
          f"speed-up {wo / w:.1f}x")


if __name__ == "__main__":
    main()
