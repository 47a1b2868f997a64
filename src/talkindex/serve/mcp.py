"""`talkindex mcp`: the index as Model Context Protocol tools over stdio (read-only).

Built on the official `mcp` SDK (2.x: `MCPServer`, formerly `FastMCP`). One warm `Index` serves
every call, so only the first search pays for loading the query encoder. Library errors become
tool errors with their one-line message; stdout carries only the protocol.
"""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path
from typing import Annotated, Optional

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from ..api import Index
from ..errors import TalkindexError
from ..requests import DEFAULT_K, AskRequest, TranscriptRequest
from ..transcripts.formats import hms, render

log = logging.getLogger("talkindex")

# Strict: JSON `true` is not k=1 and "5" is not 5 (pydantic would coerce both); AskRequest checks the range.
Count = Annotated[int, Field(strict=True)]
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=False)

INSTRUCTIONS = (
    "Search a local index of transcribed talks, podcasts and videos. `search` returns the moments that "
    "answer a question, each with a deep link that starts playback there; `get_transcript` reads an "
    "episode's transcript (optionally a time window) with timestamps; `list_episodes` lists what is indexed."
)


def _tool(fn):
    """The one place where errors become MCP tool errors: a library error keeps its one-line message;
    anything else is one log line on stderr and a generic tool error, never a traceback."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TalkindexError as e:
            raise ToolError(str(e)) from None
        except Exception as e:  # noqa: BLE001 - a bug or a damaged home must not print a traceback
            text = str(e).splitlines()
            log.error("%s: unexpected %s: %s", fn.__name__, type(e).__name__, (text[0] if text else "")[:300])
            raise ToolError(f"internal error in {fn.__name__} (see the server's log)") from None

    return call


def build_server(home: str | Path | None = None, index: Index | None = None) -> MCPServer:
    """An MCP server whose tools read `home` (or an already open `index`)."""
    index = index or Index(home)
    lock = threading.Lock()
    server = MCPServer("talkindex", instructions=INSTRUCTIONS)

    @server.tool(annotations=READ_ONLY)
    @_tool
    def search(query: str, k: Count = DEFAULT_K, show: Optional[str] = None, since: Optional[str] = None,
               episode: Optional[str] = None) -> list[dict]:
        """Find the moments that answer `query`. Filters: show (substring), since (YYYY-MM-DD), episode (id).

        Each hit has episode_id, title, show, start and end (seconds), text and a link that plays from start."""
        req = AskRequest(query, k, show=show, since=since, episode=episode)
        with lock:
            hits = index.ask(req)
        return [{"episode_id": h.episode_id, "title": h.title, "show": h.show, "published": h.published,
                 "start": h.start, "end": h.end, "text": h.text, "link": h.link,
                 **({"chapter": h.chapter} if getattr(h, "chapter", "") else {}),
                 **({"speaker": h.speaker} if getattr(h, "speaker", "") else {})} for h in hits]

    @server.tool(annotations=READ_ONLY)
    @_tool
    def list_episodes() -> list[dict]:
        """Episodes in the index: id, title, show, published date, duration (s), status, chunk count and
        chapter count with their source (published | detected)."""
        keep = ("id", "title", "show", "published", "duration", "status", "chunks", "chapters", "chapters_source",
                "webpage_url")
        return [{k: e.get(k) for k in keep} for e in index.episodes()]

    @server.tool(annotations=READ_ONLY)
    @_tool
    def get_transcript(episode_id: str, start: Optional[float] = None, end: Optional[float] = None,
                       outline: bool = False) -> str:
        """An episode's transcript as `[HH:MM:SS] sentence` lines; `start`/`end` (seconds) keep only that window.

        `outline`: only its chapters instead, `HH:MM:SS  title  (published|detected)` lines."""
        req = TranscriptRequest(episode_id, start=start, end=end)  # NaN/Infinity: a tool error
        t = index.transcript(req.episode_id)
        if outline:
            return render(t, "outline") or "(no chapters)"
        lo = req.start if req.start is not None else float("-inf")
        hi = req.end if req.end is not None else float("inf")
        lines = [f"[{hms(s.start)}] " + (f"{s.speaker}: " if getattr(s, "speaker", "") else "") + s.text.strip()
                 for s in t.segments if s.end > lo and s.start < hi]
        return "\n".join(lines) if lines else f"(no speech between {hms(max(lo, 0))} and {hms(min(hi, t.duration))})"

    return server
