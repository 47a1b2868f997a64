"""talkindex.sources.resolve: urls files, resolving inputs into episodes, downloading (real yt-dlp, loopback HTTP)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import socket
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from talkindex.errors import SourceError
from talkindex.records import Episode
from talkindex.sources import resolve as sources
from talkindex.sources import ytdl

try:
    from httpserver import serve
except ImportError:  # tests/ imported as a package
    from tests.httpserver import serve

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
DEVSET = FIXTURES / "devset"
FEEDS = FIXTURES / "feeds"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared fixtures not available: {path} is missing")
    return path


def sha12(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    """A served folder with a generated tagged MP3 (2 s sine) and a plain WAV."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    d = tmp_path_factory.mktemp("media")
    base = ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2"]
    subprocess.run([*base, "-metadata", "title=Sine Test", "-metadata", "artist=Test Show",
                    "-c:a", "libmp3lame", "-b:a", "32k", str(d / "tone.mp3")], check=True)
    subprocess.run([*base, "-map_metadata", "-1", str(d / "plain tone.wav")], check=True)
    (d / "page.html").write_text("<!doctype html><html><head><title>x</title></head>"
                                 "<body><p>No media here.</p></body></html>")
    return d


class _Handler(SimpleHTTPRequestHandler):
    """Static files plus endpoints that misbehave."""

    release = threading.Event()

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/500":
            self.send_error(500)
        elif path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/to-file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/hang":
            self.release.wait(10)
        elif path == "/truncated.mp3":
            body = (Path(self.directory) / "tone.mp3").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
        elif path == "/nolength.mp3":  # no Content-Length: the size limit applies while downloading
            body = (Path(self.directory) / "tone.mp3").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
        else:
            super().do_GET()


@pytest.fixture(scope="module")
def server(media_dir):
    def handler(*a, **kw):
        return _Handler(*a, directory=str(media_dir), **kw)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    _Handler.release.set()
    srv.shutdown()
    srv.server_close()


# ---------------------------------------------------------------------------------------------
# urls files


def test_read_urls_file(tmp_path):
    sub = tmp_path / "lists"
    sub.mkdir()
    f = sub / "urls.txt"
    long_line = "https://example.com/" + "a" * 5000
    f.write_bytes(
        "\ufeff# my talks\n"
        "\n"
        "  https://example.com/feed.xml   # the main feed\n"
        "https://example.com/feed.xml\n"
        "https://example.com/page#t=10\n"
        "talks/one.mp3\n"
        "./talks/one.mp3\n"
        "ftp://example.com/a.mp3\n"
        "javascript:alert(1)\n"
        "https://example.com/\x07bell\n".encode()
        + b"https://example.com/caf\xe9.mp3\n"
        + f"{long_line}\n".encode()
        + b"ytsearch3:mlops podcast\r\n"
        + b"file:///tmp/x.mp3\n"
        + b"/abs/path/talk.wav\n"
        + b"https:///nohost\n"
    )
    inputs, errors = sources.read_urls_file(f)
    assert inputs == [
        "https://example.com/feed.xml",
        "https://example.com/page#t=10",
        str(sub / "talks" / "one.mp3"),
        "ytsearch3:mlops podcast",
        "file:///tmp/x.mp3",
        "/abs/path/talk.wav",
    ]
    by_line = {e.reason.split(":")[0]: e for e in errors}
    assert sorted(by_line) == ["line 10", "line 11", "line 12", "line 16", "line 8", "line 9"]
    assert "unsupported URL scheme 'ftp'" in by_line["line 8"].reason
    assert "unsupported URL scheme 'javascript'" in by_line["line 9"].reason
    assert "control characters" in by_line["line 10"].reason
    assert "not valid UTF-8" in by_line["line 11"].reason
    assert "too long" in by_line["line 12"].reason
    assert "no host" in by_line["line 16"].reason
    assert all(isinstance(e, SourceError) and str(e).startswith(str(f) + ": line ") for e in errors)


def test_read_urls_file_missing(tmp_path):
    with pytest.raises(SourceError, match="file not found"):
        sources.read_urls_file(tmp_path / "nope.txt")
    with pytest.raises(SourceError, match="directory"):
        sources.read_urls_file(tmp_path)


_url = st.builds(lambda host, path: f"https://{host}.example/{path}",
                 st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True),
                 st.from_regex(r"[A-Za-z0-9_./?=&%-]{0,30}", fullmatch=True))
