"""Transcript renderers: plain text, SRT, WebVTT, JSON."""

from __future__ import annotations

import html
import json
from dataclasses import asdict

from .records import Transcript
from .requests import FORMATS, clamp_seconds

__all__ = ["FORMATS", "hms", "render", "timestamp"]


def timestamp(seconds: float, sep: str = ",") -> str:
    ms = int(round(clamp_seconds(seconds) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def hms(seconds: float) -> str:
    s = int(clamp_seconds(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def render(t: Transcript, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(asdict(t), ensure_ascii=False, indent=1)
    if fmt == "txt":
        return "\n".join((f"{s.speaker}: " if s.speaker else "") + s.text for s in t.segments) + (
            "\n" if t.segments else "")
    sep = "," if fmt == "srt" else "."
    out = [] if fmt == "srt" else ["WEBVTT", ""]
    for i, s in enumerate(t.segments, 1):
        text = " ".join(s.text.split()) or "…"
        name = " ".join(s.speaker.split())
        if fmt == "vtt":  # cue text is markup: & < > as character references (WebVTT spec), so no "-->" either
            text, name = html.escape(text, quote=False), html.escape(name, quote=False)
        else:
            text = text.replace("-->", "->")
        if name:  # VTT voice tags; SRT has none, so the name leads the text
            text = f"<v {name}>{text}" if fmt == "vtt" else f"{name}: {text}"
        if fmt == "srt":
            out.append(str(i))
        out.append(f"{timestamp(s.start, sep)} --> {timestamp(max(s.end, s.start + 0.001), sep)}")
        out.extend([text, ""])
    return "\n".join(out)
