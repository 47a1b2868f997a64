"""One validation for every face (requests.py): the same refusals through the Python API, the CLI and
the web server, and out-of-range times clamped or refused at each boundary (issue 21: `?t=inf`, a
publisher segment at 1e306 s)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SAMPLES, run_cli
from httpserver import serve as serve_files
from test_server import request
from test_server import serve as serve_app

from talkindex import Index
from talkindex.errors import UsageError
from talkindex.requests import MAX_K, MAX_QUESTION, AskRequest, TranscriptRequest


@pytest.mark.fast
def test_python_api_refuses_what_the_cli_refuses(tiny_home):
    idx = Index(tiny_home)
    for bad in ({"since": "garbage"}, {"since": "2024-13-01"}, {"k": True}, {"k": MAX_K + 1}, {"k": 2.0},
                {"mode": "fuzzy"}):
        with pytest.raises(UsageError):
            idx.ask("feature store", **bad)
    with pytest.raises(UsageError, match="too long"):
        idx.ask("x" * (MAX_QUESTION + 1))
    assert idx.ask("feature store", k=MAX_K)  # the boundary itself is allowed
    assert AskRequest("q", since="20240131").since == "2024-01-31"  # what the store compares is one form
    with pytest.raises(UsageError, match="finite"):
        TranscriptRequest("e", start=float("nan"))
    assert TranscriptRequest("e", start=-3, end=1e308).start == 0.0


@pytest.fixture(scope="module")
def far_home(tmp_path_factory) -> tuple[Path, str]:
    """A home ingested through the real CLI from a loopback feed whose Podcasting 2.0 JSON transcript
    has a segment at 1e306 s, on an episode whose page is a YouTube URL (the page embeds a player)."""
    site = tmp_path_factory.mktemp("far-site")
    shutil.copy(SAMPLES / "feature-stores.mp3", site / "feature-stores.mp3")
    (site / "far.json").write_text(json.dumps({"version": "1.0.0", "segments": [
        {"startTime": 0, "endTime": 4, "body": "Feature stores keep training and serving features in step."},
        {"startTime": 1e306, "endTime": 1e306, "body": "A segment at the end of time."}]}))
    ns = 'xmlns:podcast="https://podcastindex.org/namespace/1.0"'
    (site / "feed.xml").write_text(
        f'<?xml version="1.0"?><rss version="2.0" {ns}><channel><title>Far</title><language>en</language>'
        "<item><title>Far away</title><guid>far-1</guid><link>https://www.youtube.com/watch?v=abcdefghijk</link>"
        '<enclosure url="http://127.0.0.1:PORT/feature-stores.mp3" type="audio/mpeg" length="1"/>'
        '<podcast:transcript url="http://127.0.0.1:PORT/far.json" type="application/json" language="en"/>'
        "</item></channel></rss>")
    home = tmp_path_factory.mktemp("far-home")
    with serve_files(site) as base:
        p = run_cli("ingest", f"{base}/feed.xml", "--json", home=home)
    assert p.returncode == 0, p.stderr
    eid = json.loads(p.stdout.splitlines()[0])["episode_id"]
    return home, eid


def test_far_times_render_in_the_cli(far_home):
    home, eid = far_home
    for fmt in ("srt", "vtt"):
        p = run_cli("transcript", eid, "--format", fmt, home=home)
        assert p.returncode == 0 and "unexpected" not in p.stderr, p.stderr
        assert "A segment at the end of time." in p.stdout


def test_server_refuses_or_clamps_times_and_asks(far_home):
    home, eid = far_home
    with serve_app(home) as (base, proc, lines):
        for fmt in ("srt", "vtt", "txt", "json"):
            status, _, body = request(base, f"/api/episodes/{eid}/transcript?format={fmt}&download=1")
            assert status == 200, (fmt, body[:300])
        for t in ("inf", "-inf", "nan", "Infinity"):
            status, _, body = request(base, f"/episode/{eid}?t={t}")
            assert status == 400 and b"finite" in body, (t, status, body[:300])
        for t in ("1e306", "-5", "12.5"):
            status, _, body = request(base, f"/episode/{eid}?t={t}")
            assert status == 200 and b"youtube" in body, (t, status, body[:300])
        for query, status in ((f"k={MAX_K}", 200), (f"k={MAX_K + 1}", 400), ("since=garbage", 400),
                              ("since=2024-02-30", 400), ("k=true", 400), ("mode=fuzzy", 400)):
            got, _, body = request(base, f"/api/ask?q=feature+store&{query}")
            assert got == status, (query, got, body[:300])
    assert not any("Traceback" in ln for ln in lines)
