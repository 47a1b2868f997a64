"""Typed records that flow between stages. Plain dataclasses: serialise with `dataclasses.asdict`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Episode:
    """One playable item (a video, a feed item, a media file) and where it came from."""

    id: str  # stable: derived from the extractor id / feed guid / file path, never from a title
    title: str
    source: str  # the urls.txt line that produced it
    media_url: str  # what to download (http(s) URL or local absolute path)
    webpage_url: str = ""  # page a human opens; deep links are built on it
    show: str = ""
    published: str | None = None  # ISO date YYYY-MM-DD
    duration: float | None = None  # seconds, if known before download
    extractor: str = ""  # yt-dlp extractor key, "rss" or "local"
    local: bool = False  # media_url is a local file path the user typed


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


@dataclass
class Transcript:
    episode_id: str
    language: str
    duration: float
    segments: list[Segment]
    model: str
    params: dict = field(default_factory=dict)  # decoding parameters, recorded for reproducibility

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]


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