_rel = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_ .-]{0,20}\.mp3", fullmatch=True)
_line = st.one_of(
    st.tuples(st.just("url"), _url),
    st.tuples(st.just("rel"), _rel),
    st.tuples(st.just("comment"), st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=30)),
    st.tuples(st.just("blank"), st.sampled_from(["", "   ", "\t"])),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_line, max_size=25), st.booleans())
def test_urls_file_property(tmp_path, lines, trailing_comments):
    f = tmp_path / "urls.txt"
    text, expected = [], []
    for kind, value in lines:
        if kind == "comment":
            text.append("#" + value)
            continue
        if kind == "blank":
            text.append(value)
            continue
        item = value if kind == "url" else str(tmp_path / value.strip())
        if item not in expected:
            expected.append(item)
        text.append(f"  {value}  " + (" # note" if trailing_comments else ""))
    f.write_text("\n".join(text), encoding="utf-8")
    inputs, errors = sources.read_urls_file(f)
    assert errors == []
    assert inputs == expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_urls_file_never_crashes(tmp_path, data):
    f = tmp_path / "urls.txt"
    f.write_bytes(data)
    inputs, errors = sources.read_urls_file(f)
    assert len(set(inputs)) == len(inputs)
    for item in inputs:
        assert item.startswith(("http://", "https://", "file:", "/")) or sources._SEARCH.match(item)
        assert not any(ord(c) < 32 or ord(c) == 127 for c in item)
    for e in errors:
        assert isinstance(e, SourceError) and e.reason.startswith("line ")


# ---------------------------------------------------------------------------------------------
# resolve


def test_devset_feed_and_download(tmp_path):
    need(DEVSET / "feed.xml")
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(DEVSET / "dev01.mp3", root / "dev01.mp3")
    with serve(root) as base:
        port = base.rsplit(":", 1)[1]
        (root / "podcast").write_text((DEVSET / "feed.xml").read_text().replace("PORT", port))
        feed_url = base + "/podcast"  # no .xml extension: detected by content
        eps = sources.resolve(feed_url)
        assert eps == sources.resolve(feed_url)  # ids and everything else stable
        truth = json.loads((DEVSET / "episodes.json").read_text())
        assert [e.title for e in eps] == [t["title"] for t in truth]
        assert [e.published for e in eps] == ["2025-02-03", "2025-02-10", "2025-02-17", "2025-02-24"]
        assert [e.duration for e in eps] == [220, 224, 216, 223]
        assert {e.show for e in eps} == {"Development MLOps Podcast QA Corpus"}
        assert [e.media_url for e in eps] == [f"{base}/dev0{i}.mp3" for i in range(1, 5)]
        assert [e.id for e in eps] == ["rss-" + sha12(f"{feed_url}\ndevset-qa-dev0{i}") for i in range(1, 5)]
        assert all(e.extractor == "rss" and e.source == feed_url and not e.local for e in eps)
        assert eps[0].webpage_url == eps[0].media_url  # items have no <link>

        seen = []
        cache = tmp_path / "cache"
        path = sources.download(eps[0], cache, progress=lambda done, total: seen.append((done, total)))
    assert path == cache / f"{eps[0].id}.mp3"
    assert path.read_bytes() == (DEVSET / "dev01.mp3").read_bytes()
    assert seen and seen[-1][0] == path.stat().st_size
    assert sorted(p.name for p in cache.iterdir()) == [path.name, path.name + ".ok"]  # no temp leftovers
    assert sources.download(eps[0], cache) == path  # server gone: the complete file is reused


FEED_COUNTS = {
    "giantbomb-podcast.rss": (730, "Giant Bombcast", "Giant Bombcast 603: Call of Tuesday"),
    # 131 items, two of which share guid and enclosure (same media): kept once
    "taverncast-podcast.rss": (130, "Taverncast - Happy Hour in Your Head - Since 2005",
                               "Taverncast 62 - Temporal Anomaly"),
}


@pytest.fixture(scope="module")
def feeds_url():
    need(FEEDS)
    with serve(FEEDS) as base:
        yield base


