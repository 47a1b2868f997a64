"""yt-dlp: resolving pages/playlists/channels/searches into episodes, and downloading their media.

Why separate: yt-dlp is slow to import and has its own networking. Our SSRF rule reaches all of it: the
only request handler a YoutubeDL of ours has connects through `net.connect` (see `Guard`), so its page,
API, manifest, caption and media requests, and every redirect hop, are held to the typed page's host
class (or the naming feed's origin), and a refusal is one line naming the input as typed.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from talkindex.errors import SourceError, UsageError
from talkindex.records import Episode
from talkindex.sources import net
from talkindex.sources.feeds import sha12
from talkindex.textsafe import clip

log = logging.getLogger("talkindex")
T = TypeVar("T")

# Politeness toward sites that rate-limit (YouTube first): a pause between yt-dlp's requests, and a 429 (or,
# from yt-dlp, a 403 / "not a bot" page) retried TRIES times in all, waiting BACKOFF_S, then twice that, ….
SLEEP_REQUESTS_S = float(os.environ.get("TALKINDEX_SLEEP_REQUESTS_S", "1"))  # tests lower these
BACKOFF_S = float(os.environ.get("TALKINDEX_BACKOFF_S", "10"))
TRIES = 3
_RATE_LIMITED = re.compile(r"\b429\b|too many requests|rate.?limit", re.I)
_FORBIDDEN = re.compile(r"\b403\b|forbidden|not a bot|sign in to confirm", re.I)
HELP = "pass --cookies FILE or --cookies-from-browser BROWSER (a signed-in session), or wait and rerun"


class Blocked(SourceError):
    """A site kept refusing after the retries; the message names the cause and the option that helps."""


def set_cookies(file: str | None = None, browser: str | None = None) -> None:
    """--cookies / --cookies-from-browser for every yt-dlp call of this process and the workers it starts
    (environment, as net.set_allow_private). UsageError for a missing file or an unknown browser."""
    if file:
        if not os.path.isfile(file) or not os.access(file, os.R_OK):
            raise UsageError(f"--cookies {file}: no such readable file (a Netscape cookies.txt)")
        os.environ["TALKINDEX_COOKIES"] = os.path.abspath(file)
    if browser:
        _browser_opts(browser)
        os.environ["TALKINDEX_COOKIES_FROM_BROWSER"] = browser


def _browser_opts(browser: str) -> tuple:
    """yt-dlp's own parsing of BROWSER[+KEYRING][:PROFILE][::CONTAINER]."""
    import yt_dlp

    try:
        return yt_dlp.parse_options(["--cookies-from-browser", browser]).ydl_opts["cookiesfrombrowser"]
    except (Exception, SystemExit) as e:  # noqa: BLE001 - optparse reports by exiting
        why = str(e).strip().splitlines()[-1].removeprefix("-c: error: ") if str(e).strip() else "invalid"
        raise UsageError(f"--cookies-from-browser {browser}: {why}") from None


def _cookie_opts() -> dict:
    opts: dict = {}
    if os.environ.get("TALKINDEX_COOKIES"):
        opts["cookiefile"] = os.environ["TALKINDEX_COOKIES"]
    if os.environ.get("TALKINDEX_COOKIES_FROM_BROWSER"):
        opts["cookiesfrombrowser"] = _browser_opts(os.environ["TALKINDEX_COOKIES_FROM_BROWSER"])
    return opts


def with_backoff(fn: Callable[[], T], label: str, forbidden: bool = True) -> T:
    """`fn()`, tried again after a rate-limit answer (and a 403, when `forbidden`); the last refusal
    becomes one Blocked line naming the cause and what helps."""
    for attempt in range(TRIES):
        try:
            return fn()
        except Blocked:
            raise
        except SourceError as e:
            limited = bool(_RATE_LIMITED.search(e.reason))
            if not (limited or (forbidden and _FORBIDDEN.search(e.reason))):
                raise
            if attempt == TRIES - 1:
                cause = ("rate-limited by the site" if limited
                         else "refused by the site (it may want a signed-in session)")
                raise Blocked(e.input, f"{e.reason}: {cause} after {TRIES} tries; {HELP}") from None
            wait = BACKOFF_S * 2**attempt
            log.warning("warning: %s: %s; retrying in %g s", label, e.reason, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]+")


