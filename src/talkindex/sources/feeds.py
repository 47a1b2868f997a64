"""Podcast feeds (RSS 2.0 / RSS 1.0 / Atom) -> `Episode`s, parsed by feedparser.

feedparser does the tolerant parsing (charsets from the HTTP header, XML declaration or BOM; Atom and
RDF; bozo feeds with unbound prefixes or HTML entities, through its loose parser). This module keeps
only the project's rules: which enclosure is playable, stable episode ids (from the guid or the
enclosure URL, never the title; unchanged from the hand-written parser this replaced, so existing
homes keep their ids), which URL schemes a remote feed may point at, and durations/dates. It also
reads the Podcasting 2.0 `<podcast:transcript>` (all of them: feedparser alone keeps only the last)
and `<podcast:chapters>` tags, plus Podlove simple chapters.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import hashlib
import html.entities
import io
import logging
import math
import posixpath
import re
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit
from xml.parsers import expat

import feedparser
import feedparser.mixin

from talkindex.errors import SourceError
from talkindex.records import Chapter, Episode, TranscriptRef
from talkindex.textsafe import clip

log = logging.getLogger("talkindex")

MEDIA_EXTS = frozenset({
    "mp3", "m4a", "m4b", "aac", "wav", "flac", "ogg", "oga", "opus", "mp4", "m4v", "mov", "webm", "mkv",
    "mka", "wma", "aiff", "aif", "alac", "amr", "3gp", "ts",
})
GENERIC_MIME = ("", "application/octet-stream", "binary/octet-stream", "application/x-unknown")
MAX_ITEMS = 25_000  # feedparser costs ~1 ms an item: a 20 MB feed of tiny items would take minutes
ALLOWED_SCHEMES = ("http", "https")

# Transcript formats, best first: timed formats (cues we can seek to) before plain text/HTML.
TRANSCRIPT_TYPES = ("text/vtt", "application/x-subrip", "application/srt", "text/srt", "application/json",
                    "text/html", "text/plain")
_TRANSCRIPT_EXT = {"vtt": "text/vtt", "srt": "application/x-subrip", "json": "application/json",
                   "html": "text/html", "htm": "text/html", "txt": "text/plain"}
# The Podcasting 2.0 namespace, under the URIs feeds actually declare (the GitHub one came first).
PODCAST_NAMESPACES = (
    "https://podcastindex.org/namespace/1.0",
    "http://podcastindex.org/namespace/1.0",
    "https://github.com/podcastindex-org/podcast-namespace/blob/main/docs/1.0.md",
)

_FEED_ROOT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(rss|feed|RDF)[\s>/]")
_HTML_START = re.compile(rb"<(!doctype\s+html|html)[\s>]", re.IGNORECASE)
_ISO_DATE = re.compile(r"(\d{4})(-|/|(?=\d{4}(?!\d)))(\d{2})\2(\d{2})")  # 2024-05-06, 2024/05/06, 20240506
_ITEM_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s>/]")
# Repairs for the commonest breakage: bare "&", HTML named entities (&nbsp;), control characters.
_BARE_AMP = re.compile(rb"&(?!(?:#[0-9]+|#x[0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);)")
_NAMED_REF = re.compile(rb"&([A-Za-z][A-Za-z0-9]*);")
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_CDATA = re.compile(rb"(<!\[CDATA\[.*?\]\]>)", re.DOTALL)
_XML_REFS = frozenset({b"amp", b"lt", b"gt", b"quot", b"apos"})
# What feedparser's loose (SGML) parser leaves undecoded in a guid, which a strict XML parse decodes.
_LOOSE_XML_REFS = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&"))
_TRANSCRIPTS_KEY = "talkindex_transcripts"
_CHAPTERS_KEY = "talkindex_chapters"


def looks_like_feed(head: bytes) -> bool:
    """Content sniffing on the first bytes of a document: an RSS/Atom/RDF root element, not HTML."""
    text = _strip_prolog_ws(head, keep_bom=False)
    if not text.startswith(b"<") or _HTML_START.match(text):
        return False
    return bool(_FEED_ROOT.search(text[:65536]))


def parse_duration(text: str | None) -> float | None:
    """itunes:duration: "SS", "MM:SS", "HH:MM:SS", optionally with fractions -> seconds (None if absurd)."""
    total = _clock(text)
    return total if total is not None and 0 < total < 10 * 24 * 3600 else None


def parse_date(text: str | None) -> str | None:
    """RFC 822 (pubDate) or ISO 8601 (Atom, dc:date) -> "YYYY-MM-DD" in the date's own time zone.

    Also "YYYY/MM/DD", "YYYYMMDD" and RFC 822 without a time ("6 May 2024"), which feeds use too.
    feedparser's own date parsing is not used: it converts to UTC and misreads some forms.
    """
    if not text:
        return None
    text = text.strip()
    m = _ISO_DATE.match(text)
    try:
        if m:
            return _dt.date(int(m[1]), int(m[3]), int(m[4])).isoformat()
        t = email.utils.parsedate_tz(text) or email.utils.parsedate_tz(text + " 00:00:00")
        if t:
            return _dt.date(t[0], t[1], t[2]).isoformat()
    except (ValueError, OverflowError):
        pass
    return None


def feed_episodes(data: bytes, feed_url: str, final_url: str, source: str, *,
                  content_type: str | None = None) -> list[Episode]:
    """Episodes of a fetched feed (enclosures resolved against final_url, http/https only).

    content_type is the HTTP Content-Type header: its charset wins over the XML declaration (RFC 3023).
    Ids are "rss-" + sha12(feed_url + "\\n" + (guid or enclosure URL)); duplicates are kept once.
    """
    try:
        parsed = _parse(data, content_type)
    except ValueError as e:
        raise SourceError(source, f"cannot parse feed: {e}") from None
    feed, entries = parsed.feed, parsed.entries
    loose = _loose(parsed.get("bozo_exception"))
    show = _text(feed.get("title")) or _text(feed.get("author"))
    channel_lang = _language(feed.get("language"))
    episodes: list[Episode] = []
    seen: set[str] = set()
    refused = 0
    for entry in entries:
        title = _title(entry)
        enc = _enclosure(entry)
        if enc is None:
            continue
        enc_url = _join(final_url, enc)
        if not _allowed(enc_url):
            refused += 1
            log.warning("%s: skipping item %r: enclosure URL scheme not allowed (%s)", source, clip(title),
                        clip(enc_url or enc))
            continue
        guid = _guid(entry, loose)
        ep_id = "rss-" + sha12(feed_url + "\n" + (guid or enc_url))
        if ep_id in seen:
            continue
        seen.add(ep_id)
        link = _link(entry, final_url) or enc_url
        name = unquote(posixpath.basename(urlsplit(enc_url).path))
        lang = _language(entry.get("language")) or channel_lang
        duration = _duration(entry)
        episodes.append(Episode(
            id=ep_id, title=title or name or ep_id, source=source, media_url=enc_url, webpage_url=link, show=show,
            published=_published(entry), duration=duration, extractor="rss", language=lang,
            transcripts=_transcripts(entry, final_url, lang), chapters_url=_chapters_url(entry, final_url),
            chapters=_psc_chapters(entry),
        ))
    if not episodes:
        if refused:
            raise SourceError(source, f"feed has no playable items ({refused} enclosure URLs with a "
                                      "scheme other than http/https refused)")
        raise SourceError(source, "feed has no audio or video items" if entries else "feed has no items")
    return episodes


def url_ext(url: str) -> str:
    try:
        name = posixpath.basename(urlsplit(url).path)
    except ValueError:  # "http://[not-an-ipv6/": urllib refuses it
        return ""
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def sha12(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------
# parsing


def _parse(data: bytes, content_type: str | None) -> Any:
    """feedparser over the bytes (never a path or URL); ValueError when nothing feed-like is there."""
    data = _repair_if_broken(_strip_prolog_ws(data, keep_bom=True))  # feedparser reads a BOM as a charset hint
    items = sum(1 for _ in _ITEM_TAG.finditer(data))
    if items > MAX_ITEMS:
        raise ValueError(f"more than {MAX_ITEMS} items ({items})")
    headers = {"content-type": content_type} if content_type else None
    try:
        # BytesIO: feedparser opens a str/bytes argument as a file name or URL if it can.
        parsed = feedparser.parse(io.BytesIO(data), response_headers=headers, resolve_relative_uris=False)
    except Exception as e:  # noqa: BLE001 - untrusted bytes must never surface as anything but SourceError
        log.debug("feedparser failed", exc_info=True)
        raise ValueError(f"parser error ({type(e).__name__})") from None
    exc = parsed.get("bozo_exception")
    if parsed.entries:
        if _loose(exc):
            log.warning("feed is not well-formed (%s); parsed %d items leniently", _reason(exc),
                        len(parsed.entries))
        return parsed
    if _loose(exc):
        raise ValueError(f"not well-formed XML ({_reason(exc)})")
    if not parsed.get("version"):
        raise ValueError("not an RSS or Atom feed")
    return parsed


def _repair_if_broken(data: bytes) -> bytes:
    """Escape bare "&", turn HTML named entities into numeric ones, drop control characters: only if not XML.

    feedparser's loose parser would read "Q&A" as "Q&A;" and keep unknown entities as markup; after this
    repair it reads such feeds exactly as a strict parser reads the fixed XML (and as the parser this
    module replaced did). Works on the bytes, which is safe for every ASCII-compatible charset (trail bytes
    of multi-byte charsets are never "&" or control bytes); CDATA sections are left alone.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:4]:
        return data  # UTF-16/32: nothing to do on bytes
    try:
        parser = expat.ParserCreate()  # no namespaces (unbound prefixes are feedparser's business), no DTD fetch
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.Parse(data, True)
        return data
    except (expat.ExpatError, ValueError) as e:
        log.debug("feed is not well-formed XML (%s); repairing entities before parsing", e)

    def named(m: re.Match) -> bytes:
        if m[1] in _XML_REFS:
            return m[0]
        cp = html.entities.name2codepoint.get(m[1].decode("ascii"))
        return b"&#%d;" % cp if cp else b"&amp;" + m[0][1:]

    def fix(part: bytes) -> bytes:
        return _CONTROL.sub(b"", _NAMED_REF.sub(named, _BARE_AMP.sub(b"&amp;", part)))

    return b"".join(p if p.startswith(b"<![CDATA[") else fix(p) for p in _CDATA.split(data))


