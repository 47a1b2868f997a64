"""Inputs -> episodes -> local media files.

`read_urls_file` reads a urls.txt, `resolve` expands one input (local file, podcast feed, direct media
URL, or anything yt-dlp understands) into `Episode`s without downloading media, and `download`
fetches one episode's media into a cache directory. yt-dlp is imported lazily (it is slow to import).
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import shutil
import tempfile
import time
import unicodedata
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from talkindex.errors import SourceError
from talkindex.records import Episode
from talkindex.sources import mediacache, net, ytdl
from talkindex.sources.feeds import (
    GENERIC_MIME,
    MEDIA_EXTS,
    feed_episodes,
    looks_like_feed,
    parse_date,
    sha12,
    url_ext,
)
from talkindex.textsafe import clip, line, unquote_name

log = logging.getLogger("talkindex")

TIMEOUT = net.TIMEOUT  # seconds, connect and per read (TALKINDEX_NET_TIMEOUT; tests lower it)
MAX_FEED_BYTES = 20 * 2**20
MAX_DOC_BYTES = 20 * 2**20  # transcripts, chapters
MAX_PAGE_BYTES = 5 * 2**20  # a web page (decompressed) looked at before yt-dlp is asked about it
# What a page that yt-dlp's extractors could play names somewhere (tags, metadata, players, media files).
_PLAYABLE = re.compile(rb"<(?:video|audio|source|iframe|embed|object|track)\b|og:(?:video|audio)|twitter:player"
                       rb"|player|videoobject|audioobject|contenturl|embedurl|youtu|vimeo|soundcloud"
                       rb"|\.(?:mp3|m4a|mp4|m4v|m3u8|mpd|webm|ogg|oga|opus|wav|flac|aac|mov|mkv)\b", re.I)
SNIFF_BYTES = 64 * 1024
MAX_LINE = 4096
USER_AGENT = net.USER_AGENT

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_SEARCH = re.compile(r"^[a-z]+search(?:date)?(?:\d+|all)?:", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# urls.txt


def read_argument(text: str) -> tuple[list[str], list[SourceError]]:
    """The inputs `talkindex ingest ARG` means: a URL (http(s), file://, ytsearch:), a media file, a folder
    of media files, or else a urls file. Inputs keep the spelling the user typed."""
    m = _SCHEME.match(text)
    if m and len(m.group(1)) > 1 and (m.group(1).lower() in ("http", "https", "file") or _SEARCH.match(text)):
        return [text], []
    p = Path(os.path.expanduser(text))
    if p.is_dir():
        found = sorted(str(f) for f in p.iterdir() if f.suffix[1:].lower() in MEDIA_EXTS and f.is_file())
        if not found:
            raise SourceError(text, "a folder with no media files in it (or name a urls file, one URL per line)")
        return found, []
    if p.is_file() and is_media_file(p):
        return [text], []
    if _binary(p):  # one line, not one "not valid UTF-8" per line of it
        raise SourceError(text, "not a text file (expected a media file, or one URL or path per line)")
    return read_urls_file(p)


def _binary(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            return b"\0" in f.read(8192)
    except OSError:
        return False  # read_urls_file names the reason


def is_media_file(p: Path) -> bool:
    """A local file that is a recording (by its name or its first bytes), not a list of URLs."""
    if p.suffix[1:].lower() in MEDIA_EXTS:
        return True
    try:
        with open(p, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return _is_media(head, "", "") and not head.startswith(b"#EXTM3U")


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
        if scheme == "file":  # kept as typed, so messages name it so; `resolve` reads the path
            parts = urlsplit(text)
            if parts.netloc not in ("", "localhost"):
                raise ValueError(f"file URL on another host: {clip(text)!r}")
            return text
        if not (base / text).exists():
            raise ValueError(f"unsupported URL scheme {scheme!r} (use http, https, "
                             f"ytsearchN: or a local path): {clip(text)!r}")
    p = Path(os.path.expanduser(text))
    if not p.is_absolute():
        p = base / p
    return os.path.abspath(p)


# ---------------------------------------------------------------------------------------------
# resolve


def resolve(source: str, *, allow_private: bool | None = None) -> list[Episode]:
    """Expand one input into episodes (no media is downloaded). Raises SourceError naming `source`.

    allow_private: the --allow-private-urls switch (None: net.ALLOW_PRIVATE); a typed URL is always
    fetched, this only lets its redirects leave the typed host's address class."""
    text = source.strip()
    if not text:
        raise SourceError(repr(source), "empty input")
    m = _SCHEME.match(text)
    scheme = m.group(1).lower() if m and len(m.group(1)) > 1 else ""
    if scheme in ("http", "https"):
        if ytdl.specific(text):
            return ytdl.resolve(text, source)
        return ytdl.with_backoff(lambda: _resolve_http(text, source, allow_private), source, forbidden=False)
    if scheme and _SEARCH.match(text):
        return ytdl.resolve(text, source)
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
    tags, duration = mediacache.ffprobe(p)
    path = str(p)
    return Episode(
        id="file-" + sha12(path), title=tags.get("title") or p.stem, source=source, media_url=path,
        webpage_url="file://" + path, show=tags.get("album_artist") or tags.get("artist") or "",
        published=parse_date(tags.get("date")) if len(tags.get("date", "")) >= 10 else None,
        duration=duration, extractor="local", local=True,
    )


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


def _resolve_http(url: str, source: str, allow_private: bool | None = None) -> list[Episode]:
    try:
        with net.open_url(url, origin=None, timeout=TIMEOUT, allow_private=allow_private) as resp:
            final, mime, origin = resp.url, resp.content_type, resp.origin
            head = resp.read_exactly(SNIFF_BYTES)
            if looks_like_feed(head):
                rest = resp.read_exactly(MAX_FEED_BYTES + 1 - len(head))
                if len(head) + len(rest) > MAX_FEED_BYTES:
                    raise SourceError(source, f"feed larger than {MAX_FEED_BYTES // 2**20} MB")
                episodes = feed_episodes(head + rest, url, final, source, content_type=resp.raw_content_type or None)
                for ep in episodes:  # download() holds the URLs the feed names to the feed's origin
                    _set_origin(ep, origin)
                return episodes
            media = _is_media(head, mime, final)
            page = b"" if media else _read_page(resp, head, source)
    except SourceError:
        raise
    except net.NET_ERRORS as e:  # ValueError: urllib rejects malformed URLs ("unknown url type", bad port)
        raise SourceError(source, net.describe(e, TIMEOUT)) from None
    if media:
        name = unquote_name(posixpath.basename(urlsplit(url).path))
        title = name.rsplit(".", 1)[0] if "." in name else name
        return [Episode(id="url-" + sha12(url), title=title or urlsplit(url).hostname or url, source=source,
                        media_url=url, webpage_url=url, extractor="generic")]
    if not _PLAYABLE.search(page):  # yt-dlp would fetch it again, uncapped, only to find nothing
        kind = "an HTML page without playable media" if b"<html" in page[:4096].lower() else ""
        raise SourceError(source, "not a feed or media file" + (f" ({kind})" if kind else ""))
    try:
        return ytdl.resolve(url, source)
    except SourceError as e:
        if "unsupported url" in e.reason.lower():
            kind = "an HTML page without playable media" if b"<html" in head[:4096].lower() else ""
            raise SourceError(source, "not a feed or media file" + (f" ({kind})" if kind else "")) from None
        raise


def _read_page(resp: net.Response, head: bytes, source: str) -> bytes:
    """The rest of a page that is neither feed nor media, decompressed, within MAX_PAGE_BYTES (else
    SourceError): only a page that names something playable goes on to yt-dlp, which fetches it again."""
    body = head + resp.read_exactly(MAX_PAGE_BYTES + 1 - len(head))
    if len(body) > MAX_PAGE_BYTES:
        raise SourceError(source, f"page larger than {MAX_PAGE_BYTES // 2**20} MB, not a feed or media file")
    if body[:2] == b"\x1f\x8b" or body[:1] == b"\x78":  # gzip/zlib although we asked for identity
        inflate = zlib.decompressobj(zlib.MAX_WBITS | 32)
        try:
            out = inflate.decompress(body, MAX_PAGE_BYTES + 1)
        except zlib.error:
            return body
        if len(out) > MAX_PAGE_BYTES or inflate.unconsumed_tail:
            raise SourceError(source, f"page larger than {MAX_PAGE_BYTES // 2**20} MB once decompressed "
                                      "(a compression bomb?), not a feed or media file")
        return out
    return body


def _set_origin(ep: Episode, origin: net.Origin) -> None:
    """Record where the document naming ep's URLs was served from (Episode.trusted_private/origin_host)."""
    ep.trusted_private = origin.private
    ep.origin_host = origin.address


# ---------------------------------------------------------------------------------------------
# download


# A download lands under a temp name, is verified (size = Content-Length, then mediacache.verify) and
# only then renamed into the cache beside its ".ok" record (see mediacache for why).

_MIME_EXT = {"audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/mp4": "m4a", "audio/x-m4a": "m4a", "audio/aac": "aac",
             "audio/ogg": "ogg", "audio/opus": "opus", "audio/wav": "wav", "audio/x-wav": "wav", "audio/flac": "flac",
             "audio/webm": "webm", "video/mp4": "mp4", "video/webm": "webm", "video/quicktime": "mov",
             "video/x-matroska": "mkv", "application/ogg": "ogg"}


def download(episode: Episode, cache_dir: Path, *, max_bytes: int = 4 * 2**30,
             progress: Callable[[int, int | None], None] | None = None, force: bool = False,
             allow_private: bool | None = None, captions_first: str = "") -> Path:
    """Local path of the episode's verified media, downloading it into cache_dir (as <id>.<ext>) if needed.

    force: download again even when a verified copy is cached (--force). allow_private: --allow-private-urls
    (None: net.ALLOW_PRIVATE). Raises SourceError named as `episode_input(episode)` (the input as typed).
    captions_first: a --captions policy; yt-dlp pages raise ytdl.CaptionsFound (before any media byte) when
    their extraction finds caption tracks it takes, added to episode.transcripts."""
    label = episode_input(episode)
    if episode.local:
        p = Path(episode.media_url)
        if not p.exists():
            raise SourceError(label, "no such file")
        if not p.is_file():
            raise SourceError(label, "not a regular file")
        return p
    url = episode.media_url
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise SourceError(label, "only http and https URLs can be downloaded")
    name = ytdl.safe_id(episode.id)
    if not name:
        raise SourceError(label, "unusable episode id")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if force:
        mediacache.discard(cache_dir, name)
    else:
        cached = mediacache.cached(cache_dir, name)
        if cached is not None:
            return cached
    for stale in cache_dir.glob(f".dl-{name}-*"):
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".dl-{name}-", dir=cache_dir))
    try:
        if _direct(episode):
            got = ytdl.with_backoff(lambda: _download_direct(episode, tmp / name, max_bytes, progress, allow_private),
                                    label, forbidden=False)
        else:
            got = ytdl.download(episode, tmp, name, max_bytes, progress, allow_private,
                                label=label, origin=origin_of(episode) if episode.extractor == "rss" else None,
                                captions_first=captions_first)
        try:
            info = mediacache.verify(got)
        except ValueError as e:
            raise SourceError(label, f"not audio or video ({e})") from None
        ext = got.name[len(name) + 1:].lower() if got.name.startswith(name + ".") else ""
        mediacache.discard(cache_dir, name)
        final = cache_dir / f"{name}.{ext if ext in MEDIA_EXTS else 'media'}"
        os.replace(got, final)
        mediacache.write_ok(final, info, url)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def episode_input(ep: Episode) -> str:
    """How errors name an episode: the input as typed, then (for an item of a feed/playlist) its title."""
    src = clip(ep.source.strip(), 300)
    if ep.source.strip() in (ep.media_url, ep.webpage_url) or not ep.title:
        return src
    return f"{src}: {line(ep.title, 80)}"


