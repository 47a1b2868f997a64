"""Chapters: Podcasting 2.0 chapters JSON and yt-dlp's `chapters`, so a hit can name its chapter.

Publishers' chapter titles are short human summaries ("Interview with …"); shown beside a hit they
tell the user where in the episode they land. Ends are filled from the next chapter's start.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ..errors import SourceError
from ..records import Chapter, Episode
from ..textsafe import line
from .decode import decode_text
from .existing import MAX_BYTES, TranscriptUnusable, as_number


def _finish(chapters: list[Chapter], duration: float | None = None) -> list[Chapter]:
    """Sort by start and fill missing (or impossible) ends from the next chapter's start / the duration."""
    chapters = sorted(chapters, key=lambda c: c.start)
    for i, c in enumerate(chapters):
        if c.end is None or c.end <= c.start:
            c.end = chapters[i + 1].start if i + 1 < len(chapters) else duration
            if c.end is not None and c.end < c.start:  # a duration shorter than the chapters claim
                c.end = None
    return chapters


def parse_chapters(body: bytes, duration: float | None = None) -> list[Chapter]:
    """Podcasting 2.0 chapters JSON → chapters (those with `"toc": false` left out), or TranscriptUnusable."""
    if not body or not body.strip():
        raise TranscriptUnusable("empty chapters document")
    if len(body) > MAX_BYTES:
        raise TranscriptUnusable(f"chapters document is larger than {MAX_BYTES // 2**20} MiB")
    try:
        d = json.loads(decode_text(body, ""))
    except (ValueError, RecursionError) as e:
        raise TranscriptUnusable(f"chapters are not JSON ({line(str(e), 120)})") from None
    if not isinstance(d, dict) or not isinstance(d.get("chapters"), list):
        raise TranscriptUnusable("not a Podcasting 2.0 chapters document (no chapters list)")
    out = []
    for c in d["chapters"]:
        if not isinstance(c, dict) or c.get("toc") is False:
            continue
        start = as_number(c.get("startTime"))
        if start is None:
            continue
        title = c.get("title") if isinstance(c.get("title"), str) else ""
        url = c.get("url") if isinstance(c.get("url"), str) else ""
        out.append(Chapter(start=start, title=" ".join(title.split()), end=as_number(c.get("endTime")), url=url))
    if not out:
        raise TranscriptUnusable("chapters document lists no chapters")
    return _finish(out, duration)


def chapters_from_info(info: dict) -> list[Chapter]:
    """yt-dlp's `chapters` field ([{start_time, end_time, title}]) → chapters; [] when absent."""
    out = []
    for c in (info or {}).get("chapters") or []:
        if not isinstance(c, dict):
            continue
        start = as_number(c.get("start_time"))
        if start is not None:
            title = c.get("title") if isinstance(c.get("title"), str) else ""
            out.append(Chapter(start=start, title=" ".join(title.split()), end=as_number(c.get("end_time"))))
    duration = as_number((info or {}).get("duration"))
    return _finish(out, duration)


def chapter_at(chapters: list[Chapter], t: float) -> str:
    """Title of the chapter playing at `t` seconds ("" outside every chapter)."""
    title = ""
    for c in chapters:
        if c.start <= t + 1e-6 and (c.end is None or t < c.end):
            title = c.title
    return title


def fetch_chapters(episode: Episode, fetch: Callable[[str], tuple[bytes, str]]) -> tuple[list[Chapter], list[str]]:
    """The episode's chapters: its chapters JSON when it has one, else those known at resolve time."""
    known = _finish([Chapter(c.start, c.title, c.end, c.url) for c in episode.chapters], episode.duration)
    if not episode.chapters_url:
        return known, []
    try:
        body, _ = fetch(episode.chapters_url)
        return parse_chapters(body, episode.duration), []
    except SourceError as e:
        reason = e.reason
    except OSError as e:
        reason = line(str(e) or type(e).__name__, 120)
    except TranscriptUnusable as e:
        reason = e.reason
    fallback = f"using the {len(known)} chapters known from the source" if known else "detecting chapters instead"
    return known, [f"chapters {episode.chapters_url}: {reason}; {fallback}"]
