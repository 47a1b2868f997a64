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


def _feed(items: str) -> bytes:
    ns = ('xmlns:podcast="https://podcastindex.org/namespace/1.0" '
          'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"')
    return f'<?xml version="1.0"?><rss version="2.0" {ns}><channel><title>L</title>{items}</channel></rss>'.encode()


def test_max_duration_uses_the_media_and_the_transcript_not_the_feed(tmp_path):
    """A feed claiming 10 s for 85 s of media fails before any decoding; a transcript ending past the
    limit fails too (it used to pass whatever its length)."""
    from conftest import SAMPLES, run_cli

    mp3 = (SAMPLES / "feature-stores.mp3").read_bytes()
    long_vtt = "WEBVTT\n\n00:00:01.000 --> 00:00:05.000\nhello there\n\n00:19:50.000 --> 00:20:00.000\nbye now\n"
    items = ('<item><title>Liar</title><guid>liar</guid><itunes:duration>0:10</itunes:duration>'
             '<enclosure url="http://127.0.0.1:PORT/liar.mp3" type="audio/mpeg" length="1"/></item>'
             '<item><title>Long transcript</title><guid>lt</guid>'
             '<enclosure url="http://127.0.0.1:PORT/none.mp3" type="audio/mpeg" length="1"/>'
             '<podcast:transcript url="http://127.0.0.1:PORT/long.vtt" type="text/vtt"/></item>')
    with routes({"/feed.xml": _feed(items), "/liar.mp3": (200, {"Content-Type": "audio/mpeg"}, mp3),
                 "/long.vtt": (200, {"Content-Type": "text/vtt"}, long_vtt)}) as (base, hits):
        t0 = time.monotonic()
        p = run_cli("ingest", f"{base}/feed.xml", "--max-duration", "30", "-v", home=tmp_path / "home", timeout=300)
        took = time.monotonic() - t0
    assert p.returncode == 1, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if "talkindex: error:" in ln]
    assert any("Liar: longer than --max-duration (85 s > 30 s)" in e for e in errors), p.stderr
    assert any("Long transcript: longer than --max-duration (transcript ends at 1200 s > 30 s)" in e
               for e in errors), p.stderr
    assert "loading whisper model" not in p.stderr and "transcribing" not in p.stderr  # nothing was decoded
    assert hits["/none.mp3"] == 0 and took < 120


def test_hundreds_of_transcript_tags_are_tried_only_a_few(tmp_path):
    """500 <podcast:transcript> tags on one item: at most MAX_TRIES fetched, timed formats first, one
    summary line for the rest (was: 500 fetches and 500 warnings)."""
    from conftest import run_cli

    from talkindex.transcripts.existing import MAX_TRIES

    tags = "".join(f'<podcast:transcript url="http://127.0.0.1:PORT/t{i}.html" type="text/html"/>' for i in range(498))
    tags += ('<podcast:transcript url="http://127.0.0.1:PORT/gone.vtt" type="text/vtt"/>'
             '<podcast:transcript url="http://127.0.0.1:PORT/gone.srt" type="application/x-subrip"/>')
    item = (f'<item><title>Many</title><guid>many</guid>{tags}'
            '<enclosure url="http://127.0.0.1:PORT/missing.mp3" type="audio/mpeg" length="1"/></item>')
    with routes({"/feed.xml": _feed(item)}) as (base, hits):
        p = run_cli("ingest", f"{base}/feed.xml", home=tmp_path / "home", timeout=300)
    assert p.returncode == 1, p.stderr
    fetched = [k for k in hits if k.startswith("/t") or k.startswith("/gone")]
    assert len(fetched) == MAX_TRIES and {"/gone.vtt", "/gone.srt"} <= set(fetched), hits
    warnings = [ln for ln in p.stderr.splitlines() if ln.startswith("talkindex: warning:")]
    assert len(warnings) <= MAX_TRIES + 1, p.stderr
    assert any("496 more offered transcript(s) not tried" in w for w in warnings), p.stderr