def _loose(exc: BaseException | None) -> bool:
    """True when feedparser fell back to its loose parser: the XML is broken or its charset unknown.

    feedparser also reports charset overrides and non-XML media types as bozo; those parse strictly.
    """
    return exc is not None and (not isinstance(exc, feedparser.ThingsNobodyCaresAboutButMe)
                                or isinstance(exc, feedparser.CharacterEncodingUnknown))


def _guid(entry: Any, loose: bool) -> str:
    """The guid/id text as a strict XML parse reads it, so ids do not change when a feed turns bozo.

    Only a <guid>/<id> element counts (feedparser records "guidislink" for one): RSS 1.0's rdf:about,
    which feedparser also reports as the id, never did. The loose parser keeps XML entity references in
    ids ("a&amp;b"); bare "&" never reach it (see _repair_if_broken).
    """
    guid = entry.get("id")
    if not isinstance(guid, str) or not dict.__contains__(entry, "guidislink"):
        return ""
    if loose and "&" in guid:
        for ref, char in _LOOSE_XML_REFS:
            guid = guid.replace(ref, char)
    return guid.strip()


def _reason(exc: BaseException | None) -> str:
    msg = exc.getMessage() if hasattr(exc, "getMessage") else str(exc)
    return clip(msg or type(exc).__name__, 200)


