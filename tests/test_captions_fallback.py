"""Captions first, and a blocked media download still leaving a searchable episode when captions come
through, over loopback: the page's media always answers 403 (a site refusing downloads), its
<track kind="captions"> works.

LATE models a playlist's flat entry (a YouTube playlist or channel): the episode arrives without caption
tracks and only the download's own extraction sees them — here the page gains its <track> from its third
request on (talkindex's sniff and yt-dlp's resolve saw none). The auto-captions case goes through the
Pipeline in-process, with the episode a YouTube video with only automatic captions resolves to (yt-dlp's
generic extractor never offers automatic captions); its download and caption fetch are real, over loopback."""

from __future__ import annotations

import json

from conftest import SAMPLES, run_cli
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


def test_captions_found_by_the_download_extraction_come_before_any_media_byte(tmp_path):
    with routes({"/page": LATE, "/talk.mp3": FORBIDDEN, "/talk.vtt": VTT}) as (base, hits):
        p, _ = ingest(f"{base}/page", "--json", home=tmp_path / "home")
    assert p.returncode == 0 and not lines(p.stderr, "warning"), p.stderr
    [result] = [json.loads(x) for x in p.stdout.splitlines()]
    assert result["status"] == "indexed" and result["transcript_source"] == "captions", result
    assert hits["/talk.mp3"] == 0 and hits["/talk.vtt"] == 1 and hits["/page"] == 3, hits
    assert "loading whisper model" not in p.stderr
    found = json.loads(run_cli("ask", "what is training serving skew", "--json", home=tmp_path / "home",
                               check=True).stdout)
    assert found and found[0]["transcript_source"] == "captions", found


def test_blocked_media_indexed_from_auto_captions_under_prefer(tmp_path, monkeypatch):
    from talkindex.ingest.pipeline import IngestOptions, Pipeline
    from talkindex.records import Episode, TranscriptRef
    from talkindex.sources import ytdl

    monkeypatch.setattr(ytdl, "BACKOFF_S", 0.1)
    monkeypatch.setattr(ytdl, "SLEEP_REQUESTS_S", 0.0)
    events: list[tuple[str, dict]] = []
    with routes({"/watch": page(False), "/talk.mp3": FORBIDDEN, "/auto.vtt": VTT}) as (base, hits):
        ep = Episode(id="youtube-auto1", title="A talk", source=f"{base}/watch", media_url=f"{base}/watch",
                     webpage_url=f"{base}/watch", extractor="Youtube", language="en",
                     transcripts=[TranscriptRef(f"{base}/auto.vtt", "text/vtt", "en", "captions", "auto-captions")])
        pipe = Pipeline(tmp_path / "home", IngestOptions(captions="prefer"),
                        progress=lambda e, **d: events.append((e, d)))
        report = pipe.ingest([ep.source], resolve=lambda s: [ep])
    assert report.ok, report
    [r] = report.results
    assert r.status == "indexed" and r.transcript_source == "auto-captions", r
    warnings = [d["message"] for e, d in events if e == "warning"]
    assert len(warnings) == 1 and warnings[0].startswith(f"{base}/watch: media download failed ("), warnings
    assert "403" in warnings[0] and warnings[0].endswith("; indexed from its auto-captions instead"), warnings
    assert hits["/talk.mp3"] >= 3 and hits["/auto.vtt"] == 1, hits  # auto-captions only once the media failed


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
    assert f"talkindex: warning: {base}/page: transcript {base}/talk.vtt: HTTP 404" in p.stderr, p.stderr
    [error] = lines(p.stderr, "error")
    assert error.startswith(f"talkindex: error: {base}/page: ") and "403" in error and "--cookies" in error
    assert hits["/talk.vtt"] == 1, hits  # tried once, not again after the media failed


def test_captions_never_keeps_its_word(tmp_path):
    with routes({"/page": LATE, "/talk.mp3": FORBIDDEN, "/talk.vtt": VTT}) as (base, hits):
        p, _ = ingest(f"{base}/page", "--captions", "never", home=tmp_path / "home")
    assert p.returncode == 1 and hits["/talk.vtt"] == 0, (hits, p.stderr)
    [error] = lines(p.stderr, "error")
    assert error.startswith(f"talkindex: error: {base}/page: ") and "403" in error, error
