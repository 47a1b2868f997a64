"""Sites that rate-limit or refuse (YouTube's 429 / 403 / "not a bot"), over loopback through the real CLI:
retries with backoff, one final line naming the cause and the option that helps, and cookies given to
yt-dlp. TALKINDEX_BACKOFF_S / TALKINDEX_SLEEP_REQUESTS_S are lowered so this runs in seconds."""

from __future__ import annotations

import os
import time

from conftest import SAMPLES, run_cli
from loopback import routes

FAST = {"TALKINDEX_BACKOFF_S": "0.2", "TALKINDEX_SLEEP_REQUESTS_S": "0"}
PAGE = (200, {"Content-Type": "text/html"},
        '<!doctype html><html><head><title>A talk</title></head><body>'
        '<video controls src="/talk.mp3"></video></body></html>')
MP3 = (200, {"Content-Type": "audio/mpeg"}, (SAMPLES / "feature-stores.mp3").read_bytes())
TOO_MANY = (429, {"Content-Type": "text/plain", "Retry-After": "1"}, "slow down")
FORBIDDEN = (403, {"Content-Type": "text/plain"}, "no")


def ingest(*args: str, home, **env):
    old = {k: os.environ.get(k) for k in {**FAST, **env}}
    os.environ.update({**FAST, **env})
    try:
        t0 = time.monotonic()
        p = run_cli("ingest", *args, home=home, timeout=300)
        return p, time.monotonic() - t0
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_429_then_200_is_retried_with_backoff(tmp_path):
    """The page and its media each answer 429 once: both are retried and the download succeeds
    (--max-duration 1 then stops the episode before any ASR)."""
    with routes({"/page": [TOO_MANY, PAGE], "/talk.mp3": [TOO_MANY, MP3]}) as (base, hits):
        p, took = ingest(f"{base}/page", "--max-duration", "1", home=tmp_path / "home")
    assert "longer than --max-duration (85 s > 1 s)" in p.stderr, p.stderr  # the media did arrive
    assert hits["/page"] >= 2 and hits["/talk.mp3"] >= 2, hits
    assert "429" in p.stderr and "retrying in" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and took < 120


def test_media_that_keeps_answering_403_names_cause_and_option(tmp_path):
    with routes({"/page": PAGE, "/talk.mp3": FORBIDDEN}) as (base, hits):
        p, took = ingest(f"{base}/page", home=tmp_path / "home")
    assert p.returncode == 1, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("talkindex: error:")]
    assert len(errors) == 1, p.stderr
    assert errors[0].startswith(f"talkindex: error: {base}/page: ") and "403" in errors[0], errors
    assert "after 3 tries" in errors[0] and "--cookies FILE" in errors[0] and "--cookies-from-browser" in errors[0]
    assert hits["/talk.mp3"] >= 3, hits
    assert took < 120


def test_typed_page_always_429_is_one_line(tmp_path):
    with routes({"/page": TOO_MANY}) as (base, hits):
        p, _ = ingest(f"{base}/page", home=tmp_path / "home")
    assert p.returncode == 1 and hits["/page"] == 3, (hits, p.stderr)
    err = [ln for ln in p.stderr.splitlines() if ln.startswith("talkindex: error:")]
    assert err == [f"talkindex: error: {base}/page: HTTP 429: rate-limited by the site after 3 tries; "
                   "pass --cookies FILE or --cookies-from-browser BROWSER (a signed-in session), or wait and rerun"]


def test_cookies_reach_ytdlp_and_bad_cookie_options_are_one_line(tmp_path):
    seen: list[str] = []

    def page(h) -> None:
        seen.append(h.headers.get("Cookie") or "")
        status, headers, body = PAGE
        h.send_response(status)
        h.send_header("Content-Type", headers["Content-Type"])
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body.encode())

    jar = tmp_path / "cookies.txt"
    jar.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tSID\tsecret-session\n")
    with routes({"/page": page, "/talk.mp3": MP3}) as (base, hits):
        p, _ = ingest(f"{base}/page", "--max-duration", "1", "--cookies", str(jar), home=tmp_path / "home")
    assert "longer than --max-duration" in p.stderr, p.stderr
    assert "SID=secret-session" in seen, seen  # yt-dlp's fetches carried the session
    for bad, why in ((["--cookies", str(tmp_path / "nope.txt")], "no such readable file"),
                     (["--cookies-from-browser", "netscape4"], "unsupported browser")):
        p = run_cli("ingest", "https://example.invalid/x", *bad, home=tmp_path / "home", timeout=120)
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and why in p.stderr, p.stderr