def _strip_prolog_ws(data: bytes, keep_bom: bool) -> bytes:
    """Blank lines before `<?xml` are common and make strict XML parsing fail; drop them."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data  # UTF-16: leave it to the XML parser
    bom = b""
    if data.startswith(b"\xef\xbb\xbf"):
        bom, data = data[:3], data[3:]
    return (bom if keep_bom else b"") + data.lstrip(b" \t\r\n")


def _install_podcast_namespace() -> None:
    """Teach feedparser `<podcast:transcript>`/`<podcast:chapters>` as lists (it keeps only the last one).

    feedparser dispatches `prefix:name` to `_start_prefix_name` on its parser mixin; the handlers below
    append each tag's attributes to the current item. Idempotent; affects nothing feedparser already maps.
    """
    mixin = feedparser.mixin._FeedParserMixin
    for uri in PODCAST_NAMESPACES:
        mixin.namespaces.setdefault(uri, "podcast")
        if mixin._matchnamespaces:  # cached lower-cased copy, built by the first parser instance
            mixin._matchnamespaces.setdefault(uri.lower(), "podcast")

    def collect(key: str):
        def start(self, attrs_d: dict) -> None:
            self._get_context().setdefault(key, []).append(dict(attrs_d))
        return start

    for tag, key in (("transcript", _TRANSCRIPTS_KEY), ("chapters", _CHAPTERS_KEY)):
        if not hasattr(mixin, f"_start_podcast_{tag}"):
            setattr(mixin, f"_start_podcast_{tag}", collect(key))


_install_podcast_namespace()


# ---------------------------------------------------------------------------------------------
# one entry


def _text(value: Any) -> str:
    """Whitespace-collapsed text ("" for anything that is not a string)."""
    return " ".join(value.split()) if isinstance(value, str) else ""


def _title(entry: Any) -> str:
    """<title>, else itunes:title and friends (not media:title, which names the media file)."""
    title = _text(entry.get("title"))
    if title:
        return title
    alts = [k for k in entry if k.endswith("_title") and not k.startswith("media_")]
    for key in sorted(alts, key=lambda k: k != "itunes_title"):
        if _text(entry.get(key)):
            return _text(entry[key])
    return ""


def _enclosure(entry: Any) -> str | None:
    """URL of the first playable enclosure (RSS, Atom rel=enclosure, RSS 1.0 enc:), else of an A/V media:content."""
    for enc in entry.get("enclosures") or []:
        url = (enc.get("href") or "").strip()
        if url and _playable_enclosure(url, (enc.get("type") or "").strip()):
            return url
    rdf = entry.get("enc_enclosure")  # RSS 1.0 <enc:enclosure rdf:resource= enc:type=>
    if isinstance(rdf, dict):
        url = (rdf.get("rdf:resource") or rdf.get("enc:url") or rdf.get("url") or "").strip()
        if url and _playable_enclosure(url, (rdf.get("enc:type") or rdf.get("type") or "").strip()):
            return url
    for media in entry.get("media_content") or []:
        url = (media.get("url") or "").strip()
        medium = (media.get("medium") or "").lower()
        if url and (medium in ("audio", "video") or _is_av(media.get("type") or "")):
            return url
    return None


def _playable_enclosure(url: str, mime: str) -> bool:
    mime = mime.lower()
    if _is_av(mime):
        return True
    ext = url_ext(url)
    return mime in GENERIC_MIME and (ext in MEDIA_EXTS or ext == "")


def _is_av(mime: str) -> bool:
    mime = mime.lower()
    return "audio" in mime or "video" in mime


def _join(base: str, url: str) -> str:
    """urljoin, "" for URLs urllib cannot split (which _allowed then refuses)."""
    try:
        return urljoin(base, url)
    except ValueError:
        return ""


def _allowed(url: str) -> bool:
    try:
        return urlsplit(url).scheme.lower() in ALLOWED_SCHEMES
    except ValueError:
        return False


def _link(entry: Any, base: str) -> str:
    """The item's web page: its first alternate link (not a guid feedparser promoted to a link)."""
    for link in entry.get("links") or []:
        if (link.get("rel") or "alternate") == "alternate" and link.get("href"):
            url = _join(base, link["href"].strip())
            return url if _allowed(url) else ""
    return ""


