"""What a caller may ask for, validated once for every face (CLI, web server, MCP, Python API).

Each operation has one request record whose constructor refuses what talkindex does not serve, with
a `UsageError` (exit 2, HTTP 400, an MCP tool error). Every limit lives here, so the faces cannot
disagree about the largest `k`, the longest question, the modes or what a date or a time is.
Kept free of heavy imports: the CLI's fast `ask` path imports it.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from .errors import UsageError
from .home import ChunkOptions

MAX_K = 100  # the most moments one ask returns
DEFAULT_K = 5
MAX_QUESTION = 500  # characters
MODES = ("hybrid", "dense", "keyword")
DEFAULT_MODE = "dense"  # the ensemble's dense ranker; BM25 fused into it lost on the devsets (issue 19)
FORMATS = ("txt", "srt", "vtt", "json", "outline", "youtube")  # formats.render: transcript, or chapters
DEFAULT_FORMAT = "txt"
MAX_SECONDS = 10 * 365 * 86400.0  # a time past ten years of media is clamped here (renderers stay finite)
# --captions: which existing transcripts come before ASR (transcripts.find_existing reads this)
CAPTION_POLICIES = {"prefer": ("publisher", "captions"), "any": ("publisher", "captions", "auto-captions"),
                    "never": ()}


def check_k(k: object) -> int:
    """`k` as an int in 1..MAX_K; a bool (JSON `true`) or a float is not a count."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise UsageError(f"k must be a whole number between 1 and {MAX_K}")
    return k


def check_question(question: object) -> str:
    """`question` unchanged (search strips it itself), or UsageError when empty or too long."""
    if not isinstance(question, str) or not question.strip():
        raise UsageError("empty question: say what you want to find, e.g. \"what is feature drift\"")
    if len(question) > MAX_QUESTION:
        raise UsageError(f"question too long ({len(question)} characters; at most {MAX_QUESTION})")
    return question


def check_since(since: object) -> str | None:
    """`since` as YYYY-MM-DD (None when absent), or UsageError: the store would silently match nothing."""
    if since is None or since == "":
        return None
    if not isinstance(since, str):
        raise UsageError(f"since {since!r} is not a date like 2024-01-31")
    try:
        return datetime.date.fromisoformat(since.strip()).isoformat()
    except ValueError:
        raise UsageError(f"since {since!r} is not a date like 2024-01-31") from None


def _text(name: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_QUESTION:
        raise UsageError(f"{name} must be text of at most {MAX_QUESTION} characters")
    return value


def seconds(value: object, name: str = "time") -> float | None:
    """A time in seconds from a caller: None stays None; NaN, ±infinity and non-numbers are refused;
    negatives become 0 and huge values MAX_SECONDS."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{name} must be a number of seconds")
    if not math.isfinite(value):
        raise UsageError(f"{name} must be a finite number of seconds, not {value}")
    return clamp_seconds(value)


def clamp_seconds(value: float) -> float:
    """A stored time (already finite) kept within 0..MAX_SECONDS, so renderers never overflow."""
    if value != value:  # NaN
        return 0.0
    return float(min(max(value, 0.0), MAX_SECONDS))


@dataclass(frozen=True)
class AskRequest:
    """One question with its filters. `tuning` carries extra `SearchOptions` fields (evaluation configs)."""

    question: str
    k: int = DEFAULT_K
    mode: str = DEFAULT_MODE
    show: str | None = None
    since: str | None = None  # YYYY-MM-DD
    episode: str | None = None
    tuning: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_question(self.question)
        check_k(self.k)
        if self.mode not in MODES:
            raise UsageError(f"unknown mode {self.mode!r}: use one of {', '.join(MODES)}")
        object.__setattr__(self, "since", check_since(self.since))
        object.__setattr__(self, "show", _text("show", self.show))
        object.__setattr__(self, "episode", _text("episode", self.episode))

    @classmethod
    def of(cls, question: str, k: int = DEFAULT_K, **options) -> AskRequest:
        """From keyword arguments: the filters by name, anything else into `tuning`."""
        known = {n: options.pop(n) for n in ("mode", "show", "since", "episode") if n in options}
        if "mode" in known and known["mode"] is None:
            known.pop("mode")
        return cls(question, k, tuning=options, **known)


@dataclass(frozen=True)
class TranscriptRequest:
    """One episode's transcript: a rendering `format` and an optional window [start, end) in seconds."""

    episode_id: str
    format: str = DEFAULT_FORMAT
    start: float | None = None
    end: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.episode_id, str) or not self.episode_id.strip():
            raise UsageError("give an episode id (see `talkindex list`)")
        if self.format not in FORMATS:
            raise UsageError(f"unknown format {self.format!r}: use one of {', '.join(FORMATS)}")
        object.__setattr__(self, "start", seconds(self.start, "start"))
        object.__setattr__(self, "end", seconds(self.end, "end"))


@dataclass
class IngestOptions:
    """Options of one ingest run. None means "what the home's saved config says" (else the default).

    The defaults here are the CLI's and the batch jobs' (pipelines/) defaults too."""

    model: str | None = None
    device: str = "auto"
    compute_type: str = "auto"
    batch_size: int = 0
    beam_size: int = 1
    embedder: str | list[str] | None = None  # one name, "a+b", or a list: the ensemble (home.split_embedders)
    chunk: ChunkOptions | None = None
    force: bool = False
    max_duration: float | None = None  # seconds; longer media is refused
    max_bytes: int = 4 * 2**30
    captions: str = "prefer"  # prefer | any | never: existing transcripts before ASR
    allow_private_urls: bool = False  # let remote documents point at private/loopback addresses
    # CPU niceness of a process that only ingests (`talkindex ingest`, the batch jobs): on a shared box the
    # readers beside it (ask, serve, mcp) keep the cores they need; alone, it runs at full speed (issue 23)
    nice: int = 10

    def __post_init__(self) -> None:
        if self.captions not in CAPTION_POLICIES:
            raise UsageError(f"--captions {self.captions}: use one of {', '.join(CAPTION_POLICIES)}")

    def lower_priority(self) -> None:
        """Lower this process's CPU priority to `nice` (never raises it; a no-op where unsupported)."""
        import os

        try:
            now = os.nice(0)
            if self.nice > now:
                os.nice(self.nice - now)
        except (AttributeError, OSError):
            pass

    @classmethod
    def from_args(cls, args: Mapping) -> IngestOptions:
        """From parsed command-line options (typer's or argparse's), by field name; others are ignored."""
        return cls(**{f.name: args[f.name] for f in fields(cls) if f.name in args})