@pytest.mark.parametrize("name", sorted(FEED_COUNTS))
def test_real_feeds(feeds_url, name):
    count, show, first = FEED_COUNTS[name]
    eps = sources.resolve(f"{feeds_url}/{name}")
    assert len(eps) == count
    assert len({e.id for e in eps}) == count
    assert eps[0].title == first and {e.show for e in eps} == {show}
    assert all(e.media_url.startswith("http") and e.published and len(e.published) == 10 for e in eps)
    assert sum(e.duration is not None for e in eps) > count * 0.9
    podcastparser = pytest.importorskip("podcastparser")  # independent oracle for the titles
    import io

    parsed = podcastparser.parse(f"{feeds_url}/{name}", io.BytesIO((FEEDS / name).read_bytes().lstrip()))
    want, guids = [], set()
    for p in parsed["episodes"]:
        if p["enclosures"] and (p["guid"] or p["enclosures"][0]["url"]) not in guids:
            guids.add(p["guid"] or p["enclosures"][0]["url"])
            want.append(p["title"])
    assert sorted(e.title for e in eps) == sorted(want)  # podcastparser sorts by date


def test_podcastparser_feeds(feeds_url):
    expected = json.loads((FEEDS / "podcastparser_episode_podcast_transcript.expected.json").read_text())
    eps = sources.resolve(f"{feeds_url}/podcastparser_episode_podcast_transcript.rss")
    want = [e for e in expected["episodes"] if e["enclosures"]]
    assert [e.title for e in eps] == [w["title"] for w in want]
    assert [e.media_url for e in eps] == [w["enclosures"][0]["url"] for w in want]
    assert eps[0].show == expected["title"]
    # chapters.rss has one item and no enclosure: nothing playable
    with pytest.raises(SourceError, match="no audio or video"):
        sources.resolve(f"{feeds_url}/podcastparser_chapters.rss")


def test_direct_url_and_download(server, media_dir, tmp_path):
    url = server + "/tone.mp3"
    [ep] = sources.resolve(url)
    assert (ep.id, ep.title, ep.extractor, ep.media_url) == ("url-" + sha12(url), "tone", "generic", url)
    path = sources.download(ep, tmp_path)
    assert path.name == ep.id + ".mp3"
    assert path.read_bytes() == (media_dir / "tone.mp3").read_bytes()


def test_local_path(media_dir, tmp_path):
    p = media_dir / "tone.mp3"
    [ep] = sources.resolve(str(p))
    assert ep == Episode(id="file-" + sha12(str(p)), title="Sine Test", source=str(p), media_url=str(p),
                         webpage_url="file://" + str(p), show="Test Show", duration=ep.duration,
                         extractor="local", local=True)
    assert 1.9 < ep.duration < 2.2
    assert sources.download(ep, tmp_path) == p
    [plain] = sources.resolve(str(media_dir / "plain tone.wav"))
    assert plain.title == "plain tone"
    with pytest.raises(SourceError, match="no such file"):
        sources.resolve(str(tmp_path / "missing.mp3"))
    with pytest.raises(SourceError, match="directory"):
        sources.resolve(str(tmp_path))
    gone = Episode(id="x", title="x", source="x", media_url=str(tmp_path / "gone.mp3"), local=True)
    with pytest.raises(SourceError, match="no such file"):
        sources.download(gone, tmp_path)


@pytest.mark.parametrize("path, reason", [
    ("/missing.mp3", "HTTP 404"),
    ("/500", "HTTP 500"),
    ("/loop", "redirect loop"),
    ("/to-file", "redirect to unsupported URL"),
    ("/page.html", "not a feed or media file"),
])
def test_resolve_errors(server, path, reason):
    with pytest.raises(SourceError) as err:
        sources.resolve(server + path)
    assert err.value.input == server + path
    assert reason in err.value.reason
    assert str(err.value) == f"{server}{path}: {err.value.reason}"


def test_connection_refused_and_timeout(server, monkeypatch):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(SourceError, match="connection refused"):
        sources.resolve(f"http://127.0.0.1:{port}/feed.xml")
    monkeypatch.setattr(sources, "TIMEOUT", 0.5)
    with pytest.raises(SourceError, match="timed out"):
        sources.resolve(server + "/hang")
    with pytest.raises(SourceError, match="unsupported URL scheme"):
        sources.resolve("gopher://example.com/x")


def _rss(items: str) -> str:
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{items}</channel></rss>'


