"""HTTP for talkindex's own fetches: an SSRF guard bound to the connection, timeouts and a stall rule.

Why: feeds, transcripts, chapters and enclosures are named by *remote documents*. Without a guard a
public feed could make `talkindex ingest` fetch http://169.254.169.254/ (cloud metadata), a router's
admin page or a service on localhost and index the answer. The rules:

- a URL a remote document names may only reach *global* addresses — checked after DNS resolution,
  on every resolved address (IPv4-mapped IPv6 included), at every redirect hop — unless the document
  itself came from a non-global address: a document served from loopback may name loopback, one
  served from another non-global address may name only that same address;
- a URL the user typed (`origin=None`) is trusted as typed, but its redirects are held to the class
  of the typed host by the same rules;
- `set_allow_private(True)` (the CLI's --allow-private-urls) or TALKINDEX_ALLOW_PRIVATE_URLS=1 turns
  the guard off.

The check happens inside the connection: the host is resolved once, every address is vetted and the
socket connects to a vetted address, so DNS rebinding between check and connect is not possible.
Proxies from the environment are not used (the guard would only see the proxy's address).

A watchdog thread enforces a minimum transfer rate (like curl --speed-limit/--speed-time): a server
that trickles one byte a second cannot hold an ingest, in the headers or in the body.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import logging
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..fsutil import open_new

log = logging.getLogger("talkindex")

USER_AGENT = "talkindex/0.1 (podcast indexer; +https://github.com/)"
CHUNK = 64 * 1024


def _env_float(name: str, default: float, minimum: float = 0.1) -> float:
    try:
        return max(minimum, float(os.environ.get(name) or default))
    except ValueError:
        return default


TIMEOUT = _env_float("TALKINDEX_NET_TIMEOUT", 30.0)  # connect / per-read timeout, seconds
MIN_RATE = _env_float("TALKINDEX_NET_MIN_RATE", 1024.0, 0.0)  # bytes/s; 0 disables the stall rule
STALL_SECONDS = _env_float("TALKINDEX_NET_STALL_SECONDS", 20.0)  # window the minimum rate is measured over
ALLOW_PRIVATE = os.environ.get("TALKINDEX_ALLOW_PRIVATE_URLS", "").lower() in ("1", "true", "yes")


def set_allow_private(allow: bool) -> None:
    """Turn the SSRF guard off (or on) for this process and the workers it starts (env is inherited)."""
    global ALLOW_PRIVATE
    ALLOW_PRIVATE = bool(allow)
    if allow:
        os.environ["TALKINDEX_ALLOW_PRIVATE_URLS"] = "1"
    else:
        os.environ.pop("TALKINDEX_ALLOW_PRIVATE_URLS", None)


class NetError(Exception):
    """A fetch failed; str(e) is a short, user-facing reason (no URL: the caller names the input)."""


class Refused(NetError):
    """The SSRF guard (or the redirect policy) refused a URL."""


class Stalled(NetError):
    """The transfer went under the minimum rate, or the server sent no response headers in time."""


class TooBig(NetError):
    """The body is larger than the caller's limit."""


class Incomplete(NetError):
    """The connection ended before Content-Length bytes arrived."""


