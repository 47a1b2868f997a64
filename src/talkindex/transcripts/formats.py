"""Transcript renderers: plain text (sentences under chapter headings), SRT, WebVTT, JSON, and the
chapter outline (with provenance) or YouTube description lines (`00:00 Intro`)."""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field

from ..records import Chapter, Transcript
from ..requests import FORMATS, clamp_seconds
from .chunking import Sentence, sentences

__all__ = ["FORMATS", "Section", "hms", "outline", "plain_text", "render", "sections", "timestamp", "youtube"]


@dataclass
class Section:
    """A chapter (None before the first one, or when there are none) and the sentences it holds."""

    chapter: Chapter | None
    sentences: list[Sentence] = field(default_factory=list)


def sections(t: Transcript) -> list[Section]:
    """The transcript as the index's sentences (not caption fragments) grouped under its chapters."""
    chapters = sorted(t.chapters, key=lambda c: c.start)
    out = [Section(None)]
    ci = 0
    for s in sentences(t):
        while ci < len(chapters) and chapters[ci].start <= s.start + 0.05:
            out.append(Section(chapters[ci]))
            ci += 1
        out[-1].sentences.append(s)
    out.extend(Section(c) for c in chapters[ci:])  # chapters past the last sentence (silence, music)
    return [x for x in out if x.chapter is not None or x.sentences]


def youtube_time(seconds: float, long: bool) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if long else f"{s // 60:02d}:{s % 60:02d}"


def outline(t: Transcript) -> str:
    """`HH:MM:SS  title  (published|detected)`, one chapter a line."""
    return "".join(f"{hms(c.start)}  {c.title or '(untitled)'}  ({c.source})\n"
                   for c in sorted(t.chapters, key=lambda c: c.start))


def youtube(t: Transcript) -> str:
    """YouTube description chapters: the first at 00:00 (YouTube requires it), `MM:SS title` lines."""
    chapters = sorted(t.chapters, key=lambda c: c.start)
    long = t.duration >= 3600 or any(c.start >= 3600 for c in chapters)
    return "".join(f"{youtube_time(0 if i == 0 else c.start, long)} {' '.join(c.title.split()) or '(untitled)'}\n"
                   for i, c in enumerate(chapters))


def plain_text(t: Transcript) -> str:
    """Sentences, one a line, under `## HH:MM:SS title` chapter headings; a speaker named when it changes."""
    out: list[str] = []
    speaker = ""
    for sec in sections(t):
        if sec.chapter is not None:
            out += ([""] if out else []) + [f"## {hms(sec.chapter.start)} {sec.chapter.title or '(untitled)'}", ""]
        for s in sec.sentences:
            lead = f"{s.speaker}: " if s.speaker and s.speaker != speaker else ""
            speaker = s.speaker
            out.append(lead + s.text)
    return "\n".join(out) + ("\n" if out else "")


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
        return plain_text(t)
    if fmt == "outline":
        return outline(t)
    if fmt == "youtube":
        return youtube(t)
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