def test_feed_enclosure_schemes_and_quirks(server, media_dir, caplog, monkeypatch):
    item = '<item><title>{t}</title><enclosure url="{u}" type="audio/mpeg"/></item>'
    (media_dir / "evil.xml").write_text(_rss(item.format(t="a", u="file:///etc/passwd")))
    with pytest.raises(SourceError, match="refused"):
        sources.resolve(server + "/evil.xml")
    (media_dir / "mixed.xml").write_text(_rss(item.format(t="bad", u="file:///etc/passwd")
                                              + item.format(t="good &amp; fine", u="tone.mp3")))
    with caplog.at_level(logging.WARNING, logger="talkindex"):
        [ep] = sources.resolve(server + "/mixed.xml")
    assert ep.title == "good & fine" and ep.media_url == server + "/tone.mp3"  # relative URL resolved
    assert any("file:///etc/passwd" in r.getMessage() for r in caplog.records)
    # Atom, HTML entities and bare ampersands, unbound prefixes, leading blank lines
    (media_dir / "atom").write_text(
        '\n\n<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A &nbsp;show</title>'
        '<entry><title>Q&A</title><id>urn:1</id><published>2024-05-06T10:00:00Z</published>'
        '<link rel="alternate" href="https://example.com/ep1"/><x:y>z</x:y>'
        '<link rel="enclosure" type="audio/ogg" href="https://example.com/ep1.ogg?a=1&b=2"/></entry></feed>')
    [ep] = sources.resolve(server + "/atom")
    assert (ep.title, ep.show, ep.published) == ("Q&A", "A show", "2024-05-06")
    assert (ep.webpage_url, ep.media_url) == ("https://example.com/ep1", "https://example.com/ep1.ogg?a=1&b=2")
    monkeypatch.setattr(sources, "MAX_FEED_BYTES", 100)
    with pytest.raises(SourceError, match="feed larger than"):
        sources.resolve(server + "/mixed.xml")


def _typed(ep_id: str, url: str) -> Episode:
    """An episode for a media URL typed as it is (errors name the input as typed)."""
    return Episode(id=ep_id, title="x", source=url, media_url=url, extractor="generic")


def test_partial_download_not_trusted(server, media_dir, tmp_path):
    bad = _typed("rss-partial", server + "/truncated.mp3")
    with pytest.raises(SourceError) as err:
        sources.download(bad, tmp_path)
    assert err.value.input == server + "/truncated.mp3" and "\n" not in err.value.reason
    assert "expected" in err.value.reason and not err.value.reason.startswith(("ERROR", "["))
    assert list(tmp_path.iterdir()) == []  # nothing left behind, so nothing can be reused
    # leftovers of an interrupted run are ignored: the file is downloaded again, completely
    good = _typed("rss-good", server + "/tone.mp3")
    (tmp_path / "rss-good.mp3.part").write_bytes(b"junk")
    path = sources.download(good, tmp_path)
    assert path.read_bytes() == (media_dir / "tone.mp3").read_bytes()
    with pytest.raises(SourceError, match="larger than"):
        sources.download(_typed("big", good.media_url), tmp_path, max_bytes=1000)
    with pytest.raises(SourceError, match="larger than"):
        sources.download(_typed("big", server + "/nolength.mp3"), tmp_path, max_bytes=1000)
    assert not list(tmp_path.glob("big*")) and not list(tmp_path.glob(".dl-*"))
    with pytest.raises(SourceError, match="HTTP 404"):
        sources.download(_typed("gone", server + "/gone.mp3"), tmp_path)
    # an item of a feed is named by the feed as typed, then its title
    item = Episode(id="rss-item", title="Item \x1b[31mone", source=server + "/feed.xml",
                   media_url=server + "/gone.mp3", extractor="rss", trusted_private=True, origin_host="127.0.0.1")
    with pytest.raises(SourceError) as err:
        sources.download(item, tmp_path)
    assert str(err.value) == f"{server}/feed.xml: Item \\x1b[31mone: HTTP 404"


def test_short_messages_and_ids():
    msg = ("\x1b[0;31mERROR:\x1b[0m [generic] Unable to download webpage: HTTP Error 404: Not Found"
           " (caused by <HTTPError 404: Not Found>)\nmore")
    assert ytdl.short(Exception(msg)) == "Unable to download webpage: HTTP Error 404: Not Found"
    assert ytdl.short(Exception("ERROR: \r[download] Got error: short")) == "Got error: short"
    assert ytdl.safe_id("youtube-a/b..c d") == "youtube-a_b_c_d"
    assert len(ytdl.safe_id("x" * 300)) <= 100
