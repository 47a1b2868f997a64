"""Tolerant RSS 2.0 / RSS 1.0 / Atom parsing (standard library only).

Uses SAX with namespace processing switched off, so feeds with unbound or non-standard namespace
prefixes still parse; elements are matched on their local name. External entities are never
resolved. A feed that breaks off half-way keeps the items read before the break.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import hashlib
import html.entities
import logging
import math
import posixpath
import re
import xml.sax
import xml.sax.handler
from dataclasses import dataclass, field
from urllib.parse import unquote, urljoin, urlsplit

from talkindex.errors import SourceError
from talkindex.records import Episode

log = logging.getLogger("talkindex")

MEDIA_EXTS = frozenset({
    "mp3", "m4a", "m4b", "aac", "wav", "flac", "ogg", "oga", "opus", "mp4", "m4v", "mov", "webm", "mkv",
    "mka", "wma", "aiff", "aif", "alac", "amr", "3gp", "ts",
})
GENERIC_MIME = ("", "application/octet-stream", "binary/octet-stream", "application/x-unknown")

_FEED_ROOT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(rss|feed|RDF)[\s>/]")
_HTML_START = re.compile(rb"<(!doctype\s+html|html)[\s>]", re.IGNORECASE)
_ENTITY = re.compile(r"&(?!(?:#[0-9]+|#x[0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);)")
_NAMED = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")
_XML_ENTITIES = {"amp", "lt", "gt", "quot", "apos"}


@dataclass
class FeedItem:
    title: str = ""
    alt_title: str = ""  # itunes:title and friends, used when <title> is empty
    link: str = ""
    guid: str = ""
    published: str | None = None
    updated: str | None = None
    duration: float | None = None
    author: str = ""
    enclosures: list[tuple[str, str]] = field(default_factory=list)  # (url, mime type)
    media_content: list[tuple[str, str]] = field(default_factory=list)  # fallback enclosures


@dataclass
class Feed:
    title: str = ""
    author: str = ""
    link: str = ""
    items: list[FeedItem] = field(default_factory=list)


def looks_like_feed(head: bytes) -> bool:
    """Content sniffing on the first bytes of a document: an RSS/Atom/RDF root element, not HTML."""
    text = _strip_prolog_ws(head)
    if not text.startswith(b"<") or _HTML_START.match(text):
        return False
    return bool(_FEED_ROOT.search(text[:65536]))


def parse_duration(text: str | None) -> float | None:
    """itunes:duration: "SS", "MM:SS", "HH:MM:SS", optionally with fractions -> seconds."""
    if not text:
        return None
    parts = text.strip().split(":")
    if not 1 <= len(parts) <= 3:
        return None
    total = 0.0
    try:
        for p in parts:
            v = float(p)
            if v < 0 or not math.isfinite(v):
                return None
            total = total * 60 + v
    except ValueError:
        return None
    return total if 0 < total < 10 * 24 * 3600 else None


def parse_date(text: str | None) -> str | None:
    """RFC 822 (pubDate) or ISO 8601 (Atom, dc:date) -> "YYYY-MM-DD" in the date's own time zone."""
    if not text:
        return None
    text = text.strip()
    m = re.match(r"(\d{4})-(\d{2})-(\d{2})", text)
    try:
        if m:
            return _dt.date(int(m[1]), int(m[2]), int(m[3])).isoformat()
        t = email.utils.parsedate_tz(text)
        if t:
            return _dt.date(t[0], t[1], t[2]).isoformat()
    except (ValueError, OverflowError):
        pass
    return None