def _published(entry: Any) -> str | None:
    """pubDate / Atom published / issued, else updated / dc:date / modified (the strings: see parse_date)."""
    for key in ("published", "updated"):
        value = dict.get(entry, key)  # plain dict.get: FeedParserDict maps "updated" to "published", with a warning
        if isinstance(value, str) and (date := parse_date(value)):
            return date
    return None


def _duration(entry: Any) -> float | None:
    """itunes:duration (or another namespace's duration), else media:content's duration attribute."""
    keys = sorted((k for k in entry if k.endswith("_duration")), key=lambda k: k != "itunes_duration")
    for key in keys:
        value = entry.get(key)
        if isinstance(value, str) and (d := parse_duration(value)) is not None:
            return d
    for media in entry.get("media_content") or []:
        if (d := parse_duration(media.get("duration"))) is not None:
            return d
    return None


def _language(value: Any) -> str:
    """"EN_us " -> "en-us"; anything else kept as given."""
    return value.strip().replace("_", "-").lower() if isinstance(value, str) else ""


def _transcripts(entry: Any, base: str, language: str) -> list[TranscriptRef]:
    """<podcast:transcript> tags, http(s) only, timed formats first (stable within a format)."""
    refs: list[TranscriptRef] = []
    seen: set[str] = set()
    for attrs in _podcast_tags(entry, _TRANSCRIPTS_KEY, "podcast_transcript"):
        url = _join(base, (attrs.get("url") or "").strip())
        if not (attrs.get("url") or "").strip() or not _allowed(url) or url in seen:
            if attrs.get("url"):
                log.debug("ignoring transcript URL %s", clip(url))
            continue
        seen.add(url)
        mime = (attrs.get("type") or "").split(";")[0].strip().lower() or _TRANSCRIPT_EXT.get(url_ext(url), "")
        refs.append(TranscriptRef(url=url, type=mime, language=_language(attrs.get("language")) or language,
                                  rel=(attrs.get("rel") or "").strip(), source="publisher"))
    rank = {t: i for i, t in enumerate(TRANSCRIPT_TYPES)}
    return sorted(refs, key=lambda r: rank.get(r.type, len(rank)))


