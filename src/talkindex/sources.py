"""Inputs -> episodes -> local media files.

`read_urls_file` reads a urls.txt, `resolve` expands one input (local file, podcast feed, direct media
URL, or anything yt-dlp understands) into `Episode`s without downloading media, and `download`
fetches one episode's media into a cache directory. yt-dlp is imported lazily (it is slow to import).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unicodedata
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

from talkindex.errors import SourceError
from talkindex.feeds import (
    GENERIC_MIME,
    MEDIA_EXTS,
    clip,
    feed_episodes,
    looks_like_feed,
    parse_date,
    sha12,
    url_ext,
)
from talkindex.records import Episode

log = logging.getLogger("talkindex")


def _env_seconds(name: str, default: float) -> float:
    try:
        return max(0.1, float(os.environ.get(name) or default))
    except ValueError:
        return default


TIMEOUT = _env_seconds("TALKINDEX_NET_TIMEOUT", 30.0)  # seconds, for every network call (tests lower it)
MAX_FEED_BYTES = 20 * 2**20
SNIFF_BYTES = 64 * 1024
MAX_LINE = 4096
USER_AGENT = "talkindex/0.1 (podcast indexer; +https://github.com/)"

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_SEARCH = re.compile(r"^[a-z]+search(?:date)?(?:\d+|all)?:", re.IGNORECASE)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]+")


# ---------------------------------------------------------------------------------------------
# urls.txt


def read_urls_file(path: Path) -> tuple[list[str], list[SourceError]]:
    """Inputs of a urls file (deduplicated, in order) and one SourceError per malformed line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(str(path), "file not found") from None
    except IsADirectoryError:
        raise SourceError(str(path), "is a directory, expected a text file with one URL per line") from None
    except OSError as e:
        raise SourceError(str(path), f"cannot read ({e.strerror or e})") from None
    base = path.absolute().parent
    inputs: list[str] = []
    seen: set[str] = set()
    errors: list[SourceError] = []
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    for n, bline in enumerate(raw.split(b"\n"), 1):
        try:
            line = bline.decode("utf-8")
        except UnicodeDecodeError:
            shown = bline.decode("utf-8", errors="replace").strip()
            errors.append(SourceError(str(path), f"line {n}: not valid UTF-8: {clip(shown)!r}"))
            continue
        try:
            item = _parse_line(line, base)
        except ValueError as e:
            errors.append(SourceError(str(path), f"line {n}: {e}"))
            continue
        if item is not None and item not in seen:
            seen.add(item)
            inputs.append(item)
    return inputs, errors


def _parse_line(line: str, base: Path) -> str | None:
    if len(line) > MAX_LINE:
        raise ValueError(f"line too long ({len(line)} characters, at most {MAX_LINE})")
    line = line.rstrip("\r")
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    text = re.split(r"\s#", text, maxsplit=1)[0].strip()
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text):
        raise ValueError(f"contains control characters: {clip(text)!r}")
    m = _SCHEME.match(text)
    if m and len(m.group(1)) > 1:
        scheme = m.group(1).lower()
        if scheme in ("http", "https"):
            parts = urlsplit(text)
            if not parts.hostname:
                raise ValueError(f"URL has no host: {clip(text)!r}")
            if any(c.isspace() for c in text):
                raise ValueError(f"URL contains spaces: {clip(text)!r}")
            return text
        if _SEARCH.match(text):
            return text
        if scheme == "file":
            parts = urlsplit(text)
            if parts.netloc not in ("", "localhost"):
                raise ValueError(f"file URL on another host: {clip(text)!r}")
            return os.path.abspath(urllib.request.url2pathname(parts.path))
        if not (base / text).exists():
            raise ValueError(f"unsupported URL scheme {scheme!r} (use http, https, "
                             f"ytsearchN: or a local path): {clip(text)!r}")
    p = Path(os.path.expanduser(text))
    if not p.is_absolute():
        p = base / p
    return os.path.abspath(p)


# ---------------------------------------------------------------------------------------------
# resolve


def resolve(source: str) -> list[Episode]:
    """Expand one input into episodes (no media is downloaded). Raises SourceError."""
    text = source.strip()
    if not text:
        raise SourceError(repr(source), "empty input")
    m = _SCHEME.match(text)
    scheme = m.group(1).lower() if m and len(m.group(1)) > 1 else ""
    if scheme in ("http", "https"):
        if _ytdlp_specific(text):
            return _resolve_ytdlp(text, source)
        return _resolve_http(text, source)
    if scheme and _SEARCH.match(text):
        return _resolve_ytdlp(text, source)
    if scheme == "file":
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise SourceError(source, "file URL on another host")
        return [_resolve_local(urllib.request.url2pathname(parts.path), source)]
    if scheme and not os.path.exists(text):
        raise SourceError(source, f"unsupported URL scheme {scheme!r}")
    return [_resolve_local(text, source)]


