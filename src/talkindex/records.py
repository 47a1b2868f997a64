"""Typed records that flow between stages, and their JSON (one place serialises them).

Plain dataclasses: `dataclasses.asdict` gives their JSON shape; `Transcript.from_json` reads it back
tolerantly (unknown keys ignored, missing optional keys defaulted) and raises `ValueError` for
anything that is not a transcript, so a damaged file never surfaces as a KeyError or TypeError.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import Enum


class Status(str, Enum):
    """An episode's state. Only TRANSCRIBED/INDEXED episodes are trusted; INDEXED ones are searchable."""

    PENDING = "pending"
    TRANSCRIBED = "transcribed"
    INDEXED = "indexed"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


TRUSTED = (Status.TRANSCRIBED.value, Status.INDEXED.value)

# Where a transcript came from (provenance), best first.
TRANSCRIPT_SOURCES = ("publisher", "captions", "auto-captions", "asr")


@dataclass
class TranscriptRef:
    """A transcript the publisher or platform offers for an episode (not yet fetched)."""

    url: str
    type: str = ""  # MIME type (text/vtt, application/x-subrip, application/json, text/html, …)
    language: str = ""
    rel: str = ""  # Podcasting 2.0 rel="captions" etc.
    source: str = "publisher"  # publisher | captions | auto-captions


@dataclass
class Chapter:
    start: float
    title: str
    end: float | None = None
    url: str = ""
    source: str = "published"  # published (feed, chapters JSON, platform) | detected (from the transcript)


def chapters_of(text: str | None) -> list[Chapter]:
    """Chapters stored as JSON (episodes.chapters); those written before provenance read as published."""
    try:
        return [Chapter(**_known(Chapter, c)) for c in json.loads(text or "[]") if isinstance(c, dict)]
    except (ValueError, TypeError):
        return []


@dataclass
class Episode:
    """One playable item (a video, a feed item, a media file) and where it came from."""

    id: str  # stable: derived from the extractor id / feed guid / file path, never from a title
    title: str
    source: str  # the urls.txt line that produced it, as typed
    media_url: str  # what to download (http(s) URL or local absolute path)
    webpage_url: str = ""  # page a human opens; deep links are built on it
    show: str = ""
    published: str | None = None  # ISO date YYYY-MM-DD
    duration: float | None = None  # seconds, if known before download
    extractor: str = ""  # yt-dlp extractor key, "rss" or "local"
    local: bool = False  # media_url is a local file path the user typed
    language: str = ""  # declared by the feed / extractor, if any
    transcripts: list[TranscriptRef] = field(default_factory=list)  # offered transcripts, best first
    chapters_url: str = ""  # Podcasting 2.0 chapters JSON
    chapters: list[Chapter] = field(default_factory=list)  # chapters known at resolve time (yt-dlp)
    trusted_private: bool = False  # the document naming media_url came from a non-global address
    origin_host: str = ""  # the address (IP) that document was served from; net.Origin for its URLs

    @classmethod
    def from_dict(cls, d: dict) -> Episode:
        d = _known(cls, d)
        d["transcripts"] = [TranscriptRef(**_known(TranscriptRef, t)) for t in d.get("transcripts") or []]
        d["chapters"] = [Chapter(**_known(Chapter, c)) for c in d.get("chapters") or []]
        return cls(**d)


@dataclass
class Word:
    start: float
    end: float
    text: str
    probability: float = 1.0


@dataclass
class Segment:
    start: float
    end: float
    text: str
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    words: list[Word] = field(default_factory=list)
    speaker: str = ""  # from VTT voice tags / JSON transcripts; ASR diarization would fill it too


@dataclass
class Transcript:
    episode_id: str
    language: str
    duration: float
    segments: list[Segment]
    model: str  # the whisper model, or the transcript's URL for publisher/caption transcripts
    params: dict = field(default_factory=dict)  # decoding parameters, recorded for reproducibility
    source: str = "asr"  # publisher | captions | auto-captions | asr
    source_url: str = ""  # where a publisher/caption transcript was fetched from
    word_timing: str = "asr"  # asr (Whisper word timestamps) | estimated (spread over caption cues)
    chapters: list[Chapter] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. "decoded 812 of 1800 s (damaged media)"

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    def to_json(self, episode: Episode | None = None) -> str:
        d = asdict(self)
        if episode is not None:
            d["episode"] = asdict(episode)
        return json.dumps(d, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Transcript:
        """Parse a transcript.json; ValueError (never KeyError/TypeError) when it is not one."""
        try:
            d = json.loads(text)
            if not isinstance(d, dict) or not isinstance(d.get("segments"), list):
                raise ValueError("not a transcript (no segments list)")
            segs = []
            for s in d["segments"]:
                words = [Word(**_known(Word, w)) for w in s.get("words") or []]
                seg = Segment(**{**_known(Segment, s), "words": words})
                seg.start, seg.end = float(seg.start), float(seg.end)
                if not isinstance(seg.text, str):
                    raise ValueError("segment text is not a string")
                segs.append(seg)
            chapters = [Chapter(**_known(Chapter, c)) for c in d.get("chapters") or []]
            t = cls(**{**_known(cls, d), "segments": segs, "chapters": chapters})
            t.duration = float(t.duration)
            if not isinstance(t.episode_id, str) or not isinstance(t.model, str):
                raise ValueError("episode_id/model are not strings")
            return t
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"not a transcript ({type(e).__name__}: {e})") from None

    @staticmethod
    def episode_from_json(text: str | bytes) -> Episode | None:
        """The episode record saved beside a transcript, if any."""
        try:
            d = json.loads(text).get("episode")
            return Episode.from_dict(d) if isinstance(d, dict) else None
        except (ValueError, TypeError, AttributeError):
            return None


def _known(cls, d: dict) -> dict:
    """Only the keys `cls` declares (files written by older/newer versions stay readable)."""
    if not isinstance(d, dict):
        raise TypeError(f"expected an object for {cls.__name__}")
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass
class Chunk:
    episode_id: str
    idx: int  # position within the episode
    start: float
    end: float
    text: str
    id: int | None = None  # assigned by the store
    quality: float = 1.0  # 0..1, lowered for segments Whisper flags as likely hallucination
    first_sentence: int = 0  # sentence index range covered (for answer-precise timestamps)
    last_sentence: int = 0


@dataclass
class Hit:
    rank: int
    score: float
    episode_id: str
    title: str
    show: str
    start: float
    end: float
    text: str
    link: str
    source_url: str
    chunk_id: int = 0
    chunk_start: float = 0.0
    published: str | None = None
    media_url: str = ""  # what a player plays (remote URL, or a local path the server may serve)
    chapter: str = ""  # title of the chapter the hit falls in, when known
    speaker: str = ""  # speaker of the hit's first sentence, when known
    transcript_source: str = "asr"  # publisher | captions | auto-captions | asr
