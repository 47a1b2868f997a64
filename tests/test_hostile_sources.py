"""Hostile servers and metadata on the input side: poisoned caches, slow-loris, truncation, terminal injection.

In-process cases drive `sources` against a loopback server; one case runs the real CLI (`ingest`, `list`,
`ask`), which loads the bundled models once.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from talkindex.errors import SourceError
from talkindex.records import Episode
from talkindex.sources import mediacache, net
from talkindex.sources import resolve as sources
from talkindex.textsafe import line, term

try:
    from conftest import run_cli
except ImportError:  # tests/ imported as a package
    from tests.conftest import run_cli

HTML = b"<!doctype html><html><head><title>502 Bad Gateway</title></head><body>oops</body></html>\n" * 40
# ANSI (clear screen, colour), OSC (window title, hyperlink) ended by BEL, a C1 CSI, RLO, a percent-encoded
# newline and a real one, DEL
EVIL = ("Evil \x1b[2J\x1b[31mred\x1b]0;pwned\x07 \x1b]8;;http://x.test/\x1b\\link\x1b]8;;\x1b\\ "
        "\x9b31m c1 \u202egnp.exe\u202c two%0Alines\r\nthree\x7f")
MARKUP = "[link=http://x.test/]click[/link]"  # rich markup: a table cell given a str would turn it into a link
# what a terminal must never receive from remote text (TAB and LF of our own output excepted)
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _xml(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


class _Evil(BaseHTTPRequestHandler):
    root: Path
    hits: Counter = Counter()

    def log_message(self, format, *args):
        pass

    def _send(self, body: bytes, ctype: str, length: int | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def _trickle(self, data: bytes, every: float) -> None:
        try:
            for i in range(len(data)):
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                time.sleep(every)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        self.close_connection = True

    def do_GET(self):
        parts = urlsplit(self.path)
        self.hits[parts.path] += 1
        q = parse_qs(parts.query)
        tone = (self.root / "tone.mp3").read_bytes()
        if parts.path == "/poison.mp3":  # an error page with a media type and a 200
            self._send(HTML, "audio/mpeg")
        elif parts.path == "/html.mp3":
            self._send(HTML, "text/html; charset=utf-8")
        elif parts.path.startswith("/named"):
            self._send(tone, "audio/mpeg")
        elif parts.path in ("/tone.mp3", "/speech.mp3"):
            self._send((self.root / parts.path[1:]).read_bytes(), "audio/mpeg")
        elif parts.path == "/short.mp3":  # Content-Length says more than is sent
            self._send(tone[: len(tone) // 3], "audio/mpeg", length=len(tone))
            self.close_connection = True
        elif parts.path == "/slow.mp3":  # slow loris: headers at once, then one byte a second
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.send_header("Content-Length", str(len(tone)))
            self.end_headers()
            self._trickle(tone, 1.0)
        elif parts.path == "/slow-headers.mp3":
            self._trickle(b"HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\n" + b"X-Pad: a\r\n" * 1000, 0.5)
        elif parts.path == "/slow-feed.xml":
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.end_headers()
            self._trickle(b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title>' + b" " * 10000, 1.0)
        elif parts.path == "/feed.xml":
            items = ""
            for i, enc in enumerate(q.get("enc", [])):
                title = q.get("title", [EVIL])[0] + f" #{i}"
                items += (f"<item><title>{_xml(title)}</title><guid>item-{i}</guid>"
                          f'<enclosure url="{_xml(enc)}" type="audio/mpeg"/></item>')
            show = _xml(q.get("show", [f"{MARKUP} Show \x1b[5mblink\x1b[0m \u202eevil"])[0])
            body = f'<?xml version="1.0"?><rss version="2.0"><channel><title>{show}</title>{items}</channel></rss>'
            self._send(body.encode(), "application/rss+xml")
        else:
            self.send_error(404)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    d = tmp_path_factory.mktemp("hostile-media")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
                    "-c:a", "libmp3lame", "-b:a", "32k", str(d / "tone.mp3")], check=True)
    return d


@pytest.fixture(scope="module")
def evil(media):
    handler = type("H", (_Evil,), {"root": media, "hits": Counter()})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", handler.hits
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def fast_stall(monkeypatch):
    monkeypatch.setattr(net, "MIN_RATE", 1024.0)
    monkeypatch.setattr(net, "STALL_SECONDS", 2.0)
    monkeypatch.setattr(sources, "TIMEOUT", 2.0)


def _item(base: str, path: str, title: str = "Item one") -> Episode:
    """An item of a feed on the same loopback server (so the SSRF rule allows its enclosure)."""
    return Episode(id="rss-" + re.sub(r"\W", "", path), title=title, source=f"{base}/feed.xml",
                   media_url=base + path, extractor="rss", trusted_private=True, origin_host="127.0.0.1")


# ---------------------------------------------------------------------------------------------
# downloads


def test_poisoned_download_refused_and_never_cached(evil, tmp_path):
    base, hits = evil
    for path, why in (("/poison.mp3", "not audio or video"), ("/html.mp3", "the server sent an HTML page")):
        ep = _item(base, path)
        for attempt in (1, 2):
            with pytest.raises(SourceError) as err:
                sources.download(ep, tmp_path)
            msg = str(err.value)
            print(f"\n{path} attempt {attempt}: {msg}")
            assert msg.startswith(f"{base}/feed.xml: Item one: ") and why in msg, msg
            assert list(tmp_path.iterdir()) == []  # nothing cached, no temp left
        assert hits[path] == 2  # the second run fetched again


def test_poisoned_cache_from_an_older_version_is_fetched_again(evil, media, tmp_path):
    base, hits = evil
    ep = _item(base, "/tone.mp3")
    (tmp_path / f"{ep.id}.mp3").write_bytes(HTML)  # what an older version could leave behind
    before = hits["/tone.mp3"]
    path = sources.download(ep, tmp_path)
    assert path.read_bytes() == (media / "tone.mp3").read_bytes() and hits["/tone.mp3"] == before + 1
    assert sources.download(ep, tmp_path) == path and hits["/tone.mp3"] == before + 1  # verified: reused
    assert mediacache.media_duration(path) == pytest.approx(3.0, abs=0.2)
    path.write_bytes(path.read_bytes()[:100])  # changed behind our back: record no longer matches
    assert sources.download(ep, tmp_path).read_bytes() == (media / "tone.mp3").read_bytes()
    assert hits["/tone.mp3"] == before + 2
    sources.download(ep, tmp_path, force=True)  # --force downloads again
    assert hits["/tone.mp3"] == before + 3


def test_truncated_download_against_content_length(evil, tmp_path):
    base, _ = evil
    with pytest.raises(SourceError) as err:
        sources.download(_item(base, "/short.mp3"), tmp_path)
    print(f"\n{err.value}")
    assert re.search(r": download cut short: got \d+ bytes, expected \d+$", str(err.value))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path, why", [
    ("/slow.mp3", "stalled: under 1 KB/s for 2 s"),
    ("/slow-headers.mp3", "stalled: no response headers after"),
])
def test_slow_loris_download_stalls_within_the_window(evil, tmp_path, fast_stall, path, why):
    base, _ = evil
    t0 = time.monotonic()
    with pytest.raises(SourceError) as err:
        sources.download(_item(base, path), tmp_path)
    took = time.monotonic() - t0
    print(f"\n{path}: {err.value} ({took:.1f} s)")
    assert why in str(err.value) and str(err.value).startswith(f"{base}/feed.xml: Item one: ")
    assert took < 8
    assert list(tmp_path.iterdir()) == []


def test_slow_loris_feed_stalls(evil, fast_stall):
    base, _ = evil
    t0 = time.monotonic()
    with pytest.raises(SourceError) as err:
        sources.resolve(f"{base}/slow-feed.xml")
    print(f"\n{err.value} ({time.monotonic() - t0:.1f} s)")
    assert str(err.value) == f"{base}/slow-feed.xml: stalled: under 1 KB/s for 2 s"
    assert time.monotonic() - t0 < 6


def test_feed_items_record_their_origin(evil):
    base, _ = evil
    [ep] = sources.resolve(f"{base}/feed.xml?enc={quote(base + '/tone.mp3', safe='')}")
    assert ep.trusted_private and ep.origin_host == "127.0.0.1" and ep.source.startswith(base + "/feed.xml")


def test_titles_from_urls_never_decode_control_characters(evil):
    base, _ = evil
    [ep] = sources.resolve(f"{base}/named%0Aevil%1B%5B31m%20ok.mp3")
    assert ep.title == "named%0Aevil%1B[31m ok"  # %0A / %1B stay encoded; the rest is decoded
    name = sources.unquote_name("two%0Alines%1B%5B31m%20ok.mp3")
    assert name == "two%0Alines%1B[31m ok.mp3" and "\n" not in name


# ---------------------------------------------------------------------------------------------
# textsafe


def test_term_escapes_everything_a_terminal_acts_on():
    out = term(EVIL)
    assert not RAW_CONTROL.search(out) and "\n" not in out and "\r" not in out
    for shown in ("\\x1b[2J", "\\x1b]0;pwned\\x07", "\\x9b31m", "\\u202egnp.exe\\u202c", "two%0Alines", "\\x7f"):
        assert shown in out, shown
    assert term("Plain Ünïcödé 中文 👩🏽‍💻") == "Plain Ünïcödé 中文 👩🏽\\u200d💻"  # ZWJ is a Cf character
    assert term(term(EVIL)) == term(EVIL)  # idempotent: escaping twice changes nothing
    assert line("a\n\n b\tc", 80) == "a b c"
    assert line("x" * 100, 10) == "x" * 9 + "…"
    assert line("abcdefgh\x1b[31m", 11) == "abcdefgh…"  # never cut inside an escape


# ---------------------------------------------------------------------------------------------
# through the CLI


def _no_raw_controls(text: str, what: str) -> None:
    m = RAW_CONTROL.search(text)
    assert m is None, f"{what} holds a raw {m.group()!r}: ...{text[max(0, m.start() - 80):m.end() + 80]!r}"


def test_cli_escapes_hostile_titles_and_names_inputs_as_typed(evil, media, tmp_path):
    """One real ingest (models load once): a feed whose titles try terminal injection, with a good item,
    a poisoned enclosure and a slow-loris one; then `list` and `ask` must show the titles escaped."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    base, hits = evil
    wav = media / "speech.wav"
    subprocess.run(["espeak-ng", "-s", "160", "-w", str(wav),
                    "Gradient checkpointing trades compute for memory while training large models."], check=True)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), str(media / "speech.mp3")], check=True)
    # the hostile show name (with MARKUP) is shown in `ask` and in the `list` table
    encs = "&".join(f"enc={quote(base + p, safe='')}" for p in ("/speech.mp3", "/poison.mp3", "/slow.mp3"))
    feed = f"{base}/feed.xml?{encs}"
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{feed}\n")
    home = tmp_path / "home"
    env = {"TALKINDEX_NET_STALL_SECONDS": "2", "TALKINDEX_NET_TIMEOUT": "3"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    poisoned_before = hits["/poison.mp3"]  # other tests of this module fetch it too
    try:
        p = run_cli("ingest", str(urls), home=home, timeout=600)
        again = run_cli("ingest", str(urls), home=home, timeout=300)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    print("\n--- ingest stderr:\n" + p.stderr[-3000:])
    assert p.returncode == 1, p.stderr[-3000:]
    for out, what in ((p.stdout, "ingest stdout"), (p.stderr, "ingest stderr"), (again.stderr, "2nd ingest")):
        _no_raw_controls(out, what)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("talkindex: error:")]
    assert len(errors) == 2, p.stderr[-3000:]
    for e in errors:
        assert e.startswith(f"talkindex: error: {feed}: Evil "), e  # the feed as typed, then the item
        assert e.count(feed) == 1, e  # named once (not once per layer)
    assert any("not audio or video" in e for e in errors) and any("stalled: under 1 KB/s for 2 s" in e
                                                                for e in errors)
    assert hits["/poison.mp3"] - poisoned_before == 2, (dict(hits), again.stderr)  # refused again: never cached
    assert "Traceback" not in p.stderr + again.stderr

    lst = run_cli("list", home=home, check=True)
    _no_raw_controls(lst.stdout + lst.stderr, "list")
    assert "Evil " in lst.stdout, lst.stdout  # (feeds may strip controls at parse time; we escape the rest)
    assert "[link" in lst.stdout, "list interpreted rich markup in a show name:\n" + lst.stdout  # (cells fold)
    ask = run_cli("ask", "how does gradient checkpointing save memory", home=home, check=True)
    _no_raw_controls(ask.stdout + ask.stderr, "ask")
    assert "Evil " in ask.stdout and MARKUP in ask.stdout and "\\u202egnp" in ask.stdout, ask.stdout
    js = run_cli("list", "--json", home=home, check=True).stdout
    assert "Evil " in js and "\x1b" not in js  # JSON: data as stored, escaped by json.dumps