# ---------------------------------------------------------------------------------------------
# address classes and the rule


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def address_class(address: str) -> str:
    """'global', or what makes the address non-global ('loopback', 'private', 'link-local', …)."""
    ip = _ip(address)
    for name, bad in (("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback),
                      ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
                      ("private", ip.is_private), ("reserved", ip.is_reserved)):
        if bad:
            return name
    return "global" if ip.is_global else "non-global"


@dataclass(frozen=True)
class Origin:
    """Where a document was served from: the peer address of the connection that delivered it."""

    address: str  # IP literal
    host: str = ""  # the host name in the URL, for messages

    @property
    def kind(self) -> str:
        return address_class(self.address) if self.address else "global"

    @property
    def private(self) -> bool:
        """True for any non-global origin (it may name its own address, loopback may name loopback)."""
        return self.kind != "global"

    @classmethod
    def parse(cls, address: str, host: str = "") -> Origin | None:
        """An Origin from a stored address ('' or garbage → None)."""
        try:
            return cls(str(_ip(address)), host)
        except ValueError:
            return None


PUBLIC = Origin("", "a public address")  # the origin of anything named by a document from the internet


def permitted(address: str, origin: Origin) -> bool:
    """May a URL that a document from `origin` names connect to `address`?"""
    kind = address_class(address)
    if kind == "global":
        return True
    if kind in ("unspecified", "multicast"):
        return False
    if kind == "loopback" and origin.kind == "loopback":
        return True
    return bool(origin.address) and _ip(address) == _ip(origin.address)


def _describe_origin(origin: Origin) -> str:
    if origin.kind == "global":
        return "a public address"
    return f"{origin.kind} address {origin.address}"


def _resolve(host: str, port: int | None = None) -> list[tuple]:
    try:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except UnicodeError:
        raise OSError(f"invalid host name {host[:80]!r}") from None


def origins_of(host: str) -> list[Origin]:
    """Origins for a host the user typed (all its addresses), to hold what it names to its class."""
    return [Origin(str(_ip(i[4][0])), host) for i in _resolve(host)] or [PUBLIC]


def check_url(url: str, chain: list[Origin], allow_private: bool | None = None) -> None:
    """Resolve url's host now and raise Refused unless `check` passes (for URLs another library fetches,
    e.g. yt-dlp's formats; our own fetches check inside the connection instead)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise Refused(f"refused URL {url[:120]!r}: only http and https")
    if chain:
        addrs = list(dict.fromkeys(str(_ip(i[4][0])) for i in _resolve(parts.hostname, parts.port)))
        check(parts.hostname, addrs, chain, allow_private)


def check(host: str, addresses: list[str], chain: list[Origin], allow_private: bool | None = None) -> None:
    """Raise Refused unless every address of `host` is permitted by every origin in `chain`."""
    if ALLOW_PRIVATE if allow_private is None else allow_private:
        return
    for origin in chain:
        for a in addresses:
            if not permitted(a, origin):
                shown = host if host == a else f"{host} ({a})"
                raise Refused(f"refused to connect to {shown}: a {address_class(a)} address, named by a "
                              f"document from {_describe_origin(origin)} (--allow-private-urls allows it)")


# ---------------------------------------------------------------------------------------------
# the guarded connection


def connect(host: str, port: int, chain: list[Origin], allow_private: bool | None, timeout: float | None,
            source_address: tuple[str, int] | None = None) -> tuple[socket.socket, Origin]:
    """A socket connected to `host`, after `check` passed for every address it resolves to (an empty chain:
    the user typed it), and the Origin it reached. The socket goes to a vetted address: no second lookup,
    so DNS rebinding between check and connect is not possible. Every HTTP client talkindex drives
    (its own, and yt-dlp's) connects through here."""
    infos = _resolve(host, port)
    addrs = list(dict.fromkeys(str(_ip(i[4][0])) for i in infos))
    if chain:
        check(host, addrs, chain, allow_private)
    err: OSError | None = None
    for family, kind, proto, _name, sockaddr in infos:
        s = socket.socket(family, kind, proto)
        try:
            s.settimeout(timeout)
            if source_address:
                s.bind(source_address)
            s.connect(sockaddr)
        except OSError as e:
            s.close()
            err = e
            continue
        return s, Origin(str(_ip(sockaddr[0])), host)
    raise err or OSError(f"cannot connect to {host}")


class _Watch:
    """Per-request state: the origin chain, the live socket, and the stall watchdog."""

    def __init__(self, chain: list[Origin], allow_private: bool | None, timeout: float,
                 min_rate: float, stall_seconds: float) -> None:
        self.chain = list(chain)
        self.allow_private = allow_private
        self.timeout = timeout
        self.min_rate = min_rate
        self.stall_seconds = stall_seconds
        self.peer: Origin | None = None
        self.sock: socket.socket | None = None
        self.conn: http.client.HTTPConnection | None = None
        self.received = 0
        self.body_started: float | None = None
        self.hop_started = time.monotonic()
        self.stalled: str = ""
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="talkindex-net-watch", daemon=True)

    # socket.create_connection's signature, so http.client uses it unchanged
    def connect(self, address: tuple[str, int], timeout: float | None = None,
                source_address: tuple[str, int] | None = None) -> socket.socket:
        s, self.peer = connect(address[0], address[1], self.chain, self.allow_private,
                               self.timeout if timeout is None else timeout, source_address)
        self.chain.append(self.peer)
        self.sock = s
        self.hop_started = time.monotonic()
        return s

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def stop(self) -> None:
        self._done.set()

    def _kill(self, why: str) -> None:
        self.stalled = why
        sock = getattr(self.conn, "sock", None) or self.sock
        for s in (sock, self.sock):
            try:
                if s is not None:
                    socket.socket.shutdown(s, socket.SHUT_RDWR)
            except (OSError, TypeError, ValueError):
                pass

    def _run(self) -> None:
        samples: deque[tuple[float, int]] = deque()
        while not self._done.wait(0.2):
            now = time.monotonic()
            if self.body_started is None:  # headers: bounded by their own deadline
                limit = max(2 * self.timeout, self.stall_seconds) + 1
                if now - self.hop_started > limit:
                    self._kill(f"stalled: no response headers after {limit:.0f} s")
                    return
                continue
            if self.min_rate <= 0:
                continue
            samples.append((now, self.received))
            while samples and samples[0][0] < now - self.stall_seconds:
                samples.popleft()
            if now - self.body_started >= self.stall_seconds:
                since = samples[0][1] if samples else 0
                if self.received - since < self.min_rate * (self.stall_seconds - 0.5):
                    self._kill(f"stalled: under {rate_text(self.min_rate)} for {self.stall_seconds:g} s")
                    return


def rate_text(bps: float) -> str:
    if bps >= 1024 and bps % 1024 == 0:
        return f"{bps / 1024:g} KB/s"
    return f"{bps:g} B/s"


class _Conn(http.client.HTTPConnection):
    def __init__(self, host: str, *, watch: _Watch, **kw) -> None:
        super().__init__(host, **kw)
        self._create_connection = watch.connect
        watch.conn = self


class _TLSConn(http.client.HTTPSConnection):
    def __init__(self, host: str, *, watch: _Watch, **kw) -> None:
        super().__init__(host, **kw)
        self._create_connection = watch.connect
        watch.conn = self


class _HTTP(urllib.request.HTTPHandler):
    def __init__(self, watch: _Watch) -> None:
        super().__init__()
        self.watch = watch

    def http_open(self, req):
        return self.do_open(functools.partial(_Conn, watch=self.watch), req)


class _HTTPS(urllib.request.HTTPSHandler):
    def __init__(self, watch: _Watch) -> None:
        super().__init__()
        self.watch = watch

    def https_open(self, req):
        return self.do_open(functools.partial(_TLSConn, watch=self.watch), req, context=self._context)


class _Redirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise Refused(f"redirect to unsupported URL {newurl[:120]!r}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


# ---------------------------------------------------------------------------------------------
# public API


class Response:
    """An open, guarded response. `read(n)` returns up to n bytes (b'' at the end)."""

    def __init__(self, resp, watch: _Watch) -> None:
        self._resp = resp
        self._watch = watch
        self.url: str = resp.geturl()
        self.raw_content_type: str = resp.headers.get("Content-Type") or ""  # with its charset (feeds need it)
        self.content_type: str = self.raw_content_type.split(";")[0].strip().lower()
        try:
            self.length: int | None = int(resp.headers.get("Content-Length") or "")
        except ValueError:
            self.length = None
        if resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity"):
            self.length = None  # the length of the encoded body; not comparable
        self.origin: Origin = watch.peer or Origin("0.0.0.0")
        self.received = 0

    def read(self, n: int = CHUNK) -> bytes:
        """Up to n bytes, returning as soon as some arrive (the stall rule needs every byte counted)."""
        try:
            data = self._resp.read1(n)
        except (OSError, http.client.HTTPException) as e:
            if self._watch.stalled:
                raise Stalled(self._watch.stalled) from None
            if isinstance(e, http.client.IncompleteRead) or not isinstance(e, OSError):
                raise Incomplete(self.short_message()) from None
            raise
        if self._watch.stalled:
            raise Stalled(self._watch.stalled)
        self.received += len(data)
        self._watch.received = self.received
        if not data and self.length is not None and self.received < self.length:
            raise Incomplete(self.short_message())
        return data

    def read_exactly(self, n: int) -> bytes:
        """n bytes, or fewer at the end of the body."""
        parts, got = [], 0
        while got < n:
            part = self.read(min(CHUNK, n - got))
            if not part:
                break
            parts.append(part)
            got += len(part)
        return b"".join(parts)

    def short_message(self) -> str:
        return f"download cut short: got {self.received} bytes, expected {self.length}"

    def close(self) -> None:
        self._watch.stop()
        try:
            self._resp.close()
        except OSError:
            pass

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_url(url: str, *, origin: Origin | None, timeout: float | None = None,
             allow_private: bool | None = None, min_rate: float | None = None,
             stall_seconds: float | None = None) -> Response:
    """Open `url` (GET). origin=None: the user typed it; else the Origin of the document naming it.

    Raises NetError (Refused, Stalled, …) or OSError/urllib errors; `describe(e)` words any of them."""
    timeout = TIMEOUT if timeout is None else timeout
    watch = _Watch([origin] if origin else [], allow_private, timeout,
                   MIN_RATE if min_rate is None else min_rate,
                   STALL_SECONDS if stall_seconds is None else stall_seconds)
    opener = urllib.request.OpenerDirector()
    for h in (urllib.request.UnknownHandler(), _HTTP(watch), _HTTPS(watch), urllib.request.HTTPDefaultErrorHandler(),
              _Redirects(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(h)
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "*/*",
                                               "Accept-Encoding": "identity"})
    watch.start()
    try:
        resp = opener.open(req, timeout=timeout)
    except BaseException as e:
        watch.stop()
        if watch.stalled and not isinstance(e, (Refused, urllib.error.HTTPError)):
            raise Stalled(watch.stalled) from None
        raise
    # the socket the body arrives on (for TLS the wrapped one: the raw socket was detached by wrap_socket)
    watch.sock = getattr(getattr(getattr(resp, "fp", None), "raw", None), "_sock", None) or watch.sock
    watch.body_started = time.monotonic()
    return Response(resp, watch)


@dataclass
class Document:
    data: bytes
    content_type: str
    final_url: str
    origin: Origin  # where it was served from: pass it on for the URLs it names
    raw_content_type: str = ""  # the header as sent, with its charset (decoding transcripts needs it)


def fetch_doc(url: str, *, origin: Origin | None, max_bytes: int, timeout: float | None = None,
              allow_private: bool | None = None) -> Document:
    """A small document (feed, transcript, chapters) in memory, with the Origin that served it."""
    with open_url(url, origin=origin, timeout=timeout, allow_private=allow_private) as r:
        if r.length is not None and r.length > max_bytes:
            raise TooBig(f"larger than {max_bytes} bytes")
        data = r.read_exactly(max_bytes + 1)
        if len(data) > max_bytes:
            raise TooBig(f"larger than {max_bytes} bytes")
        return Document(data, r.content_type, r.url, r.origin, r.raw_content_type)


def fetch(url: str, *, origin: Origin | None, max_bytes: int, timeout: float | None = None,
          allow_private: bool | None = None) -> tuple[bytes, str, str]:
    """(body, content_type, final_url) of a small document; see `fetch_doc` to also get its Origin."""
    d = fetch_doc(url, origin=origin, max_bytes=max_bytes, timeout=timeout, allow_private=allow_private)
    return d.data, d.content_type, d.final_url


@dataclass
class Download:
    size: int
    content_type: str
    final_url: str
    length: int | None  # Content-Length, when the server sent one


def download(url: str, dest: Path, *, origin: Origin | None, max_bytes: int, timeout: float | None = None,
             progress: Callable[[int, int | None], None] | None = None,
             check_head: Callable[[str, bytes], None] | None = None,
             allow_private: bool | None = None) -> Download:
    """Stream `url` into `dest` (created/overwritten; the caller deletes it on failure and verifies it).

    `check_head(content_type, first_bytes)` may raise to refuse the body early (an HTML error page)."""
    with open_url(url, origin=origin, timeout=timeout, allow_private=allow_private) as r:
        if r.length is not None and r.length > max_bytes:
            raise TooBig(f"larger than the {max_bytes}-byte limit ({r.length} bytes)")
        first = True
        with open_new(dest) as f:
            while True:
                data = r.read(CHUNK)
                if not data:
                    break
                if first and check_head is not None:
                    check_head(r.content_type, data)
                first = False
                if r.received > max_bytes:
                    raise TooBig(f"larger than the {max_bytes}-byte limit")
                f.write(data)
                if progress is not None:
                    progress(r.received, r.length)
        if r.length is not None and r.received != r.length:
            raise Incomplete(r.short_message())
        return Download(r.received, r.content_type, r.url, r.length)


def describe(e: BaseException, timeout: float | None = None) -> str:
    """A short reason for any exception open_url/fetch/download raise."""
    if isinstance(e, NetError):
        return str(e)
    if isinstance(e, urllib.error.HTTPError):
        if 300 <= e.code < 400:
            if "infinite loop" in str(e.msg):
                return "redirect loop"
            if "not allowed" in str(e.msg):
                return "redirect to unsupported URL"
            return f"HTTP {e.code} redirect not followed"
        return f"HTTP {e.code}"
    if isinstance(e, urllib.error.URLError):
        if isinstance(e.reason, NetError):
            return str(e.reason)
        e = e.reason if isinstance(e.reason, BaseException) else OSError(str(e.reason))
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, (TimeoutError, socket.timeout)):
        return f"timed out after {TIMEOUT if timeout is None else timeout:g} s"
    if isinstance(e, socket.gaierror):
        return "host not found"
    if isinstance(e, ssl.SSLError):
        return f"TLS error ({e.reason or e})"
    if isinstance(e, ConnectionResetError):
        return "connection reset"
    if isinstance(e, http.client.RemoteDisconnected):
        return "the server closed the connection without a response"
    if isinstance(e, ValueError) and "unknown url type" in str(e):
        return "unsupported URL"
    text = " ".join((str(e) or type(e).__name__).split())
    return text if len(text) <= 200 else text[:199] + "…"


NET_ERRORS = (NetError, OSError, urllib.error.URLError, http.client.HTTPException, ValueError)
