"""A blocked media download still leaves a searchable episode when captions come through, over loopback
through the real CLI: the page's media always answers 403 (a site refusing downloads), its
<track kind="captions"> works.

The first case models a playlist's flat entry (a YouTube playlist or channel): the episode arrives
without caption tracks, and only the download's own extraction sees them — here the page gains its
<track> from its third request on (talkindex's sniff and yt-dlp's resolve saw none)."""

from __future__ import annotations

import json

from conftest import SAMPLES
from loopback import routes
from test_polite import FORBIDDEN, ingest
from test_transcripts_first import TRUTH, vtt

MP3 = (200, {"Content-Type": "audio/mpeg"}, (SAMPLES / "feature-stores.mp3").read_bytes())
VTT = (200, {"Content-Type": "text/vtt"}, vtt(TRUTH["feature-stores"]["sentences"]))
GONE = (404, {"Content-Type": "text/plain"}, "gone")
TRACK = '<track kind="captions" src="/talk.vtt" srclang="en" label="English">'


def page(track: bool) -> tuple:
    return (200, {"Content-Type": "text/html"},
            '<!doctype html><html><head><title>A talk</title></head><body><video controls src="/talk.mp3">'
            f'{TRACK if track else ""}</video></body></html>')


LATE = [page(False), page(False), page(True)]  # the track shows only to the download's extraction


def lines(stderr: str, kind: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith(f"talkindex: {kind}:")]


def test_blocked_media_indexed_from_the_captions_its_extraction_found(tmp_path):
    with routes({"/page": LATE, "/talk.mp3": FORBIDDEN, "/talk.vtt": VTT}) as (base, hits):
        p, _ = ingest(f"{base}/page", "--json", home=tmp_path / "home")
    assert p.returncode == 0, p.stderr
    [result] = [json.loads(x) for x in p.stdout.splitlines()]
    assert result["status"] == "indexed" and result["transcript_source"] == "captions", result
    [warning] = lines(p.stderr, "warning")[-1:]
    assert warning.startswith(f"talkindex: warning: {base}/page: media download failed (") and "403" in warning
    assert warning.endswith("; indexed from its captions instead"), warning
    assert "loading whisper model" not in p.stderr and not lines(p.stderr, "error"), p.stderr
    assert hits["/talk.mp3"] >= 3 and hits["/talk.vtt"] == 1, hits  # retried, then the captions
    from conftest import run_cli

    found = json.loads(run_cli("ask", "what is training serving skew", "--json", home=tmp_path / "home",
                               check=True).stdout)
    assert found and found[0]["transcript_source"] == "captions", found


def test_captions_listed_by_the_page_come_first_no_download(tmp_path):
    with routes({"/page": page(True), "/talk.mp3": FORBIDDEN, "/talk.vtt": VTT}) as (base, hits):
        p, _ = ingest(f"{base}/page", "--json", home=tmp_path / "home")
    assert p.returncode == 0 and not lines(p.stderr, "warning"), p.stderr
    assert json.loads(p.stdout)["transcript_source"] == "captions"
    assert hits["/talk.mp3"] == 0, hits


def test_blocked_media_and_dead_captions_name_both(tmp_path):
    with routes({"/page": LATE, "/talk.mp3": FORBIDDEN, "/talk.vtt": GONE}) as (base, hits):
        p, _ = ingest(f"{base}/page", home=tmp_path / "home")
    assert p.returncode == 1, p.stderr
    assert lines(p.stderr, "warning")[-1] == (f"talkindex: warning: {base}/page: transcript {base}/talk.vtt: "
                                              "HTTP 404; the media download failed too"), p.stderr
    [error] = lines(p.stderr, "error")
    assert error.startswith(f"talkindex: error: {base}/page: ") and "403" in error and "--cookies" in error


def test_captions_never_keeps_its_word(tmp_path):
    with routes({"/page": LATE, "/talk.mp3": FORBIDDEN, "/talk.vtt": VTT}) as (base, hits):
        p, _ = ingest(f"{base}/page", "--captions", "never", home=tmp_path / "home")
    assert p.returncode == 1 and hits["/talk.vtt"] == 0, (hits, p.stderr)
    [error] = lines(p.stderr, "error")
    assert error.startswith(f"talkindex: error: {base}/page: ") and "403" in error, error
