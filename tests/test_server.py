"""`talkindex serve` for real: the CLI in a subprocess on a free loopback port, over real indexes.

The API must equal the CLI's JSON; hostile titles are escaped; no path (percent-encoded or not)
reaches a file that is not an indexed episode's media; Range requests work; errors are JSON.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES, ask_json, run_cli

HOSTILE = "<script>alert(1)</script>"


@contextmanager
def serve(home: Path, *args: str, timeout: float = 120):
    """Run `talkindex serve --port 0` on `home`; yields (base_url, process, startup stderr lines)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}
    env.pop("TALKINDEX_HOME", None)
    cmd = [sys.executable, "-m", "talkindex", "serve", "--home", str(home), "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if "serving" in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not found.wait(timeout):
            raise AssertionError(f"server did not start: {''.join(lines)}")
        url = re.search(r"at (http://\S+?)/? ", next(ln for ln in lines if "serving" in ln)).group(1)
        yield url.rstrip("/"), proc, lines
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def request(base: str, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """GET `path` exactly as written (no client-side normalisation of .. or %2e)."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    con = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        con.request("GET", path, headers=headers or {})
        r = con.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        con.close()


def get_json(base: str, path: str):
    status, _, body = request(base, path)
    assert status == 200, (path, status, body[:300])
    return json.loads(body)


@pytest.fixture(scope="module")
def server(samples_home):
    with serve(samples_home) as (base, proc, lines):
        yield base


@pytest.fixture(scope="module")
def episodes(samples_home) -> list[dict]:
    return json.loads(run_cli("list", "--json", home=samples_home, check=True).stdout)


QUESTIONS = [
    ("what is feature store drift", []),
    ("how does a shadow deployment work", ["-k", "3"]),
    ("why track experiments", ["-k", "2", "--mode", "keyword"]),
    ("canary release", ["--mode", "dense", "--show", "samples"]),
]


@pytest.mark.parametrize("question,extra", QUESTIONS)
def test_api_ask_equals_cli(server, samples_home, question, extra):
    from urllib.parse import urlencode

    params = {"q": question}
    it = iter(extra)
    for opt in it:
        params[opt.lstrip("-")] = next(it)
    api = get_json(server, "/api/ask?" + urlencode(params))
    assert api, question
    assert api == ask_json(samples_home, question, *extra)


def test_api_ask_episode_filter_equals_cli(server, samples_home, episodes):
    eid = episodes[0]["id"]
    api = get_json(server, f"/api/ask?q=what+is+this+talk+about&k=2&episode={eid}")
    assert api == ask_json(samples_home, "what is this talk about", "-k", "2", "--episode", eid)
    assert {h["episode_id"] for h in api} == {eid}


def test_api_episodes_and_transcripts_equal_cli(server, samples_home, episodes):
    assert get_json(server, "/api/episodes") == episodes
    eid = episodes[0]["id"]
    for fmt in ("txt", "srt", "vtt", "json"):
        status, headers, body = request(server, f"/api/episodes/{eid}/transcript?format={fmt}")
        assert status == 200, body
        cli = run_cli("transcript", eid, "--format", fmt, home=samples_home, check=True).stdout
        assert body.decode() == cli, fmt
    status, headers, _ = request(server, f"/api/episodes/{eid}/transcript?format=srt&download=1")
    assert "attachment" in headers["content-disposition"]


@pytest.mark.parametrize("path,status", [
    ("/api/ask?q=", 400),
    ("/api/ask?q=%20%20", 400),
    ("/api/ask", 400),
    ("/api/ask?q=" + "x" * 501, 400),
    ("/api/ask?q=drift&k=0", 400),
    ("/api/ask?q=drift&k=101", 400),  # requests.MAX_K, the same for every face
    ("/api/ask?q=drift&k=abc", 400),
    ("/api/ask?q=drift&mode=fuzzy", 400),
    ("/api/ask?q=drift&since=yesterday", 400),
    ("/api/ask?q=drift&episode=no-such-episode", 404),
    ("/api/ask?q=drift&show=no-such-show", 404),
    ("/api/episodes/no-such-episode/transcript", 404),
    ("/api/episodes/x/transcript?format=docx", 400),
    ("/api/nothing-here", 404),
])
def test_api_errors_are_json_with_status(server, path, status):
    got, headers, body = request(server, path)
    assert got == status, body
    assert headers["content-type"].startswith("application/json")
    err = json.loads(body)
    assert err["status"] == status and err["error"] and "Traceback" not in err["error"]


def test_pages_render_and_have_csp(server, episodes):
    eid = episodes[0]["id"]
    for path in ("/", "/?q=feature+drift", "/episodes", f"/episode/{eid}", f"/episode/{eid}?t=30", "/docs"):
        status, headers, body = request(server, path)
        assert status == 200, (path, body[:300])
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        html = body.decode()
        # every script is a static file; no inline handlers
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert not re.search(r"\son[a-z]+\s*=", html), path
        assert headers["x-content-type-options"] == "nosniff"
    status, _, body = request(server, "/?q=feature+drift")
    html = body.decode()
    assert 'class="play"' in html and "<mark>" in html.lower()


def test_docs_are_served_locally(server):
    status, _, body = request(server, "/docs")
    srcs = re.findall(r'(?:src|href)="([^"]+)"', body.decode())
    assert srcs and all(s.startswith("/") for s in srcs), srcs  # nothing from a CDN
    for s in srcs:
        assert request(server, s)[0] == 200, s
    spec = get_json(server, "/openapi.json")
    assert {"/api/ask", "/api/episodes", "/api/episodes/{episode_id}/transcript"} <= set(spec["paths"])
    assert not any(m != "get" for p in spec["paths"].values() for m in p)  # read-only API


TRAVERSALS = [
    "/static/../server.py", "/static/..%2fserver.py", "/static/%2e%2e/server.py", "/static/%2e%2e%2fserver.py",
    "/static/..%2F..%2F..%2Fetc%2Fpasswd", "/static/%252e%252e/server.py", "/static/swagger/..%2F__init__.py",
    "/media/..%2F..%2Fetc%2Fpasswd", "/media/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/media/../../etc/passwd",
    "/episode/..%2F..%2Fetc%2Fpasswd", "/api/episodes/..%2F..%2Fetc%2Fpasswd/transcript",
    "/media/%2Fetc%2Fpasswd", "/static//etc/passwd", "/static/%2Fetc%2Fpasswd",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_path_traversal(server, path):
    status, _, body = request(server, path)
    assert status in (400, 404), (path, status)
    assert b"root:" not in body and b"import " not in body and b"Traceback" not in body


def test_media_range_requests(server, samples_home, episodes):
    ep = episodes[0]
    src = Path(ep["media_url"])
    data = src.read_bytes()
    status, headers, body = request(server, f"/media/{ep['id']}", {"Range": "bytes=100-199"})
    assert status == 206
    assert headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert headers["accept-ranges"] == "bytes"
    assert body == data[100:200]
    status, headers, body = request(server, f"/media/{ep['id']}", {"Range": f"bytes={len(data) - 10}-"})
    assert status == 206 and body == data[-10:]
    status, headers, _ = request(server, f"/media/{ep['id']}", {"Range": f"bytes={len(data) + 10}-"})
    assert status == 416
    status, headers, body = request(server, f"/media/{ep['id']}")
    assert status == 200 and body == data and headers["content-type"].startswith("audio/")
    assert request(server, "/media/no-such-episode")[0] == 404


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) listening on `port`."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                out.append(local.rsplit(":", 1)[0])
    return out


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs /proc/net/tcp (Linux)")
def test_binds_loopback_only(samples_home):
    with serve(samples_home) as (base, proc, lines):
        port = int(base.rsplit(":", 1)[1])
        assert base.startswith("http://127.0.0.1:")
        assert _listening(port) == ["0100007F"]  # 127.0.0.1, not 0.0.0.0
        assert not any("warning" in ln for ln in lines)
    with serve(samples_home, "--host", "127.0.0.2") as (base, proc, lines):
        assert any("warning" in ln and "127.0.0.2" in ln for ln in lines)
        assert _listening(int(base.rsplit(":", 1)[1])) == ["0200007F"]


def test_startup_errors_are_one_line(samples_home, tmp_path):
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        p = run_cli("serve", "--port", str(port), home=samples_home, timeout=120)
    finally:
        busy.close()
    assert p.returncode == 1 and p.stderr.strip().count("\n") == 0, p.stderr
    assert p.stderr.startswith("talkindex: error:") and "in use" in p.stderr
    for bad in (tmp_path / "missing", Path(__file__)):
        for cmd in ("serve", "mcp"):
            p = run_cli(cmd, home=bad, timeout=120, stdin=subprocess.DEVNULL)
            assert p.returncode == 2, (cmd, bad, p.stderr)
            assert p.stderr.startswith("talkindex: error:") and "Traceback" not in p.stderr
            assert p.stderr.strip().count("\n") == 0, p.stderr


# -- a hostile title, ingested while the server is already answering ----------------------------------
@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A fresh home served from the start; a sample copy titled <script>… is ingested into it meanwhile."""
    if not shutil.which("ffmpeg"):
        pytest.skip("needs ffmpeg to write a hostile title tag")
    d = tmp_path_factory.mktemp("hostile")
    media = d / "hostile.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(SAMPLES / "feature-stores.mp3"), "-t", "30",
                    "-metadata", f"title={HOSTILE}", "-metadata", "artist=<img src=x onerror=alert(2)>",
                    "-c", "copy", str(media)], check=True)
    home = d / "home"
    home.mkdir()
    with serve(home) as (base, proc, lines):
        seen: list[tuple[str, int]] = []
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                for path in ("/api/episodes", "/", "/episodes"):
                    seen.append((path, request(base, path)[0]))
                time.sleep(0.2)

        t = threading.Thread(target=poll, daemon=True)
        t.start()
        urls = d / "urls.txt"
        urls.write_text(f"{media}\n")
        p = run_cli("ingest", str(urls), home=home)
        stop.set()
        t.join(30)
        assert p.returncode == 0, p.stderr
        yield {"base": base, "home": home, "seen": seen, "media": media}


