"""Bombs and floods through the real CLI over loopback: each stops within its cap with one clear line."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time

from conftest import ROOT
from loopback import routes

# ru_maxrss of the CLI alone (KiB on Linux), printed by a wrapper that runs nothing else
_MAXRSS = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
           "print('maxrss', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
           "sys.exit(r.returncode)")


def run_measured(*args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess, float, int]:
    """(process, seconds, peak RSS in MiB) of `talkindex ARGS`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("TALKINDEX_HOME", None)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-c", _MAXRSS, sys.executable, "-m", "talkindex", *args],
                       capture_output=True, text=True, timeout=timeout, env=env)
    took = time.monotonic() - t0
    rss = int(p.stderr.rsplit("maxrss ", 1)[1].split()[0]) // 1024
    p.stderr = p.stderr.rsplit("maxrss ", 1)[0]
    return p, took, rss


def test_gzip_bomb_page_is_not_handed_to_ytdlp(tmp_path):
    """200 MB of zeros as a 200 KB gzip page (sent although identity was asked for): refused, bounded."""
    bomb = gzip.compress(b"\0" * (200 * 2**20), compresslevel=9)
    page = gzip.compress(b"<html><body>" + b"<p>nothing to play here</p>" * 100 + b"</body></html>")
    headers = {"Content-Type": "text/html", "Content-Encoding": "gzip"}
    with routes({"/bomb": (200, headers, bomb), "/plain": (200, headers, page)}) as (base, hits):
        p, took, rss = run_measured("ingest", f"{base}/bomb", "--home", str(tmp_path / "home"))
        assert p.returncode == 1, p.stderr
        assert f"talkindex: error: {base}/bomb: page larger than 5 MB once decompressed" in p.stderr, p.stderr
        assert hits["/bomb"] == 1  # yt-dlp never fetched it again
        assert took < 60 and rss < 400, (took, rss)
        p, took, rss = run_measured("ingest", f"{base}/plain", "--home", str(tmp_path / "home"))
        assert p.returncode == 1 and "an HTML page without playable media" in p.stderr, p.stderr
        assert hits["/plain"] == 1