def _resolve_local(text: str, source: str) -> Episode:
    p = Path(os.path.abspath(os.path.expanduser(text)))
    if not p.exists():
        hint = ""
        if re.match(r"^(www\.)?[\w-]+(\.[\w-]+)*\.[A-Za-z]{2,}/", text):
            hint = " (for a web address, start it with https://)"
        raise SourceError(source, "no such file" + hint)
    if p.is_dir():
        raise SourceError(source, "is a directory (list its media files one per line)")
    if not p.is_file():
        raise SourceError(source, "not a regular file")
    tags, duration = _ffprobe(p)
    path = str(p)
    return Episode(
        id="file-" + sha12(path), title=tags.get("title") or p.stem, source=source, media_url=path,
        webpage_url="file://" + path, show=tags.get("album_artist") or tags.get("artist") or "",
        published=parse_date(tags.get("date")) if len(tags.get("date", "")) >= 10 else None,
        duration=duration, extractor="local", local=True,
    )


def _ffprobe(p: Path) -> tuple[dict[str, str], float | None]:
    """Tags (lower-cased keys) and duration of a local file; empty when ffprobe is missing or fails."""
    cmd = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "file:" + str(p)]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=15, check=True, stdin=subprocess.DEVNULL)
        fmt = json.loads(out.stdout).get("format", {})
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        log.debug("ffprobe %s: %s", p, e)
        return {}, None
    tags = {str(k).lower(): str(v).strip() for k, v in (fmt.get("tags") or {}).items()}
    try:
        duration = float(fmt["duration"])
    except (KeyError, TypeError, ValueError):
        duration = None
    return tags, duration


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise _Refused(f"redirect to unsupported URL {clip(newurl)!r}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Refused(Exception):
    pass


def _open(url: str):
    opener = urllib.request.OpenerDirector()
    for h in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(), urllib.request.HTTPHandler(),
              urllib.request.HTTPSHandler(), urllib.request.HTTPDefaultErrorHandler(), _RedirectHandler(),
              urllib.request.HTTPErrorProcessor()):
        opener.add_handler(h)
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
    return opener.open(req, timeout=TIMEOUT)


def _net_reason(e: BaseException) -> str:
    if isinstance(e, _Refused):
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
        e = e.reason if isinstance(e.reason, BaseException) else OSError(str(e.reason))
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, (TimeoutError, socket.timeout)):
        return f"timed out after {TIMEOUT:g} s"
    if isinstance(e, socket.gaierror):
        return "host not found"
    if isinstance(e, ssl.SSLError):
        return f"TLS error ({e.reason or e})"
    if isinstance(e, ConnectionResetError):
        return "connection reset"
    return clip(str(e) or type(e).__name__, 200)


def _is_media(head: bytes, mime: str, url: str) -> bool:
    mime = mime.lower()
    if mime.startswith(("audio/", "video/")) or mime in ("application/ogg", "application/vnd.apple.mpegurl"):
        return True
    magic = (head.startswith((b"ID3", b"OggS", b"fLaC", b"\x1aE\xdf\xa3", b"#EXTM3U"))
             or (head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"AVI "))
             or head[4:8] == b"ftyp" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0))
    if magic:
        return True
    return mime in GENERIC_MIME and url_ext(url) in MEDIA_EXTS


def _resolve_http(url: str, source: str) -> list[Episode]:
    try:
        with _open(url) as resp:
            final = resp.geturl()
            mime = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
            head = resp.read(SNIFF_BYTES)
            if looks_like_feed(head):
                rest = resp.read(MAX_FEED_BYTES + 1 - len(head))
                if len(head) + len(rest) > MAX_FEED_BYTES:
                    raise SourceError(source, f"feed larger than {MAX_FEED_BYTES // 2**20} MB")
                return feed_episodes(head + rest, url, final, source)
    except SourceError:
        raise
    except (OSError, urllib.error.URLError, _Refused, ValueError) as e:
        # ValueError: urllib rejects malformed URLs ("unknown url type", bad port)
        raise SourceError(source, _net_reason(e)) from None
    if _is_media(head, mime, final):
        name = unquote(posixpath.basename(urlsplit(url).path))
        title = name.rsplit(".", 1)[0] if "." in name else name
        return [Episode(id="url-" + sha12(url), title=title or urlsplit(url).hostname or url, source=source,
                        media_url=url, webpage_url=url, extractor="generic")]
    try:
        return _resolve_ytdlp(url, source)
    except SourceError as e:
        if "unsupported url" in e.reason.lower():
            kind = "an HTML page without playable media" if b"<html" in head[:4096].lower() else ""
            raise SourceError(source, "not a feed or media file" + (f" ({kind})" if kind else "")) from None
        raise