def test_serves_while_ingest_runs(hostile):
    seen = hostile["seen"]
    assert len(seen) >= 6
    assert all(status == 200 for _, status in seen), [s for s in seen if s[1] != 200][:5]
    eps = get_json(hostile["base"], "/api/episodes")  # the new episode appears without a restart
    assert [e["title"] for e in eps] == [HOSTILE]
    hits = get_json(hostile["base"], "/api/ask?q=feature+store")
    assert hits and hits[0]["title"] == HOSTILE


def test_hostile_title_is_escaped(hostile):
    base = hostile["base"]
    eid = get_json(base, "/api/episodes")[0]["id"]
    for path in ("/", "/?q=feature+store", "/episodes", f"/episode/{eid}", f"/episode/{eid}?t=3",
                 "/?q=%3Cscript%3Ealert(3)%3C%2Fscript%3E", "/?q=feature&show=%3Cscript%3E"):
        status, headers, body = request(base, path)
        html = body.decode()
        assert status in (200, 404), (path, status)
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
    html = request(base, "/?q=feature+store")[2].decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # local media of an indexed episode is served; the file next to it is not reachable by any path
    assert request(base, f"/media/{eid}", {"Range": "bytes=0-9"})[0] == 206


def test_chapter_and_speaker_render_escaped_when_known():
    """Hits and transcript lines show chapter and speaker when the index has them (escaped)."""
    from talkindex.records import Chapter, Hit, Segment
    from talkindex.serve.web import highlight, templates

    hit = Hit(rank=1, score=0.5, episode_id="e1", title="T", show="S", start=61.0, end=70.0, text="drift text",
              link="javascript:alert(1)", source_url="")
    hit.chapter, hit.speaker = "<b>Drift</b> & more", "Ana <i>"
    html = templates().get_template("index.html").render(
        form={"q": "drift", "k": 5, "mode": "hybrid", "show": "", "since": "", "episode": ""}, modes=("hybrid",),
        results=[{"hit": hit, "text": highlight(hit.text, "drift"), "player": {"kind": "audio", "src": "/media/e1"}}],
        error="", episodes=[{"id": "e1", "title": "T"}], shows=["S"], searched=True)
    assert "&lt;b&gt;Drift&lt;/b&gt; &amp; more" in html and "Ana &lt;i&gt;" in html
    assert "<mark>drift</mark>" in html and "javascript:" not in html
    seg = Segment(start=1.0, end=2.0, text="<script>x</script> hello")
    seg.speaker = "Bob"
    html = templates().get_template("episode.html").render(
        ep={"id": "e1", "title": "T", "status": "indexed"}, player={"kind": "none", "src": ""}, t="",
        lines=[{"i": 0, "seg": seg, "heading": "Intro <3"}], current=-1, transcript=None, formats=("txt",))
    assert "<script>x" not in html
    html = templates().get_template("episode.html").render(
        ep={"id": "e1", "title": "T", "status": "indexed"}, player={"kind": "none", "src": ""}, t="",
        lines=[{"i": 0, "seg": seg, "heading": "Intro <3"}], current=0,
        transcript=type("T", (), {"source": "captions", "model": ""})(), formats=("txt",),
        outline=[Chapter(0.0, "Intro <3", source="detected")])
    assert 'data-start="0.0"><span class="ts">00:00:00</span> Intro &lt;3</a>' in html  # the outline
    assert "Intro &lt;3" in html and "Bob:" in html and "&lt;script&gt;x" in html and 'class="sentence current"' in html


