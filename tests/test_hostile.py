"""Hostile and broken inputs, end to end through `talkindex ingest` (one batch, one urls.txt).

Every bad input must be named on exactly one `talkindex: error:` line with a reason, the batch must go
on (the good file in the same urls.txt is indexed), the exit status must be 1, and the index that was
there before (the bundled samples) must stay intact. A disk-full write is simulated with
tests/faults.py (ENOSPC on the first transcript write). Silent audio is not an error: it becomes an
indexed episode with zero chunks and the note "no speech detected".
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from talkindex.home import Layout
from talkindex.index.store import Store
from talkindex.ingest import doctor

try:
    from conftest import ROOT, run_cli
    from test_reliability import copy_home, snapshot
except ImportError:  # tests/ imported as a package
    from tests.conftest import ROOT, run_cli
    from tests.test_reliability import copy_home, snapshot

FAULTS = Path(__file__).with_name("faults.py")
WEIRD_TITLES = {
    "g-huge": "Enormous " + "title " * 20_000,
    "g-sql": "Robert'); DROP TABLE episodes;-- \" OR 1=1 --",
    "g-rtl": "\u202eevil.mp3\u202c مرحبا بالعالم שלום",
    "../../etc/passwd": "🎙️ Emoji 🔥 episode ✨ 👩🏽‍💻",
    "/etc/passwd\x00": "Guid with a NUL and ; rm -rf / $(reboot) `id`",
}


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def speech(path: Path, text: str) -> Path:
    wav = path.with_suffix(".wav")
    subprocess.run(["espeak-ng", "-s", "170", "-w", str(wav), text], check=True)
    if path.suffix != ".wav":
        ffmpeg("-i", str(wav), str(path))
    return path


def _rss(items: str, title: str = "Hostile show") -> str:
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title>{items}</channel></rss>'


def _xml(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\x00", "")


class _Hostile(SimpleHTTPRequestHandler):
    release = threading.Event()

    def log_message(self, format, *args):
        pass

    def handle(self):
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (size/duration limits)
            pass

    def _redirect(self, to: str) -> None:
        self.send_response(302)
        self.send_header("Location", to)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _cut(self, name: str, fraction: float) -> None:
        body = (Path(self.directory) / name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: int(len(body) * fraction)])
        self.wfile.flush()
        self.close_connection = True

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/500":
            self.send_error(500)
        elif path == "/loop":
            self._redirect("/loop")
        elif path == "/to-file":
            self._redirect("file:///etc/passwd")
        elif path == "/hang":
            self.release.wait(8)
        elif path == "/cut.mp3":  # the server closes mid-download (after the first 64 KB sniffed)
            self._cut("long.mp3", 0.5)
        elif path == "/cut-small.mp3":  # ... and inside the first bytes
            self._cut("speech.mp3", 0.3)
        else:
            super().do_GET()

    def guess_type(self, path):
        return "audio/mpeg" if str(path).endswith(".mp3") else super().guess_type(path)


@pytest.fixture(scope="module")
def hostile(samples_home, tmp_path_factory):
    """Runs the hostile batch once; returns what the tests below inspect."""
    for tool in ("espeak-ng", "ffmpeg"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    tmp = tmp_path_factory.mktemp("hostile")
    local, served = tmp / "local", tmp / "served"
    local.mkdir()
    served.mkdir()
    # local files
    speech(local / "diskfull.wav", "This file fills the disk when its transcript is written.")
    speech(local / "good.wav", "Gradient checkpointing trades compute for memory during training.")
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "6", str(local / "silent.wav"))
    ffmpeg("-f", "lavfi", "-i", "aevalsrc=0.3*sin(2*PI*220*t)*sin(2*PI*2*t)+0.2*sin(2*PI*277*t)"
           "+0.2*sin(2*PI*330*t)+0.15*(random(0)-0.5):s=16000:d=6", str(local / "music-noise.wav"))
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=20", str(local / "long.wav"))
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=5", "-c:a", "aac", str(local / "whole.m4a"))
    data = (local / "whole.m4a").read_bytes()
    (local / "truncated.m4a").write_bytes(data[: len(data) * 2 // 5])
    (local / "whole.m4a").unlink()
    (local / "empty.mp3").write_bytes(b"")
    (local / "random.mp3").write_bytes(random.Random(7).randbytes(40_000))
    (local / "text.mp3").write_text("This is a text file saved with an .mp3 name.\n" * 200)
    (local / "a-directory").mkdir()
    # served files
    speech(served / "speech.mp3", "Short episode about vector databases.")
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=20", "-b:a", "96k", str(served / "long.mp3"))
    (served / "empty.mp3").write_bytes(b"")
    (served / "text.mp3").write_text("not audio at all\n" * 500)
    (served / "page.html").write_text("<!doctype html><html><body><p>No media here.</p></body></html>")
    (served / "malformed.xml").write_text('<?xml version="1.0"?><rss version="2.0"><channel><title>x</tit'
                                          "<<item>>&&</rss")
    (served / "no-items.xml").write_text(_rss(""))
    (served / "no-enclosures.xml").write_text(_rss("<item><title>Words only</title><link>https://e.x/1</link>"
                                                   "</item><item><title>Also none</title></item>"))
    (served / "file-enclosure.xml").write_text(_rss(
        '<item><title>Steal</title><enclosure url="file:///etc/passwd" type="audio/mpeg"/></item>'))
    (served / "dead-enclosure.xml").write_text(_rss(
        '<item><title>Gone</title><guid>gone-1</guid><enclosure url="/gone.mp3" type="audio/mpeg"/></item>'))
    items = "".join(f"<item><title>{_xml(t)}</title><guid>{_xml(g)}</guid>"
                    f'<enclosure url="speech.mp3?{i}" type="audio/mpeg"/></item>'
                    for i, (g, t) in enumerate(WEIRD_TITLES.items()))
    items += '<item><title>Sneaky</title><enclosure url="file:///etc/passwd" type="audio/mpeg"/></item>'
    (served / "weird.xml").write_text(_rss(items, "Show'); DROP TABLE chunks;--"))

    srv = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a, **kw: _Hostile(*a, directory=str(served), **kw))
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed = f"http://127.0.0.1:{s.getsockname()[1]}/episode.mp3"
    s.close()

    # (urls.txt line, needle that names it on its error line, expected reason or None)
    cases = [
        (str(local / "diskfull.wav"), str(local / "diskfull.wav"), "disk full"),
        (f"{base}/missing.mp3", f"{base}/missing.mp3", "HTTP 404"),
        (closed, closed, "connection refused"),
        (f"{base}/500", f"{base}/500", "HTTP 500"),
        (f"{base}/hang", f"{base}/hang", "timed out"),
        (f"{base}/cut.mp3", f"{base}/cut.mp3", None),
        (f"{base}/cut-small.mp3", f"{base}/cut-small.mp3", None),
        (f"{base}/loop", f"{base}/loop", "redirect loop"),
        (f"{base}/to-file", f"{base}/to-file", "redirect to unsupported URL"),
        (f"{base}/page.html", f"{base}/page.html", "not a feed or media file"),
        (f"{base}/empty.mp3", f"{base}/empty.mp3", None),
        (f"{base}/text.mp3", f"{base}/text.mp3", None),
        (f"{base}/long.mp3", f"{base}/long.mp3", "--max-duration"),
        (f"{base}/malformed.xml", f"{base}/malformed.xml", "cannot parse feed"),
        (f"{base}/no-items.xml", f"{base}/no-items.xml", "feed has no items"),
        (f"{base}/no-enclosures.xml", f"{base}/no-enclosures.xml", "no audio or video items"),
        (f"{base}/file-enclosure.xml", f"{base}/file-enclosure.xml", "refused"),
        (f"{base}/dead-enclosure.xml", f"{base}/dead-enclosure.xml: Gone:", "404"),  # the feed as typed, the item
        (str(local / "empty.mp3"), str(local / "empty.mp3"), None),
        (str(local / "truncated.m4a"), str(local / "truncated.m4a"), None),
        (str(local / "random.mp3"), str(local / "random.mp3"), None),
        (str(local / "text.mp3"), str(local / "text.mp3"), None),
        (str(local / "long.wav"), str(local / "long.wav"), "--max-duration"),
        (str(local / "no-such-file.mp3"), str(local / "no-such-file.mp3"), "no such file"),
        (str(local / "a-directory"), str(local / "a-directory"), "is a directory"),
        ("gopher://127.0.0.1/episode", "gopher://127.0.0.1/episode", "unsupported URL scheme"),
        ("ftp://127.0.0.1/episode.mp3", "ftp://127.0.0.1/episode.mp3", "unsupported URL scheme"),
        ("javascript:alert(1)", "javascript:alert(1)", "unsupported URL scheme"),
        ("data:audio/mpeg;base64,SUQzBAAAAAAA", "data:audio/mpeg", "unsupported URL scheme"),
        ("file://evil.example/etc/passwd", "file://evil.example/etc/passwd", "another host"),
        ("http:///no-host.mp3", "http:///no-host.mp3", "no host"),
        ("http://127.0.0.1/\u202eevil\u0007.mp3", "control characters", "control characters"),
        (b"/tmp/caf\xe9-latin1.mp3", "not valid UTF-8", "not valid UTF-8"),
        ("https://example.com/" + "a" * 5000, "line too long", "line too long"),
    ]
    good = [str(local / "good.wav"), str(local / "silent.wav"), str(local / "music-noise.wav"),
            f"{base}/weird.xml"]
    lines: list[bytes] = [b"# hostile batch"]
    for item in [c[0] for c in cases[:1]] + good + [c[0] for c in cases[1:]]:
        lines.append(item if isinstance(item, bytes) else item.encode())
    urls = tmp / "urls.txt"
    urls.write_bytes(b"\n".join(lines) + b"\n")
    # line-level errors are named by line number
    for i, c in enumerate(cases):
        line_no = lines.index(c[0] if isinstance(c[0], bytes) else c[0].encode()) + 1
        if c[1] in ("control characters", "not valid UTF-8", "line too long"):
            cases[i] = (c[0], f"line {line_no}:", c[2])

    home = copy_home(samples_home, tmp / "home")
    before = snapshot(home)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1", "TALKINDEX_NET_TIMEOUT": "2",
           "TALKINDEX_FAULT": "talkindex.ingest.pipeline:atomic_write_text:enospc:1"}
    env.pop("TALKINDEX_HOME", None)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, str(FAULTS), "ingest", str(urls), "--home", str(home),
                        "--max-duration", "12", "--json"], capture_output=True, text=True, env=env, timeout=600)
    elapsed = time.monotonic() - t0
    _Hostile.release.set()
    srv.shutdown()
    srv.server_close()
    return dict(p=p, cases=cases, home=home, before=before, base=base, elapsed=elapsed, local=local)


def _errors(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("talkindex: error:")]


def test_each_bad_input_named_once_and_batch_continues(hostile):
    p, cases = hostile["p"], hostile["cases"]
    errors = _errors(p.stderr)
    problems = []
    for _line, needle, reason in cases:
        named = [e for e in errors if needle in e]
        if len(named) != 1:
            problems.append(f"{needle!r} named on {len(named)} error lines")
        elif reason and reason not in named[0]:
            problems.append(f"{needle!r}: expected reason {reason!r} in {named[0]!r}")
        elif len(re.findall(r"[A-Za-z0-9]", named[0].replace(needle, "").removeprefix("talkindex: error:"))) < 3:
            problems.append(f"{needle!r}: no reason in {named[0]!r}")
    assert not problems, "\n".join(problems) + "\n--- stderr:\n" + p.stderr[-6000:]
    assert len(errors) == len(cases), "\n".join(errors)
    assert all(len(e) < 700 for e in errors)  # one line each, clipped
    assert p.returncode == 1
    assert re.search(rf", {len(cases)} failed$", p.stderr.strip().splitlines()[-1]), p.stderr[-300:]
    assert "Traceback" not in p.stderr
    print(f"\nhostile batch: {len(cases)} bad inputs + 8 awkward good ones in {hostile['elapsed']:.0f} s")


def test_good_inputs_indexed_and_prior_index_intact(hostile):
    home, before = hostile["home"], hostile["before"]
    after = snapshot(home)  # asserts FAISS == DuckDB
    for eid, ep in before.items():
        assert after[eid] == ep
    rows = {r["title"]: r for r in json.loads(run_cli("list", "--json", home=home, check=True).stdout)}
    assert rows["good"]["status"] == "indexed" and rows["good"]["chunks"] >= 1
    assert rows["music-noise"]["status"] == "indexed"  # noise is not an error; it may yield 0 chunks
    hits = json.loads(run_cli("ask", "gradient checkpointing memory", "--json", home=home, check=True).stdout)
    assert any(h["title"] == "good" for h in hits)
    assert doctor.check(home) == []


def test_silent_audio_is_an_episode_with_zero_chunks(hostile):
    rows = {r["title"]: r for r in json.loads(run_cli("list", "--json", home=hostile["home"], check=True).stdout)}
    silent = rows["silent"]
    assert (silent["status"], silent["chunks"], silent["note"]) == ("indexed", 0, "no speech detected")
    t = run_cli("transcript", silent["id"], "-f", "json", home=hostile["home"], check=True)
    assert json.loads(t.stdout)["segments"] == []


def test_hostile_metadata_stored_verbatim_never_a_path(hostile):
    home = hostile["home"]
    rows = json.loads(run_cli("list", "--json", home=home, check=True).stdout)
    weird = {r["title"]: r for r in rows if r["show"] == "Show'); DROP TABLE chunks;--"}
    expected = {t.replace("\x00", "").strip() for t in WEIRD_TITLES.values()}  # feeds strip whitespace
    assert set(weird) == expected, set(weird) ^ expected
    assert all(r["status"] == "indexed" and r["chunks"] >= 1 for r in weird.values())
    assert not any("Sneaky" == r["title"] for r in rows)  # the file:// enclosure was refused
    assert "file:///etc/passwd" in hostile["p"].stderr  # … and named in a warning
    # ids (and so artifact paths) never come from remote metadata
    for d in (home / "episodes").iterdir():
        assert re.fullmatch(r"[A-Za-z0-9_-]+", d.name), d
    assert {p.name for p in home.iterdir()} <= {"talkindex.duckdb", "talkindex.duckdb.wal", "vectors", "episodes",
                                                "media", "keywords", "config.json", "ingest.lock", "catalog.json"}
    for p in (home / "media").iterdir():
        assert re.fullmatch(r"[A-Za-z0-9_-]+\.[a-z0-9]+(\.ok)?", p.name), p  # media and its verification record
    with Store(Layout(home)).connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM chunks").fetchone()[0] > 0
    hits = json.loads(run_cli("ask", "'); DROP TABLE chunks;--", "--json", home=home).stdout or "[]")
    assert isinstance(hits, list)
    assert snapshot(home)


def test_disk_full_episode_retried_on_rerun(hostile):
    """The ENOSPC episode was marked failed; with space again, a rerun indexes it and keeps the rest."""
    home = hostile["home"]
    urls = hostile["local"] / "retry.txt"
    urls.write_text(f"{hostile['local'] / 'diskfull.wav'}\n{hostile['local'] / 'good.wav'}\n")
    before = snapshot(home)
    p = run_cli("ingest", str(urls), home=home, timeout=300)
    assert p.returncode == 0, p.stderr
    after = snapshot(home)
    rows = {r["title"]: r for r in json.loads(run_cli("list", "--json", home=home, check=True).stdout)}
    assert rows["diskfull"]["status"] == "indexed" and rows["diskfull"]["chunks"] >= 1
    assert {e: v for e, v in after.items() if e != rows["diskfull"]["id"]} == \
           {e: v for e, v in before.items() if e != rows["diskfull"]["id"]}