def specific(url: str) -> bool:
    """True when a yt-dlp extractor other than the generic one claims the URL."""
    from yt_dlp.extractor import gen_extractor_classes

    return any(ie.ie_key() != "Generic" and ie.suitable(url) for ie in gen_extractor_classes())


class _YdlLogger:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def debug(self, msg: str) -> None:
        self.messages.append(msg)
        log.debug("yt-dlp: %s", msg)

    info = debug

    def warning(self, msg: str) -> None:
        self.messages.append(msg)
        log.debug("yt-dlp warning: %s", msg)

    def error(self, msg: str) -> None:
        self.messages.append(msg)
        log.debug("yt-dlp error: %s", msg)


def short(e: BaseException) -> str:
    text = _ANSI.sub("", str(e)).replace("\r", " ").strip()
    line = next((s for s in text.splitlines() if s.strip()), "") or type(e).__name__
    line = re.sub(r"\s*\(caused by .*\)\s*$", "", line)
    while True:
        stripped = re.sub(r"^(ERROR|WARNING):\s*", "", line.strip())
        stripped = re.sub(r"^\[[\w:]+\]\s*(?:[\w-]+:\s+)?", "", stripped) if stripped.startswith("[") else stripped
        if stripped == line:
            break
        line = stripped
    return clip(line, 300)


MAX_READ_BYTES = 32 * 2**20  # one page, API answer or player script that yt-dlp reads whole (decompressed)


class Guard:
    """net's address rule for every connection of one yt-dlp run: pages, API calls, playlists, captions
    and media, each redirect hop included (yt-dlp follows links no document of ours has seen).

    A typed http(s) URL is trusted as typed: the first connection to its host is not checked, and the
    address it reached becomes the origin everything else is held to (as net does for a typed URL's
    redirects). Otherwise (a feed's item, a `ytsearch:`) the origin is the naming document's, or PUBLIC."""

    def __init__(self, typed: str, origin: net.Origin | None, allow_private: bool | None) -> None:
        parts = urlsplit(typed.strip())
        web = origin is None and parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        self.typed_host = (parts.hostname or "").lower() if web else ""
        self.chain: list[net.Origin] | None = None if web else [origin or net.PUBLIC]
        self.allow_private = allow_private
        self.refused: net.Refused | None = None  # the first refusal: yt-dlp's retries and reports lose it
        self._lock = threading.Lock()

    def connect(self, host: str, port: int, timeout: float | None,
                source_address: tuple[str, int] | None) -> socket.socket:
        with self._lock:
            chain = self.chain
            first = chain is None and host.lower().strip("[]") == self.typed_host
        if chain is None and not first:  # yt-dlp went elsewhere before the typed host: hold it to that host
            chain = net.origins_of(self.typed_host)
        try:
            sock, peer = net.connect(host, port, [] if first else chain, self.allow_private, timeout,
                                     source_address)
        except net.Refused as e:
            self.refused = self.refused or e
            raise
        if first:
            with self._lock:
                self.chain = self.chain or [peer]
        return sock


def _cause(e: BaseException | None) -> net.NetError | None:
    """The net.NetError (a refusal, a stall) at the root of a yt-dlp error, however deeply wrapped."""
    seen: set[int] = set()
    todo = [e]
    while todo:
        x = todo.pop()
        if x is None or id(x) in seen or len(seen) > 50:
            continue
        seen.add(id(x))
        if isinstance(x, net.NetError):
            return x
        inner = getattr(x, "exc_info", None)
        todo += [getattr(x, "cause", None) if isinstance(getattr(x, "cause", None), BaseException) else None,
                 inner[1] if isinstance(inner, tuple) and len(inner) > 1 else None, x.__cause__, x.__context__]
    return None