def test_cue_cap_keeps_the_first_cues_with_one_note():
    from talkindex.transcripts.existing import MAX_SEGMENTS, cap, parse_transcript

    def ts(t: float) -> str:
        ms = int(t * 1000)
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"

    n = MAX_SEGMENTS + 500
    body = "WEBVTT\n\n" + "".join(f"{ts(i * 0.5)} --> {ts(i * 0.5 + 0.4)}\nword{i}\n\n" for i in range(n))
    t = parse_transcript(body.encode(), "text/vtt")
    assert len(t.segments) == n
    cap(t)
    assert len(t.segments) == MAX_SEGMENTS and len(t.notes) == 1 and f"{n} cues" in t.notes[0], t.notes
    assert t.segments[-1].text.strip() == f"word{MAX_SEGMENTS - 1}"
    cap(t)
    assert len(t.notes) == 1  # within the caps: nothing more said


def test_failure_budget_per_host(tmp_path):
    """2,000 items whose enclosures 404: a handful of requests, one summary line, all counted as failed,
    the untried ones left pending for a rerun (was: 2,000 requests and 2,000 error lines)."""
    from conftest import run_cli

    from talkindex.sources.budget import HOST_FAILURE_LIMIT

    items = "".join(f'<item><title>Ep {i}</title><guid>g{i}</guid>'
                    f'<enclosure url="http://127.0.0.1:PORT/ep{i}.mp3" type="audio/mpeg" length="1"/></item>'
                    for i in range(2000))
    with routes({"/feed.xml": _feed(items)}) as (base, hits):
        t0 = time.monotonic()
        p = run_cli("ingest", f"{base}/feed.xml", home=tmp_path / "home", timeout=600)
        took = time.monotonic() - t0
    assert p.returncode == 1, p.stderr
    tried = [k for k in hits if k.startswith("/ep")]
    assert HOST_FAILURE_LIMIT <= len(tried) <= HOST_FAILURE_LIMIT + 2, len(tried)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("talkindex: error:")]
    assert len(errors) <= HOST_FAILURE_LIMIT + 3, p.stderr[-2000:]
    summary = [e for e in errors if "more episode(s) not tried" in e]
    assert len(summary) == 1 and summary[0].startswith(f"talkindex: error: {base}/feed.xml: ") and (
        "from 127.0.0.1" in summary[0] and "HTTP 404" in summary[0]), summary
    assert "2000 failed" in p.stderr
    print(f"2000 failing enclosures: {took:.1f} s, {len(tried)} requests")


def test_gzip_bomb_served_to_ytdlp_alone_is_capped(tmp_path):
    """A server that shows talkindex a small page naming a video, then answers yt-dlp's own fetch of the
    same page with 200 MB of zeros as gzip: yt-dlp's whole-body read stops at its cap, one line."""
    from talkindex.sources.ytdl import MAX_READ_BYTES

    small = b'<html><body><video src="/talk.mp3"></video></body></html>'
    bomb = gzip.compress(b"<html><body>" + b"\0" * (200 * 2**20), compresslevel=9)  # looks like HTML: read whole
    html = {"Content-Type": "text/html"}
    with routes({"/page": [(200, html, small), (200, {**html, "Content-Encoding": "gzip"}, bomb)]}) as (base, hits):
        p, took, rss = run_measured("ingest", f"{base}/page", "--home", str(tmp_path / "home"))
    assert p.returncode == 1, p.stderr
    err = [ln for ln in p.stderr.splitlines() if ln.startswith("talkindex: error:")]
    assert len(err) == 1 and err[0].startswith(f"talkindex: error: {base}/page: ") and (
        f"larger than {MAX_READ_BYTES // 2**20} MB once decompressed" in err[0]), p.stderr
    assert hits["/page"] >= 2  # yt-dlp did fetch it: the cap, not the gate, stopped it
    assert took < 60 and rss < 400, (took, rss)
    print(f"bomb to yt-dlp: {took:.1f} s, peak RSS {rss} MiB")