def test_player_choice(tmp_path):
    """YouTube plays in its iframe player; cached/local files from /media; other remote media from their URL."""
    from talkindex.serve.web import player

    local = tmp_path / "talk.mp4"
    local.write_bytes(b"x")

    class Idx:  # stands in for Index: only media_path is consulted
        def media_path(self, eid):
            return local if eid == "has-file" else None

    yt = player(Idx(), {"id": "yt", "webpage_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=3", "media_url": ""})
    assert yt == {"kind": "youtube", "src": "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"}
    short = player(Idx(), {"id": "s", "webpage_url": "https://youtu.be/dQw4w9WgXcQ", "media_url": ""})
    assert short["kind"] == "youtube"
    bad = player(Idx(), {"id": "b", "webpage_url": "https://youtube.com/watch?v=%22onload%3D", "media_url": ""})
    assert bad["kind"] == "none"
    assert player(Idx(), {"id": "has-file", "webpage_url": "", "media_url": "https://x.test/a.mp4"}) == {
        "kind": "video", "src": "/media/has-file"}
    assert player(Idx(), {"id": "r", "webpage_url": "", "media_url": "https://x.test/ep.mp3?x=1"}) == {
        "kind": "audio", "src": "https://x.test/ep.mp3?x=1"}
    assert player(Idx(), {"id": "f", "webpage_url": "", "media_url": "file:///etc/passwd"})["kind"] == "none"