def _chapters_url(entry: Any, base: str) -> str:
    for attrs in _podcast_tags(entry, _CHAPTERS_KEY, "podcast_chapters"):
        url = _join(base, (attrs.get("url") or "").strip())
        if (attrs.get("url") or "").strip() and _allowed(url):
            return url
    return ""


def _podcast_tags(entry: Any, key: str, flat_key: str) -> list[dict]:
    """Our collected list; feedparser's own single flattened dict if our handler was not used."""
    tags = entry.get(key)
    if isinstance(tags, list):
        return [t for t in tags if isinstance(t, dict)]
    flat = entry.get(flat_key)
    return [flat] if isinstance(flat, dict) else []


def _psc_chapters(entry: Any) -> list[Chapter]:
    """Podlove simple chapters (<psc:chapters>), inline in the feed."""
    psc = entry.get("psc_chapters")
    chapters = []
    for c in (psc.get("chapters") if isinstance(psc, dict) else None) or []:
        start = _clock(c.get("start"))
        if start is None or start >= 10 * 24 * 3600:
            continue
        href = (c.get("href") or "").strip()
        chapters.append(Chapter(start=start, title=_text(c.get("title")), url=href if _allowed(href) else ""))
    return sorted(chapters, key=lambda c: c.start)


def _clock(text: Any) -> float | None:
    """"SS", "MM:SS", "HH:MM:SS" (fractions allowed) -> seconds >= 0, None if unreadable."""
    if not isinstance(text, str) or not text.strip():
        return None
    parts = text.strip().split(":")
    if len(parts) > 3:
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
    return total
