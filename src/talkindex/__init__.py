"""talkindex: turn talks, podcasts and videos into a searchable, timestamped index."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Index", "Hit", "Episode", "Segment", "Word", "Chunk", "Transcript", "__version__"]


def __getattr__(name: str):
    # Lazy: `import talkindex` must stay cheap for the CLI's cold start.
    if name == "Index":
        from .api import Index

        return Index
    if name in ("Hit", "Episode", "Segment", "Word", "Chunk", "Transcript"):
        from . import records

        return getattr(records, name)
    raise AttributeError(name)
