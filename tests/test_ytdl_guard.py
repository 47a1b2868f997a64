"""yt-dlp's own HTTP (page, manifest, media, every redirect) under net's address rule, through the real CLI.

Runs inside a network namespace this test creates (as tests/test_net.py: `unshare -rn`, or `unshare -n` as
root): lo is up and also carries 10.77.0.1, servers listen on two loopback ports and on 10.77.0.1, and no
packet can leave. Each case is one `talkindex ingest`; its error line must name the input as typed.
`--max-duration 1` against a 3 s tone shows that the media did arrive, without loading a Whisper model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from test_net import _unshare_prefix

ROOT = Path(__file__).resolve().parents[1]
TEN = "10.77.0.1"
ARRIVED = "longer than --max-duration (3 s > 1 s)"


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> Path:
    from conftest import tone_mp3

    return tone_mp3(tmp_path_factory.mktemp("netns-ytdl"), 3)


def test_ytdlp_http_is_under_the_address_rule(tone, tmp_path):
    prefix = _unshare_prefix()
    if prefix is None:
        pytest.skip("cannot create a network namespace here (unshare -rn / unshare -n not permitted)")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NETNS_TONE": str(tone), "NETNS_TMP": str(tmp_path)}
    env.pop("TALKINDEX_ALLOW_PRIVATE_URLS", None)
    p = subprocess.run([*prefix, sys.executable, __file__], capture_output=True, text=True, env=env, timeout=400)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    by = {r["case"]: r for r in (json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{"))}
    hits = by.pop("hits")["count"]
    print("\n" + "\n".join(f"{c}: {r['lines']}" for c, r in by.items()))
    refused = ("refused to connect to 10.77.0.1: a private address, named by a document from loopback "
               "address 127.0.0.1 (--allow-private-urls allows it)")
    for case in ("lo page -> media on another loopback port", "lo page -> media redirected to 10.77.0.1, allowed",
                 "10.77.0.1 page -> media on 10.77.0.1"):
        assert ARRIVED in by[case]["stderr"] and "refused" not in by[case]["stderr"], (case, by[case])
    for case in ("lo page -> media redirected to 10.77.0.1", "lo page, served to yt-dlp, redirects to 10.77.0.1",
                 "lo page -> HLS whose segments are on 10.77.0.1"):
        r = by[case]
        assert r["lines"] == [f"talkindex: error: {r['input']}: {refused}"], (case, r)
    r = by["10.77.0.1 page -> media on loopback"]
    assert r["lines"] == [f"talkindex: error: {r['input']}: refused to connect to 127.0.0.1: a loopback address, "
                          "named by a document from private address 10.77.0.1 (--allow-private-urls allows it)"], r
    assert all("Traceback" not in r["stderr"] for r in by.values())
    assert hits == {"/secret": 0}, hits  # no refused URL was ever requested, on any server


# ---------------------------------------------------------------------------------------------
# inside the namespace

HITS: Counter = Counter()  # path → requests, all servers
SEEN: Counter = Counter()  # path with its query → requests (/twice.html answers its second one differently)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def do_GET(self):
        parts = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        HITS[parts.path] += 1
        n = SEEN[self.path]
        SEEN[self.path] += 1
        if parts.path == "/redirect" or (parts.path == "/twice.html" and n >= 1):
            self.send_response(302)
            self.send_header("Location", q["to"])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if parts.path in ("/page.html", "/twice.html"):
            src = q["src"].replace("&", "&amp;").replace('"', "&quot;")
            body = (f'<!doctype html><html><head><title>Page</title></head><body><audio controls src="{src}">'
                    "</audio></body></html>").encode()
            ctype = "text/html"
        elif parts.path == "/list.m3u8":
            body = (f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXTINF:3.0,\n{q['seg']}\n"
                    "#EXT-X-ENDLIST\n").encode()
            ctype = "application/vnd.apple.mpegurl"
        elif parts.path == "/ep.mp3":
            body, ctype = Path(os.environ["NETNS_TONE"]).read_bytes(), "audio/mpeg"
        else:
            body, ctype = b"secret", "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _netns_main() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", f"{TEN}/32", "dev", "lo"], check=True)
    base = {}
    for name, addr in (("lo", "127.0.0.1"), ("lo2", "127.0.0.1"), ("ten", TEN)):
        srv = ThreadingHTTPServer((addr, 0), _Handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        base[name] = f"http://{addr}:{srv.server_address[1]}"
    lo, lo2, ten = base["lo"], base["lo2"], base["ten"]
    tmp = Path(os.environ["NETNS_TMP"])
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300", "TALKINDEX_NET_TIMEOUT": "5",
           "TALKINDEX_SLEEP_REQUESTS_S": "0", "TALKINDEX_BACKOFF_S": "0.1"}
    env.pop("TALKINDEX_HOME", None)

    def q(url: str) -> str:
        return quote(url, safe="")

    def case(name: str, url: str, *extra: str) -> None:
        home = tmp / f"home-{len(list(tmp.iterdir()))}"
        p = subprocess.run([sys.executable, "-m", "talkindex", "ingest", url, "--max-duration", "1", *extra,
                            "--home", str(home)], capture_output=True, text=True, env=env, timeout=120)
        lines = [ln for ln in p.stderr.splitlines() if ln.startswith("talkindex: error:")]
        print(json.dumps({"case": name, "input": url, "lines": lines, "stderr": p.stderr[-2000:]}), flush=True)

    case("lo page -> media on another loopback port", f"{lo}/page.html?src={q(lo2 + '/ep.mp3')}")
    redirected = f"{lo}/page.html?src={q(lo + '/redirect?to=' + q(ten + '/secret'))}"
    case("lo page -> media redirected to 10.77.0.1", redirected)
    allowed = f"{lo}/page.html?src={q(lo + '/redirect?to=' + q(ten + '/ep.mp3'))}"
    case("lo page -> media redirected to 10.77.0.1, allowed", allowed, "--allow-private-urls")
    case("lo page, served to yt-dlp, redirects to 10.77.0.1",
         f"{lo}/twice.html?src={q(lo + '/ep.mp3')}&to={q(ten + '/secret')}")
    case("lo page -> HLS whose segments are on 10.77.0.1",
         f"{lo}/page.html?src={q(lo + '/list.m3u8?seg=' + q(ten + '/secret'))}")
    case("10.77.0.1 page -> media on 10.77.0.1", f"{ten}/page.html?src={q(ten + '/ep.mp3')}")
    case("10.77.0.1 page -> media on loopback", f"{ten}/page.html?src={q(lo + '/secret')}")
    print(json.dumps({"case": "hits", "count": {"/secret": HITS["/secret"]}}), flush=True)


if __name__ == "__main__":
    _netns_main()