@functools.cache
def _handler_class():
    """yt-dlp's `requests` handler, with every connection made by `Guard.connect` and whole-body reads
    (pages, API answers: `read()` without a size) capped at MAX_READ_BYTES decompressed (a gzip bomb
    served only to yt-dlp's fetch drove it past 4 GB). Media is read in blocks and capped by max_filesize."""
    import urllib3
    from yt_dlp.networking import _requests
    from yt_dlp.networking.exceptions import TransportError

    def guarded_conn(conn) -> socket.socket:
        try:
            timeout = conn.timeout if isinstance(conn.timeout, (int, float)) else net.TIMEOUT  # not a sentinel
            return conn.talkindex_guard.connect(conn._dns_host, conn.port, timeout, conn.source_address)
        except net.Refused:
            raise
        except socket.gaierror as e:
            raise urllib3.exceptions.NameResolutionError(conn.host, conn, e) from e
        except TimeoutError as e:
            raise urllib3.exceptions.ConnectTimeoutError(conn, f"connection to {conn.host} timed out") from e
        except OSError as e:
            raise urllib3.exceptions.NewConnectionError(conn, f"Failed to establish a new connection: {e}") from e

    class Conn(urllib3.connection.HTTPConnection):
        _new_conn = guarded_conn

    class TLSConn(urllib3.connection.HTTPSConnection):
        _new_conn = guarded_conn

    def pool(base, conn_cls, guard: Guard):
        class Pool(base):
            ConnectionCls = conn_cls

            def _new_conn(self):
                conn = super()._new_conn()
                conn.talkindex_guard = guard
                return conn

        return Pool

    class TalkindexRH(_requests.RequestsRH):
        _SUPPORTED_PROXY_SCHEMES = ()  # a proxy would be the only address the guard sees

        def __init__(self, *args, guard: Guard, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.guard = guard

        def _create_instance(self, cookiejar, legacy_ssl_support=None):
            session = super()._create_instance(cookiejar, legacy_ssl_support)
            manager = session.get_adapter("http://x").poolmanager
            manager.pool_classes_by_scheme = {"http": pool(urllib3.HTTPConnectionPool, Conn, self.guard),
                                              "https": pool(urllib3.HTTPSConnectionPool, TLSConn, self.guard)}
            return session

        def _send(self, request):
            try:
                resp = super()._send(request)
            except net.Refused as e:
                raise TransportError(cause=e) from e  # its message: the refusal; `_cause` finds it
            real = resp._real_read

            def capped(amt=None):
                if amt is not None:
                    return real(amt)
                parts, got = [], 0
                while chunk := real(1 << 20):
                    got += len(chunk)
                    if got > MAX_READ_BYTES:
                        raise TransportError(f"response larger than {MAX_READ_BYTES // 2**20} MB once "
                                             "decompressed (a compression bomb?)")
                    parts.append(chunk)
                return b"".join(parts)

            resp._real_read = capped
            return resp

    return TalkindexRH


def _ydl(opts: dict, guard: Guard):
    """A YoutubeDL whose only request handler is ours: nothing it fetches escapes the guard (no urllib,
    curl_cffi or websockets fallback; a request ours cannot serve fails)."""
    import yt_dlp

    rh = _handler_class()

    class YDL(yt_dlp.YoutubeDL):
        def build_request_director(self, handlers, preferences=None):
            return super().build_request_director([functools.partial(rh, guard=guard)], preferences)

    return YDL(opts)


def _base_opts(logger: _YdlLogger) -> dict:
    return {"quiet": True, "no_warnings": True, "noprogress": True, "logger": logger, "cachedir": False,
            "socket_timeout": net.TIMEOUT, "extractor_retries": 1, "http_headers": {"User-Agent": net.USER_AGENT},
            "sleep_interval_requests": SLEEP_REQUESTS_S,
            "proxy": "",  # as net: no proxy from the environment (the guard would only see the proxy)
            "external_downloader": {"default": "native"},  # ffmpeg/aria2c would fetch outside the guard
            } | _cookie_opts()


def resolve(url: str, source: str) -> list[Episode]:
    return with_backoff(lambda: _resolve(url, source), source)


def _resolve(url: str, source: str) -> list[Episode]:
    import yt_dlp

    opts = _base_opts(_YdlLogger()) | {"extract_flat": "in_playlist", "skip_download": True}
    try:
        guard = Guard(url, None, None)
        with _ydl(opts, guard) as ydl:
            info = ydl.extract_info(url, download=False, process=False)
            episodes = list(_walk(ydl, info, source, {}, 0))
    except (yt_dlp.utils.YoutubeDLError, OSError, net.NetError) as e:
        raise SourceError(source, str(guard.refused or _cause(e) or short(e))) from None
    if not episodes:
        raise SourceError(source, "no videos or episodes found")
    unique = {ep.id: ep for ep in reversed(episodes)}
    return [ep for ep in episodes if unique.pop(ep.id, None) is not None]


def _walk(ydl, info: dict | None, source: str, parent: dict, depth: int):
    if not info:
        return
    kind = info.get("_type", "video")
    if kind in ("url", "url_transparent"):
        if depth > 4 or not info.get("url"):
            return
        sub = ydl.extract_info(info["url"], ie_key=info.get("ie_key"), download=False, process=False)
        yield from _walk(ydl, sub, source, parent, depth + 1)
    elif kind in ("playlist", "multi_video"):
        for entry in info.get("entries") or ():
            if not entry:
                continue
            ekind = entry.get("_type", "video")
            key = str(entry.get("ie_key") or "")
            if ekind in ("playlist", "multi_video") or (
                    ekind in ("url", "url_transparent") and re.search(r"Tab|Playlist|Channel|Search", key)):
                yield from _walk(ydl, entry, source, info, depth + 1)
            else:
                yield _ytdlp_episode(entry, source, info)
    else:
        yield _ytdlp_episode(info, source, parent)


def _ytdlp_episode(e: dict, source: str, parent: dict) -> Episode:
    key = str(e.get("ie_key") or e.get("extractor_key") or parent.get("extractor_key") or "ytdlp")
    page = str(e.get("webpage_url") or e.get("url") or e.get("original_url") or "")
    vid = str(e.get("id") or sha12(page))
    published = None
    if re.fullmatch(r"\d{8}", str(e.get("upload_date") or "")):
        d = e["upload_date"]
        published = f"{d[:4]}-{d[4:6]}-{d[6:]}"
    elif isinstance(e.get("timestamp"), (int, float)):
        published = time.strftime("%Y-%m-%d", time.gmtime(e["timestamp"]))
    duration = e.get("duration")
    from ..transcripts.chapters import chapters_from_info
    from ..transcripts.existing import caption_refs

    lang = str(e.get("language") or "")
    return Episode(
        id=safe_id(f"{key.lower()}-{vid}"), title=str(e.get("title") or e.get("fulltitle") or vid), source=source,
        media_url=page, webpage_url=page,
        show=str(e.get("channel") or e.get("uploader") or parent.get("channel") or parent.get("uploader") or ""),
        published=published, duration=float(duration) if isinstance(duration, (int, float)) else None,
        extractor=key, language=lang,
        # captions and chapters as yt-dlp lists them; --captions decides at ingest which are used
        transcripts=caption_refs(e, lang or None, "any"), chapters=chapters_from_info(e),
    )




def safe_id(text: str) -> str:
    """Restrict an id to [A-Za-z0-9_-] so it can be used as a file name."""
    s = _UNSAFE_ID.sub("_", text).strip("_")
    if len(s) > 100:
        s = s[:80] + "-" + sha12(text)
    return s


class _TooBig(Exception):
    pass


class CaptionsFound(SourceError):
    """The download's own extraction found caption tracks the caller's --captions policy takes (they are
    now in ep.transcripts): it stopped before any media byte, so that captions come first."""


class _Stop(Exception):
    pass


def _learn_captions(ep: Episode, info: dict, policy: str) -> bool:
    """Add the caption tracks (creator and automatic) of the full extraction to ep.transcripts — a
    playlist's flat entries arrive without them — and say whether `policy` takes one of the new ones."""
    from ..transcripts.existing import POLICIES, caption_refs

    known = {r.url for r in ep.transcripts}
    new = [r for r in caption_refs(info, ep.language or None, "any") if r.url not in known]
    ep.transcripts += new
    return any(r.source in POLICIES.get(policy, ()) for r in new)


def download(ep: Episode, tmp: Path, name: str, max_bytes: int, progress, allow_private: bool | None, *,
             label: str, origin: net.Origin | None, captions_first: str = "") -> Path:
    """Download a page's media with yt-dlp into tmp/<name>.<ext> (the caller verifies and caches it).

    origin: the Origin of the document that named ep.media_url (a feed), or None for a typed page.
    captions_first: a --captions policy; CaptionsFound when the extraction finds new tracks it takes."""
    return with_backoff(lambda: _download(ep, tmp, name, max_bytes, progress, allow_private, label=label,
                                          origin=origin, captions_first=captions_first), label)


def _download(ep: Episode, tmp: Path, name: str, max_bytes: int, progress, allow_private: bool | None, *,
              label: str, origin: net.Origin | None, captions_first: str = "") -> Path:
    import yt_dlp
    from yt_dlp.postprocessor.common import PostProcessor

    guard = Guard(ep.source, origin, allow_private)

    class _Formats(PostProcessor):
        """Before any media byte: the chosen formats must be fetched by yt-dlp itself over http(s) (so
        through the guard); a live stream would go to ffmpeg, outside it (and has no end to index)."""

        def run(self, info):
            if _learn_captions(ep, info, captions_first):
                raise _Stop()
            if info.get("is_live"):
                raise net.Refused("a live stream: talkindex indexes recordings (rerun once it has ended)")
            chain = guard.chain or net.origins_of(guard.typed_host)
            for f in info.get("requested_formats") or [info]:
                net.check_url(str(f.get("url") or ""), chain, allow_private)
            return [], info

    samples: list[tuple[float, int]] = []

    def hook(d: dict) -> None:
        done = d.get("downloaded_bytes") or 0
        if done > max_bytes:
            raise _TooBig()
        now = time.monotonic()
        samples.append((now, done))
        while len(samples) > 1 and samples[1][0] <= now - net.STALL_SECONDS:
            samples.pop(0)
        if (net.MIN_RATE and now - samples[0][0] >= net.STALL_SECONDS
                and done - samples[0][1] < net.MIN_RATE * net.STALL_SECONDS):  # checked per block yt-dlp reads
            raise net.Stalled(f"stalled: under {net.rate_text(net.MIN_RATE)} for {net.STALL_SECONDS:g} s")
        if progress is not None and d.get("status") in ("downloading", "finished"):
            progress(done, d.get("total_bytes") or d.get("total_bytes_estimate"))

    logger = _YdlLogger()
    opts = _base_opts(logger) | {
        "format": "bestaudio/best", "outtmpl": {"default": str(tmp / f"{name}.%(ext)s")},
        "max_filesize": max_bytes, "noplaylist": True, "retries": 2, "fragment_retries": 2,
        "continuedl": False, "overwrites": True, "updatetime": False, "progress_hooks": [hook],
        "postprocessors": [], "skip_unavailable_fragments": False,  # a missing piece fails the download
    }
    try:
        with _ydl(opts, guard) as ydl:
            ydl.add_post_processor(_Formats(), when="before_dl")
            ydl.download([ep.media_url])
    except _TooBig:
        raise SourceError(label, f"larger than the {max_bytes}-byte limit") from None
    except _Stop:
        raise CaptionsFound(label, "captions found before the download") from None
    except (yt_dlp.utils.YoutubeDLError, OSError, net.NetError) as e:
        inner = getattr(e, "exc_info", None)
        if inner and isinstance(inner[1], _TooBig):
            raise SourceError(label, f"larger than the {max_bytes}-byte limit") from None
        if inner and isinstance(inner[1], _Stop):
            raise CaptionsFound(label, "captions found before the download") from None
        raise SourceError(label, str(guard.refused or _cause(e) or short(e))) from None
    if guard.refused:  # a fragment refused and skipped: what arrived is not the whole media
        raise SourceError(label, str(guard.refused))
    files = [f for f in tmp.iterdir() if f.is_file() and f.name.startswith(name + ".")
             and not f.name.endswith((".part", ".ytdl", ".temp", ".tmp")) and f.stat().st_size > 0]
    if not files:
        why = next((short(Exception(m)) for m in logger.messages if "max-filesize" in m), "")
        raise SourceError(label, why or "download produced no file")
    return max(files, key=lambda f: f.stat().st_size)