# ---------------------------------------------------------------------------------------------
# yt-dlp


def _ytdlp_specific(url: str) -> bool:
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


def _short(e: BaseException) -> str:
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


def _base_opts(logger: _YdlLogger) -> dict:
    return {"quiet": True, "no_warnings": True, "noprogress": True, "logger": logger, "cachedir": False,
            "socket_timeout": TIMEOUT, "extractor_retries": 1, "http_headers": {"User-Agent": USER_AGENT}}


def _resolve_ytdlp(url: str, source: str) -> list[Episode]:
    import yt_dlp

    opts = _base_opts(_YdlLogger()) | {"extract_flat": "in_playlist", "skip_download": True}
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(url, download=False, process=False)
            episodes = list(_walk(ydl, info, source, {}, 0))
    except (yt_dlp.utils.YoutubeDLError, OSError) as e:
        raise SourceError(source, _short(e)) from None
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
    return Episode(
        id=safe_id(f"{key.lower()}-{vid}"), title=str(e.get("title") or e.get("fulltitle") or vid), source=source,
        media_url=page, webpage_url=page,
        show=str(e.get("channel") or e.get("uploader") or parent.get("channel") or parent.get("uploader") or ""),
        published=published, duration=float(duration) if isinstance(duration, (int, float)) else None,
        extractor=key,
    )


def safe_id(text: str) -> str:
    """Restrict an id to [A-Za-z0-9_-] so it can be used as a file name."""
    s = _UNSAFE_ID.sub("_", text).strip("_")
    if len(s) > 100:
        s = s[:80] + "-" + sha12(text)
    return s


# ---------------------------------------------------------------------------------------------
# download


class _TooBig(Exception):
    pass


def download(episode: Episode, cache_dir: Path, *, max_bytes: int = 4 * 2**30, progress=None) -> Path:
    """Local path of the episode's media, downloading it into cache_dir (as <id>.<ext>) if needed."""
    if episode.local:
        p = Path(episode.media_url)
        if not p.exists():
            raise SourceError(episode.media_url, "no such file")
        if not p.is_file():
            raise SourceError(episode.media_url, "not a regular file")
        return p
    url = episode.media_url
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise SourceError(url, "only http and https URLs can be downloaded")
    name = safe_id(episode.id)
    if not name:
        raise SourceError(url, f"unusable episode id {episode.id!r}")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached = _cached(cache_dir, name)
    if cached is not None:
        return cached
    for stale in cache_dir.glob(f".dl-{name}-*"):
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)

    import yt_dlp

    def hook(d: dict) -> None:
        done = d.get("downloaded_bytes") or 0
        if done > max_bytes:
            raise _TooBig()
        if progress is not None and d.get("status") in ("downloading", "finished"):
            progress(done, d.get("total_bytes") or d.get("total_bytes_estimate"))

    logger = _YdlLogger()
    tmp = Path(tempfile.mkdtemp(prefix=f".dl-{name}-", dir=cache_dir))
    opts = _base_opts(logger) | {
        "format": "bestaudio/best", "outtmpl": {"default": str(tmp / f"{name}.%(ext)s")},
        "max_filesize": max_bytes, "noplaylist": True, "retries": 2, "fragment_retries": 2,
        "continuedl": False, "overwrites": True, "updatetime": False, "progress_hooks": [hook],
        "postprocessors": [],
    }
    try:
        try:
            with yt_dlp.YoutubeDL(opts) as ydl:
                ydl.download([url])
        except _TooBig:
            raise SourceError(url, f"larger than the {max_bytes}-byte limit") from None
        except (yt_dlp.utils.YoutubeDLError, OSError) as e:
            if isinstance(getattr(e, "exc_info", [None, None])[1], _TooBig):
                raise SourceError(url, f"larger than the {max_bytes}-byte limit") from None
            raise SourceError(url, _short(e)) from None
        files = [f for f in tmp.iterdir() if f.is_file() and f.name.startswith(name + ".")
                 and not f.name.endswith((".part", ".ytdl", ".temp", ".tmp")) and f.stat().st_size > 0]
        if not files:
            why = next((_short(Exception(m)) for m in logger.messages if "max-filesize" in m), "")
            raise SourceError(url, why or "download produced no file")
        got = max(files, key=lambda f: f.stat().st_size)
        ext = got.name[len(name) + 1:].lower()
        final = cache_dir / f"{name}.{ext if ext in MEDIA_EXTS else 'media'}"
        os.replace(got, final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cached(cache_dir: Path, name: str) -> Path | None:
    for f in sorted(cache_dir.glob(f"{name}.*")):
        ext = f.name[len(name) + 1:]
        if (ext in MEDIA_EXTS or ext == "media") and f.is_file() and f.stat().st_size > 0:
            return f
    return None
