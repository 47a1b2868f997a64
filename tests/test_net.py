"""talkindex.sources.net: the SSRF rule (after DNS, every hop), bound connections, and the stall rule.

The address cases run inside a network namespace this test creates (`unshare -rn`, or `unshare -n` as
root): lo is brought up and given 10.77.0.1, 192.168.77.1 and 169.254.169.254, HTTP servers listen
on those addresses, and no packet can leave the namespace. Without unshare the test is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from talkindex.sources import net

ROOT = Path(__file__).resolve().parents[1]

ADDRS = ("10.77.0.1", "192.168.77.1", "169.254.169.254")


# ---------------------------------------------------------------------------------------------
# the rule, without traffic


@pytest.mark.parametrize("target, origin, ok", [
    ("93.184.216.34", net.PUBLIC, True),
    ("127.0.0.1", net.PUBLIC, False),
    ("10.1.2.3", net.PUBLIC, False),
    ("169.254.169.254", net.PUBLIC, False),
    ("::ffff:169.254.169.254", net.PUBLIC, False),  # IPv4-mapped IPv6
    ("::ffff:127.0.0.1", net.PUBLIC, False),
    ("fd00::1", net.PUBLIC, False),
    ("fe80::1%1", net.PUBLIC, False),
    ("::1", net.PUBLIC, False),
    ("0.0.0.0", net.PUBLIC, False),
    ("224.0.0.1", net.PUBLIC, False),
    ("100.64.0.1", net.PUBLIC, False),  # carrier-grade NAT: not global
    ("127.0.0.2", net.Origin("127.0.0.1"), True),  # loopback may name loopback
    ("::1", net.Origin("127.0.0.1"), True),
    ("10.77.0.1", net.Origin("127.0.0.1"), False),
    ("10.77.0.1", net.Origin("10.77.0.1"), True),  # other non-global: only the same host
    ("::ffff:10.77.0.1", net.Origin("10.77.0.1"), True),
    ("10.77.0.2", net.Origin("10.77.0.1"), False),
    ("127.0.0.1", net.Origin("10.77.0.1"), False),
    ("0.0.0.0", net.Origin("127.0.0.1"), False),
])
def test_permitted(target, origin, ok):
    assert net.permitted(target, origin) is ok


def test_check_every_address_and_allow_private():
    with pytest.raises(net.Refused) as err:
        net.check("mixed.test", ["93.184.216.34", "10.0.0.5"], [net.PUBLIC], allow_private=False)
    assert str(err.value).startswith("refused to connect to mixed.test (10.0.0.5): a private address")
    net.check("mixed.test", ["93.184.216.34", "10.0.0.5"], [net.PUBLIC], allow_private=True)
    net.check("pub.test", ["93.184.216.34"], [net.PUBLIC], allow_private=False)


def test_guard_connects_to_the_vetted_address(monkeypatch):
    """The name is resolved once, inside the connection: what was checked is what is connected to."""

    class _H(BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    srv = ThreadingHTTPServer(("127.0.0.1", 0), _H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    calls = []

    def rebinding(host, p, *a, **kw):  # first answer loopback (allowed here), then TEST-NET (never reached)
        calls.append(host)
        ip = "127.0.0.1" if len(calls) == 1 else "192.0.2.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, p or 80))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    try:
        body, _, _ = net.fetch(f"http://rebind.test:{port}/", origin=net.Origin("127.0.0.1"), max_bytes=10,
                               timeout=3, allow_private=False)
    finally:
        srv.shutdown()
        srv.server_close()
    assert body == b"ok" and calls == ["rebind.test"]


def test_loopback_name_from_public_document_refused_before_connecting(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **kw: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port or 80))])
    with pytest.raises(net.Refused, match=r"169\.254\.169\.254\): a link-local address"):
        net.fetch("http://metadata.test/latest/meta-data/", origin=net.PUBLIC, max_bytes=100, allow_private=False)


# ---------------------------------------------------------------------------------------------
# inside a network namespace of our own


def _unshare_prefix() -> list[str] | None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return None
    for prefix in (["unshare", "-rn"], ["unshare", "-n"]):
        try:
            p = subprocess.run([*prefix, "ip", "link", "set", "lo", "up"], capture_output=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            continue
        if p.returncode == 0:
            return prefix
    return None


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> Path:
    from conftest import tone_mp3

    return tone_mp3(tmp_path_factory.mktemp("netns-media"), 1)


def test_ssrf_rules_in_a_network_namespace(tone, tmp_path):
    prefix = _unshare_prefix()
    if prefix is None:
        pytest.skip("cannot create a network namespace here (unshare -rn / unshare -n not permitted)")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NETNS_TONE": str(tone), "NETNS_TMP": str(tmp_path),
           "TALKINDEX_NET_TIMEOUT": "3"}
    env.pop("TALKINDEX_ALLOW_PRIVATE_URLS", None)
    p = subprocess.run([*prefix, sys.executable, __file__], capture_output=True, text=True, env=env, timeout=240)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    results = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
    by = {r["case"]: r for r in results}
    print("\n" + "\n".join(f"{r['case']}: {r['line']}" for r in results))
    want = {
        "lo feed -> 10.77.0.1 enclosure": "refused",
        "lo feed -> 169.254.169.254 enclosure": "refused",
        "lo feed -> [::ffff:10.77.0.1] enclosure": "refused",
        "lo feed -> lo enclosure": "ok",
        "10.77.0.1 feed -> 10.77.0.1 enclosure": "ok",
        "10.77.0.1 feed -> 192.168.77.1 enclosure": "refused",
        "10.77.0.1 feed -> redirect to 169.254.169.254": "refused",
        "10.77.0.1 feed -> 192.168.77.1, allow_private": "ok",
        "10.77.0.1 feed -> 192.168.77.1 transcript": "refused",
        "typed lo feed redirects to 10.77.0.1": "refused",
        "typed 10.77.0.1 redirects to 10.77.0.1": "ok",
        "typed 10.77.0.1 URL is trusted as typed": "ok",
        "typed lo redirect to 192.168.77.1, allow_private": "ok",
        "typed lo page (yt-dlp) -> 10.77.0.1 media": "refused",
        "typed lo page (yt-dlp) -> lo media": "ok",
    }
    assert {c: by.get(c, {}).get("outcome") for c in want} == want, p.stdout + p.stderr[-2000:]
    for r in results:
        assert "\n" not in r["line"] and len(r["line"]) < 400
        if r["outcome"] == "refused":
            assert "refused to connect to" in r["line"] and "--allow-private-urls" in r["line"]
    assert by["lo feed -> 10.77.0.1 enclosure"]["line"].startswith("http://127.0.0.1:")  # the feed as typed
    assert "secret" not in p.stdout  # the metadata server's body never reached us


class _NSHandler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def do_GET(self):
        parts = urlsplit(self.path)
        q = parse_qs(parts.query)
        if parts.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", q["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if parts.path == "/feed.xml":
            enc = q["enc"][0]
            body = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>NS</title><item><title>Item</title>'
                    f'<guid>g1</guid><enclosure url="{enc.replace("&", "&amp;")}" type="audio/mpeg"/></item>'
                    "</channel></rss>").encode()
            ctype = "application/rss+xml"
        elif parts.path == "/page.html":
            src = q["src"][0].replace("&", "&amp;").replace('"', "&quot;")
            body = f'<!doctype html><html><head><title>Page</title></head><body><audio controls src="{src}">' \
                   f'</audio></body></html>'.encode()
            ctype = "text/html"
        elif parts.path == "/ep.mp3":
            body, ctype = Path(os.environ["NETNS_TONE"]).read_bytes(), "audio/mpeg"
        elif parts.path == "/transcript.vtt":
            body, ctype = b"WEBVTT\n\n00:00.000 --> 00:01.000\nsecret\n", "text/vtt"
        else:
            body, ctype = b"secret", "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _netns_main() -> None:
    """Runs inside the namespace: set up addresses and servers, run each case, print one JSON line each."""
    from urllib.parse import quote

    from talkindex.errors import SourceError
    from talkindex.records import Episode
    from talkindex.sources import resolve as sources

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for a in ADDRS:
        subprocess.run(["ip", "addr", "add", f"{a}/32", "dev", "lo"], check=True)
    base = {}
    for a in ("127.0.0.1", *ADDRS):
        srv = ThreadingHTTPServer((a, 0), _NSHandler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        base[a] = f"http://{a}:{srv.server_address[1]}"
    lo, ten, one92, meta = (base[a] for a in ("127.0.0.1", *ADDRS))
    cache = Path(os.environ["NETNS_TMP"]) / "cache"

    def feed(host: str, enc: str) -> str:
        return f"{host}/feed.xml?enc={quote(enc, safe='')}"

    def report(case: str, fn) -> None:
        try:
            out = fn()
            outcome, text = "ok", str(out)
        except SourceError as e:
            outcome = "refused" if "refused to connect" in e.reason else "error"
            text = str(e)
        except net.NetError as e:
            outcome = "refused" if isinstance(e, net.Refused) else "error"
            text = str(e)
        print(json.dumps({"case": case, "outcome": outcome, "line": text}), flush=True)

    def ingest(feed_url: str, allow_private: bool | None = False):
        [ep] = sources.resolve(feed_url, allow_private=allow_private)
        return sources.download(ep, cache, allow_private=allow_private, force=True).name

    report("lo feed -> 10.77.0.1 enclosure", lambda: ingest(feed(lo, f"{ten}/ep.mp3")))
    report("lo feed -> 169.254.169.254 enclosure", lambda: ingest(feed(lo, f"{meta}/latest/meta-data/")))
    port10 = ten.rsplit(":", 1)[1]
    report("lo feed -> [::ffff:10.77.0.1] enclosure",
           lambda: ingest(feed(lo, f"http://[::ffff:10.77.0.1]:{port10}/ep.mp3")))
    report("lo feed -> lo enclosure", lambda: ingest(feed(lo, f"{lo}/ep.mp3")))
    report("10.77.0.1 feed -> 10.77.0.1 enclosure", lambda: ingest(feed(ten, f"{ten}/ep.mp3")))
    report("10.77.0.1 feed -> 192.168.77.1 enclosure", lambda: ingest(feed(ten, f"{one92}/ep.mp3")))
    report("10.77.0.1 feed -> redirect to 169.254.169.254",
           lambda: ingest(feed(ten, f"{ten}/redirect?to={quote(meta + '/ep.mp3', safe='')}")))
    report("10.77.0.1 feed -> 192.168.77.1, allow_private",
           lambda: ingest(feed(ten, f"{one92}/ep.mp3"), allow_private=True))

    def transcript():
        [ep] = sources.resolve(feed(ten, f"{ten}/ep.mp3"), allow_private=False)
        assert isinstance(ep, Episode) and ep.trusted_private and ep.origin_host == "10.77.0.1"
        return sources.fetch_document(f"{one92}/transcript.vtt", ep, allow_private=False)

    report("10.77.0.1 feed -> 192.168.77.1 transcript", transcript)
    report("typed lo feed redirects to 10.77.0.1",
           lambda: sources.resolve(f"{lo}/redirect?to={quote(feed(ten, ten + '/ep.mp3'), safe='')}",
                                   allow_private=False))
    report("typed 10.77.0.1 redirects to 10.77.0.1",
           lambda: net.fetch(f"{ten}/redirect?to={quote(ten + '/x', safe='')}", origin=None, max_bytes=100,
                             allow_private=False)[0].decode().replace("secret", "s-e-c-r-e-t"))
    report("typed 10.77.0.1 URL is trusted as typed",
           lambda: len(net.fetch(f"{ten}/ep.mp3", origin=None, max_bytes=10**6, allow_private=False)[0]))
    report("typed lo redirect to 192.168.77.1, allow_private",
           lambda: len(net.fetch(f"{lo}/redirect?to={quote(one92 + '/ep.mp3', safe='')}", origin=None,
                                 max_bytes=10**6, allow_private=True)[0]))

    def page(host: str, src: str):
        [ep] = sources.resolve(f"{host}/page.html?src={quote(src, safe='')}", allow_private=False)
        return sources.download(ep, cache, allow_private=False, force=True).name

    report("typed lo page (yt-dlp) -> 10.77.0.1 media", lambda: page(lo, f"{ten}/ep.mp3"))
    report("typed lo page (yt-dlp) -> lo media", lambda: page(lo, f"{lo}/ep.mp3"))
    time.sleep(0.1)


if __name__ == "__main__":
    _netns_main()
