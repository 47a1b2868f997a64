"""`talkindex mcp`: the index as Model Context Protocol tools over stdio (read-only).

Built on the official `mcp` SDK (2.x: `MCPServer`, formerly `FastMCP`). One warm `Index` serves
every call, so only the first search pays for loading the query encoder. Library errors become
tool errors with their one-line message; stdout carries only the protocol.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from .api import Index
from .errors import TalkindexError
from .formats import hms, render

MAX_K = 50
MAX_QUESTION = 500
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=False)

INSTRUCTIONS = (
    "Search a local index of transcribed talks, podcasts and videos. `search` returns the moments that "
    "answer a question, each with a deep link that starts playback there; `get_transcript` reads an "
    "episode's transcript (optionally a time window) with timestamps; `list_episodes` lists what is indexed."
)


def build_server(home: str | Path | None = None, index: Index | None = None) -> MCPServer:
    """An MCP server whose tools read `home` (or an already open `index`)."""
    index = index or Index(home)
    lock = threading.Lock()
    server = MCPServer("talkindex", instructions=INSTRUCTIONS)

    @server.tool(annotations=READ_ONLY)
    def search(query: str, k: int = 5, show: Optional[str] = None, since: Optional[str] = None,
               episode: Optional[str] = None) -> list[dict]:
        """Find the moments that answer `query`. Filters: show (substring), since (YYYY-MM-DD), episode (id).

        Each hit has episode_id, title, show, start and end (seconds), text and a link that plays from start."""
        if not query.strip() or len(query) > MAX_QUESTION:
            raise ToolError(f"query must be 1 to {MAX_QUESTION} characters")
        if not 1 <= k <= MAX_K:
            raise ToolError(f"k must be between 1 and {MAX_K}")
        try:
            with lock:
                hits = index.ask(query, k=k, show=show or None, since=since or None, episode=episode or None)
        except TalkindexError as e:
            raise ToolError(str(e)) from None
        return [{"episode_id": h.episode_id, "title": h.title, "show": h.show, "published": h.published,
                 "start": h.start, "end": h.end, "text": h.text, "link": h.link,
                 **({"chapter": h.chapter} if getattr(h, "chapter", "") else {}),
                 **({"speaker": h.speaker} if getattr(h, "speaker", "") else {})} for h in hits]

    @server.tool(annotations=READ_ONLY)
    def list_episodes() -> list[dict]:
        """Episodes in the index: id, title, show, published date, duration (s), status, chunk count and
        chapter count with their source (published | detected)."""
        keep = ("id", "title", "show", "published", "duration", "status", "chunks", "chapters", "chapters_source",
                "webpage_url")
        try:
            return [{k: e.get(k) for k in keep} for e in index.episodes()]
        except TalkindexError as e:
            raise ToolError(str(e)) from None

    @server.tool(annotations=READ_ONLY)
    def get_transcript(episode_id: str, start: Optional[float] = None, end: Optional[float] = None,
                       outline: bool = False) -> str:
        """An episode's transcript as `[HH:MM:SS] sentence` lines; `start`/`end` (seconds) keep only that window.

        `outline`: only its chapters instead, `HH:MM:SS  title  (published|detected)` lines."""
        try:
            t = index.transcript(episode_id)
        except TalkindexError as e:
            raise ToolError(str(e)) from None
        if outline:
            return render(t, "outline") or "(no chapters)"
        lo = start if start is not None else float("-inf")
        hi = end if end is not None else float("inf")
        lines = [f"[{hms(s.start)}] " + (f"{s.speaker}: " if getattr(s, "speaker", "") else "") + s.text.strip()
                 for s in t.segments if s.end > lo and s.start < hi]
        return "\n".join(lines) if lines else f"(no speech between {hms(max(lo, 0))} and {hms(min(hi, t.duration))})"

    return server