def parse_feed(data: bytes) -> Feed:
    """Parse RSS/Atom bytes. Raises ValueError when nothing feed-like can be read."""
    data = _strip_prolog_ws(data)
    handler = _Handler()
    try:
        _sax_parse(data, handler)
    except xml.sax.SAXException as first:
        log.debug("feed does not parse as XML (%s); retrying after repair", first)
        handler = _Handler()
        try:
            _sax_parse(_repair(data), handler)
        except xml.sax.SAXException as second:
            if not handler.feed.items:
                raise ValueError(f"not well-formed XML ({second.getMessage()})") from None
            log.warning("feed is broken after %d items (%s); using those", len(handler.feed.items),
                        second.getMessage())
    if not handler.seen_root:
        raise ValueError("not an RSS or Atom feed")
    return handler.feed


def feed_episodes(data: bytes, feed_url: str, final_url: str, source: str) -> list[Episode]:
    """Episodes of a fetched feed (enclosures resolved against final_url, http/https only)."""
    try:
        feed = parse_feed(data)
    except ValueError as e:
        raise SourceError(source, f"cannot parse feed: {e}") from None
    show = feed.title or feed.author
    episodes: list[Episode] = []
    seen: set[str] = set()
    refused = 0
    for item in feed.items:
        encs = [(u, t) for u, t in item.enclosures if _playable_enclosure(u, t)] or item.media_content
        if not encs:
            continue
        enc_url = urljoin(final_url, encs[0][0])
        if urlsplit(enc_url).scheme.lower() not in ("http", "https"):
            refused += 1
            log.warning("%s: skipping item %r: enclosure URL scheme not allowed (%s)", source,
                        clip(item.title), clip(enc_url))
            continue
        ep_id = "rss-" + sha12(feed_url + "\n" + (item.guid or enc_url))
        if ep_id in seen:
            continue
        seen.add(ep_id)
        link = urljoin(final_url, item.link) if item.link else ""
        if urlsplit(link).scheme.lower() not in ("http", "https"):
            link = enc_url
        name = unquote(posixpath.basename(urlsplit(enc_url).path))
        episodes.append(Episode(
            id=ep_id, title=item.title or item.alt_title or name or ep_id, source=source, media_url=enc_url,
            webpage_url=link, show=show, published=item.published or item.updated, duration=item.duration,
            extractor="rss",
        ))
    if not episodes:
        if refused:
            raise SourceError(source, f"feed has no playable items ({refused} enclosure URLs with a "
                                      "scheme other than http/https refused)")
        raise SourceError(source, "feed has no audio or video items" if feed.items else "feed has no items")
    return episodes


def _playable_enclosure(url: str, mime: str) -> bool:
    mime = mime.lower()
    if "audio" in mime or "video" in mime:
        return True
    ext = url_ext(url)
    return mime in GENERIC_MIME and (ext in MEDIA_EXTS or ext == "")


