"""Recognising a YouTube video in a URL: one parser for deep links (search) and the player (server)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

_YT_ID = re.compile(r"^[A-Za-z0-9_-]{6,20}$")


def youtube_id(url: str | None) -> str | None:
    """The video id of a YouTube watch/short/live/embed or youtu.be URL, else None."""
    parts = urlsplit(url or "")
    host = parts.netloc.lower().removeprefix("www.").removeprefix("m.")
    vid = None
    if host in ("youtube.com", "music.youtube.com") and parts.path == "/watch":
        vid = parse_qs(parts.query).get("v", [None])[0]
    elif host == "youtu.be":
        vid = parts.path.strip("/")
    elif host == "youtube.com" and parts.path.startswith(("/shorts/", "/live/", "/embed/")):
        vid = parts.path.split("/")[2]
    return vid if vid and _YT_ID.match(vid) else None
