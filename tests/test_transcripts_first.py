"""Transcripts that already exist come first, through the real CLI over loopback: Podcasting 2.0
transcripts (VTT with voices, SRT, JSON) and chapters in a feed, HTML5 <track> captions through yt-dlp,
and the ASR fallback with a warning naming the transcript URL (dead, malformed, other language)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SAMPLES, run_cli
from httpserver import serve

TRUTH = json.loads((SAMPLES / "truth.json").read_text())
SPEAKERS = ("Ana", "Ben")
GERMAN = ("Die Daten verändern sich mit der Zeit, und das ist nicht gut für das Modell. "
          "Wir müssen die Verteilung jeden Tag prüfen, sonst merken wir es nicht.")


def ts(t: float, sep: str = ".") -> str:
    ms = int(round(t * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def vtt(sents, voices=True) -> str:
    out = ["WEBVTT", ""]
    for s in sents:
        who = f"<v {SPEAKERS[s['i'] % 2]}>" if voices else ""
        out += [f"{ts(s['start'])} --> {ts(s['end'])}", who + s["text"], ""]
    return "\n".join(out)


def srt(sents) -> str:
    return "\n".join(f"{k}\n{ts(s['start'], ',')} --> {ts(s['end'], ',')}\n{s['text']}\n"
                     for k, s in enumerate(sents, 1))


def p20json(sents) -> str:
    return json.dumps({"version": "1.0.0", "segments": [
        {"startTime": s["start"], "endTime": s["end"], "body": s["text"], "speaker": SPEAKERS[s["i"] % 2]}
        for s in sents]})


def item(n: int, title: str, mp3: str, extra: str = "") -> str:
    return (f"<item><title>{title}</title><guid>tf-{n}</guid><pubDate>Mon, 0{n} Jun 2025 09:00:00 GMT</pubDate>"
            f'<enclosure url="http://127.0.0.1:PORT/{mp3}" type="audio/mpeg" length="1"/>{extra}</item>')


def transcript_tag(name: str, mime: str, lang: str = "en") -> str:
    return f'<podcast:transcript url="http://127.0.0.1:PORT/{name}" type="{mime}" language="{lang}"/>'


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("site")
    for k in TRUTH:
        shutil.copy(SAMPLES / TRUTH[k]["file"], d / TRUTH[k]["file"])
    fs, md, et = (TRUTH[k]["sentences"] for k in ("feature-stores", "model-deployment", "experiment-tracking"))
    (d / "fs.vtt").write_text(vtt(fs))
    (d / "md.srt").write_text(srt(md))
    (d / "et.json").write_text(p20json(et))
    (d / "broken.vtt").write_text("WEBVTT\n\n00:00:01.000 --> banana\nthis is not a cue\n")
    (d / "german.vtt").write_text(vtt([{**s, "text": GERMAN} for s in fs], voices=False))
    (d / "chapters.json").write_text(json.dumps({"version": "1.2.0", "chapters": [
        {"startTime": 0, "title": "Intro"}, {"startTime": 30, "title": "Drift and how to watch it"}]}))
    chapters = '<podcast:chapters url="http://127.0.0.1:PORT/chapters.json" type="application/json+chapters"/>'
    ns = 'xmlns:podcast="https://podcastindex.org/namespace/1.0"'
    feed = (f'<?xml version="1.0"?><rss version="2.0" {ns}><channel><title>Transcripts first</title>'
            "<language>en</language>"
            + item(1, "VTT with voices", "feature-stores.mp3", transcript_tag("fs.vtt", "text/vtt") + chapters)
            + item(2, "SRT", "model-deployment.mp3", transcript_tag("md.srt", "application/x-subrip"))
            + item(3, "JSON", "experiment-tracking.mp3", transcript_tag("et.json", "application/json"))
            + "</channel></rss>")
    (d / "feed.xml").write_text(feed)
    fallback = (f'<?xml version="1.0"?><rss version="2.0" {ns}><channel><title>Fallbacks</title>'
                "<language>en</language>"
                + item(4, "Dead transcript", "feature-stores.mp3", transcript_tag("gone.vtt", "text/vtt"))
                + item(5, "Broken transcript", "model-deployment.mp3", transcript_tag("broken.vtt", "text/vtt"))
                + item(6, "German transcript", "experiment-tracking.mp3",
                       transcript_tag("german.vtt", "text/vtt", "en"))
                + "</channel></rss>")
    (d / "fallback.xml").write_text(fallback)
    (d / "page.html").write_text('<!doctype html><html><head><title>A talk with captions</title></head><body>'
                                 '<video controls src="feature-stores.mp3">'
                                 '<track kind="captions" src="fs.vtt" srclang="en" label="English"></video>'
                                 "</body></html>")
    return d


def test_publisher_transcripts_index_without_asr(site, tmp_path):
    home = tmp_path / "home"
    with serve(site) as base:
        p = run_cli("ingest", f"{base}/feed.xml", "--json", "-v", home=home)
    assert p.returncode == 0, p.stderr
    assert "loading whisper model" not in p.stderr  # no ASR model was loaded at all
    results = [json.loads(x) for x in p.stdout.splitlines()]
    assert {r["transcript_source"] for r in results} == {"publisher"} and len(results) == 3
    eps = {e["title"]: e for e in json.loads(run_cli("list", "--json", home=home, check=True).stdout)}
    assert all(e["transcript_source"] == "publisher" and e["word_timing"] == "estimated" for e in eps.values())
    assert eps["SRT"]["transcript_url"].endswith("/md.srt")
    hits = json.loads(run_cli("ask", "what is training serving skew", "--json", home=home, check=True).stdout)
    top = hits[0]
    assert top["title"] == "VTT with voices" and top["speaker"] in SPEAKERS and top["transcript_source"] == "publisher"
    skew = next(s for s in TRUTH["feature-stores"]["sentences"] if "serving skew" in s["text"])
    assert top["start"] <= skew["start"] + 0.05 < top["end"]  # cue times carried to the moment
    assert top["chapter"] == ("Drift and how to watch it" if top["start"] >= 30 else "Intro")
    doc = json.loads(run_cli("transcript", eps["VTT with voices"]["id"], "--format", "json", home=home,
                             check=True).stdout)
    assert doc["source"] == "publisher" and [c["title"] for c in doc["chapters"]][:1] == ["Intro"]
    assert {s["speaker"] for s in doc["segments"]} == set(SPEAKERS)
    srt_out = run_cli("transcript", eps["VTT with voices"]["id"], "--format", "srt", home=home, check=True).stdout
    assert "Ana: " in srt_out or "[Ana]" in srt_out
    assert "pub" in run_cli("list", home=home, check=True).stdout


def test_fallbacks_to_asr_are_named(site, tmp_path):
    home = tmp_path / "home"
    with serve(site) as base:
        p = run_cli("ingest", f"{base}/fallback.xml", "--json", home=home)
    assert p.returncode == 0, p.stderr
    warn = [ln for ln in p.stderr.splitlines() if "warning" in ln]
    assert any("/gone.vtt" in w and "404" in w for w in warn), p.stderr
    assert any("/broken.vtt" in w for w in warn), p.stderr
    assert any("/german.vtt" in w and "German" in w for w in warn), p.stderr
    assert {json.loads(x)["transcript_source"] for x in p.stdout.splitlines()} == {"asr"}


def test_captions_never_and_html5_track(site, tmp_path):
    home = tmp_path / "home"
    with serve(site) as base:
        p = run_cli("ingest", f"{base}/page.html", "--json", home=home)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout.splitlines()[0])["transcript_source"] == "captions"
        p = run_cli("ingest", f"{base}/page.html", "--json", "--force", "--captions", "never", home=home)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout.splitlines()[0])["transcript_source"] == "asr"