def origin_of(ep: Episode) -> net.Origin | None:
    """The Origin that URLs named for `ep` are held to; None when ep.media_url is the typed input itself."""
    if ep.source.strip() == ep.media_url and ep.extractor == "generic":
        return None
    if ep.extractor == "rss" and not getattr(ep, "trusted_private", False):
        return net.PUBLIC
    # yt-dlp episodes: the page the user typed named the URLs, so its host's class decides
    o = net.Origin.parse(getattr(ep, "origin_host", "") or "")
    if o is not None:
        return o
    host = urlsplit(ep.source.strip()).hostname or ""  # an older record: the typed feed's host
    try:
        import socket

        return net.Origin.parse(socket.getaddrinfo(host, None)[0][4][0], host) or net.PUBLIC
    except (OSError, UnicodeError, IndexError):
        return net.PUBLIC


def fetch_document(url: str, episode: Episode, *, allow_private: bool | None = None,
                   max_bytes: int = MAX_DOC_BYTES) -> tuple[bytes, str]:
    """(body, Content-Type as sent, charset included) of a transcript/chapters URL the episode's feed
    names, under the same SSRF rule as its media. Raises SourceError(url, reason)."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise SourceError(url, "only http and https URLs can be fetched")
    try:
        doc = net.fetch_doc(url, origin=origin_of(episode), max_bytes=max_bytes, timeout=TIMEOUT,
                            allow_private=allow_private)
    except net.NET_ERRORS as e:
        raise SourceError(url, net.describe(e, TIMEOUT)) from None
    return doc.data, doc.raw_content_type or doc.content_type


def _direct(ep: Episode) -> bool:
    """Plain http(s) media (feed enclosures, typed media URLs): fetched by net, not yt-dlp."""
    return ep.extractor in ("rss", "generic") and url_ext(ep.media_url) not in ("m3u8", "m3u", "mpd")


def _check_head(content_type: str, head: bytes) -> None:
    start = head[:512].lstrip().lower()
    if content_type in ("text/html", "application/xhtml+xml") or start.startswith((b"<!doctype html", b"<html")):
        raise net.NetError("not audio or video: the server sent an HTML page")
    if content_type.startswith("text/") or content_type in ("application/json", "application/xml"):
        raise net.NetError(f"not audio or video: the server sent {content_type}")


def _download_direct(ep: Episode, stem: Path, max_bytes: int, progress, allow_private: bool | None) -> Path:
    ext = url_ext(ep.media_url)
    part = stem.with_name(stem.name + ".part")
    try:
        got = net.download(ep.media_url, part, origin=origin_of(ep), max_bytes=max_bytes, timeout=TIMEOUT,
                           progress=progress, check_head=_check_head, allow_private=allow_private)
    except net.NET_ERRORS as e:
        raise SourceError(episode_input(ep), net.describe(e, TIMEOUT)) from None
    if got.size == 0:
        raise SourceError(episode_input(ep), "the server sent an empty file")
    if ext not in MEDIA_EXTS:
        ext = _MIME_EXT.get(got.content_type, url_ext(got.final_url) or "media")
    final = stem.with_name(f"{stem.name}.{ext if ext in MEDIA_EXTS else 'media'}")
    os.replace(part, final)
    return final
