"""`talkindex serve` against a hostile browser: DNS rebinding, error pages, symlinks in the media cache.

A real `serve` on loopback over a home built in seconds from committed transcripts; requests are raw
HTTP so the Host header is exactly what a rebinding page (or an odd client) sends.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from test_server import request, serve


def raw_get(base: str, path: str, host: str | None) -> tuple[int, bytes]:
    """GET `path` with exactly this Host header (None: no Host line at all)."""
    addr, port = base.removeprefix("http://").rsplit(":", 1)
    lines = [f"GET {path} HTTP/1.1"] + ([f"Host: {host}"] if host is not None else []) + ["Connection: close", "", ""]
    with socket.create_connection((addr, int(port)), timeout=30) as s:
        s.sendall("\r\n".join(lines).encode("latin-1"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.fixture(scope="module")
def served(tiny_home):
    with serve(tiny_home, "--allowed-host", "talks.example.test") as (base, proc, lines):
        yield base, lines


@pytest.mark.parametrize("host", ["rebind.attacker.example", "rebind.attacker.example:{port}", "1.2.3.4",
                                  "1.2.3.4:{port}", "", "localhost.attacker.example", "[::2]:{port}",
                                  "127.0.0.1.nip.io:{port}"])
def test_foreign_host_is_refused(served, host):
    base, _ = served
    port = base.rsplit(":", 1)[1]
    for path in ("/", "/api/episodes", "/api/ask?q=drift", "/episodes"):
        status, body = raw_get(base, path, host.format(port=port))
        assert status in (400, 403), (host, path, status)
        assert b"episodes" not in body.lower() or status == 400, body[:200]
        assert b"drift" not in body and b"<html" not in body.lower()
    status, body = raw_get(base, "/", host.format(port=port))
    if status == 403:
        assert body.startswith(b"talkindex: ") and body.count(b"\n") == 1 and b"--allowed-host" in body


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "127.0.0.1", "localhost:{port}", "LOCALHOST",
                                  "[::1]:{port}", "talks.example.test:{port}"])
def test_own_names_are_answered(served, host):
    base, _ = served
    status, body = raw_get(base, "/", host.format(port=base.rsplit(":", 1)[1]))
    assert status == 200 and b"<html" in body.lower(), (host, status, body[:200])
    status, body = raw_get(base, "/api/episodes", host.format(port=base.rsplit(":", 1)[1]))
    assert status == 200 and json.loads(body), host


def test_no_host_line_is_refused(served):
    base, _ = served
    assert raw_get(base, "/api/episodes", None)[0] in (400, 403)


def test_error_pages_do_not_show_the_home(tmp_path):
    """An empty home's "index is empty" names the home on the CLI, never to the web client."""
    home = tmp_path / "secret-home-name"
    home.mkdir()
    with serve(home) as (base, proc, lines):
        for path in ("/?q=drift", "/api/ask?q=drift", "/api/episodes/nope/transcript", "/episode/nope",
                     "/media/nope"):
            status, _, body = request(base, path)
            assert status in (200, 404, 503), (path, status)
            assert b"secret-home-name" not in body and str(tmp_path).encode() not in body, (path, body[:300])
        status, _, body = request(base, "/api/ask?q=drift")
        assert status == 404 and b"index is empty" in body


def _remote_home(home: Path) -> tuple[Path, str]:
    """A home whose one episode came from a URL (so /media/<id> reads the download cache)."""
    from fast_home import fixture_transcripts

    from talkindex.ingest.pipeline import Pipeline, Transcribed

    ep, tr = fixture_transcripts()[0]
    ep.media_url = ep.source = "https://talks.example.test/ep.mp3"
    ep.webpage_url, ep.local = "https://talks.example.test/ep", False
    pipe = Pipeline(home)
    report = pipe.ingest([ep.source], resolve=lambda src: [ep],
                         run=lambda todo, rep: [pipe.write(Transcribed(e, tr), rep) for e in todo])
    assert report.ok, report
    return home, ep.id


def test_symlink_in_media_cache_is_not_served(tmp_path):
    from talkindex.sources.mediacache import ok_path
    from talkindex.sources.ytdl import safe_id

    home, eid = _remote_home(tmp_path / "home")
    media = home / "media"
    media.mkdir(exist_ok=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:secret\n")
    link = media / f"{safe_id(eid)}.mp3"
    link.symlink_to(secret)
    ok_path(link).write_text(json.dumps({"size": secret.stat().st_size, "duration": 1.0, "url": ""}))
    with serve(home) as (base, proc, lines):
        status, _, body = request(base, f"/media/{eid}")
        assert status == 404 and b"root:" not in body, (status, body[:200])
        # the same file as a plain cached file is served: the refusal is the symlink's, not the record's
        link.unlink()
        link.write_bytes(secret.read_bytes())
        status, _, body = request(base, f"/media/{eid}")
        assert status == 200 and body == secret.read_bytes()