def url_ext(url: str) -> str:
    name = posixpath.basename(urlsplit(url).path)
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def sha12(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def clip(s: str, n: int = 80) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _strip_prolog_ws(data: bytes) -> bytes:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data  # UTF-16: leave it to the XML parser
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.lstrip(b" \t\r\n")


def _sax_parse(data: bytes, handler: _Handler) -> None:
    parser = xml.sax.make_parser()
    parser.setFeature(xml.sax.handler.feature_namespaces, False)
    parser.setFeature(xml.sax.handler.feature_external_ges, False)
    parser.setFeature(xml.sax.handler.feature_external_pes, False)
    parser.setContentHandler(handler)
    parser.setErrorHandler(xml.sax.handler.ErrorHandler())
    parser.feed(data)
    parser.close()


def _repair(data: bytes) -> bytes:
    """Common breakage: HTML named entities (&nbsp;) and bare '&' in text/URLs."""
    m = re.match(rb"<\?xml[^>]*encoding=[\"']([A-Za-z0-9._-]+)", data)
    enc = m.group(1).decode("ascii") if m else "utf-8"
    try:
        text = data.decode(enc, errors="replace")
    except LookupError:
        text = data.decode("utf-8", errors="replace")
        enc = "utf-8"

    def named(mo: re.Match) -> str:
        name = mo.group(1)
        if name in _XML_ENTITIES:
            return mo.group(0)
        cp = html.entities.name2codepoint.get(name)
        return f"&#{cp};" if cp else f"&amp;{name};"

    text = _NAMED.sub(named, _ENTITY.sub("&amp;", text))
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", text)
    return text.encode(enc, errors="replace")


def _local(name: str) -> str:
    return name.rsplit(":", 1)[-1].lower()


class _Handler(xml.sax.handler.ContentHandler):
    def __init__(self) -> None:
        super().__init__()
        self.feed = Feed()
        self.seen_root = False
        self.stack: list[str] = []  # raw qualified names, lower-cased
        self.text: list[list[str]] = []
        self.item: FeedItem | None = None
        self.item_depth = -1

    def startElement(self, name, attrs):
        qname = name.lower()
        local = _local(qname)
        if not self.stack and local in ("rss", "feed", "rdf"):
            self.seen_root = True
        self.stack.append(qname)
        self.text.append([])
        depth = len(self.stack)
        if local in ("item", "entry") and self.item is None:
            self.item = FeedItem()
            self.item_depth = depth
            return
        if self.item is not None:
            if depth == self.item_depth + 1:
                if qname == "enclosure" and attrs.get("url"):
                    self.item.enclosures.append((attrs["url"].strip(), (attrs.get("type") or "").strip()))
                elif qname == "link" and attrs.get("href"):  # Atom
                    rel = (attrs.get("rel") or "alternate").lower()
                    href = attrs["href"].strip()
                    if rel == "enclosure":
                        self.item.enclosures.append((href, (attrs.get("type") or "").strip()))
                    elif rel == "alternate" and not self.item.link:
                        self.item.link = href
            if local == "content" and qname != "content" and attrs.get("url"):  # media:content
                mime = (attrs.get("type") or "").strip()
                medium = (attrs.get("medium") or "").lower()
                if medium in ("audio", "video") or _is_av(mime):
                    self.item.media_content.append((attrs["url"].strip(), mime or medium + "/*"))

    def characters(self, content):
        if self.text:
            self.text[-1].append(content)

    def endElement(self, name):
        qname = name.lower()
        local = _local(qname)
        depth = len(self.stack)
        text = "".join(self.text.pop()).strip() if self.text else ""
        parent = _local(self.stack[-2]) if depth >= 2 else ""
        if self.stack:
            self.stack.pop()
        item = self.item
        if item is not None:
            if depth == self.item_depth:
                self.feed.items.append(item)
                self.item = None
                return
            if depth == self.item_depth + 1:
                self._item_field(item, qname, local, text)
            elif local == "name" and parent == "author" and not item.author:
                item.author = text
            return
        if parent in ("channel", "feed"):
            if qname == "title" and not self.feed.title:
                self.feed.title = " ".join(text.split())
            elif local == "author" and not self.feed.author:
                self.feed.author = text
            elif qname == "link" and text and not self.feed.link:
                self.feed.link = text
        elif local == "name" and parent == "author" and not self.feed.author:
            self.feed.author = text

    @staticmethod
    def _item_field(item: FeedItem, qname: str, local: str, text: str) -> None:
        if "title" in local:
            text = " ".join(text.split())
        if qname == "title":
            item.title = item.title or text
        elif local == "title" and ":" in qname and not qname.startswith("media:"):
            item.alt_title = item.alt_title or text
        elif qname == "link" and text and not item.link:
            item.link = text
        elif qname in ("guid", "id") and text:
            item.guid = item.guid or text
        elif qname in ("pubdate", "published", "dc:date", "issued"):
            item.published = item.published or parse_date(text)
        elif qname in ("updated", "modified"):
            item.updated = item.updated or parse_date(text)
        elif local == "duration" and ":" in qname and item.duration is None:
            item.duration = parse_duration(text)
        elif local in ("author", "creator") and text and not item.author:
            item.author = text


def _is_av(mime: str) -> bool:
    mime = mime.lower()
    return "audio" in mime or "video" in mime
