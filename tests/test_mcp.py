"""`talkindex mcp` through the official SDK's own stdio client: initialize, list tools, call them."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import ROOT, ask_json, run_cli

mcp = pytest.importorskip("mcp", reason="the mcp SDK is not installed")
anyio = pytest.importorskip("anyio")

from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402


def _payload(result):
    """A tool result's value: structured content if the server sent it, else its text parsed as JSON."""
    if getattr(result, "structured_content", None) is not None:
        sc = result.structured_content
        return sc.get("result", sc) if isinstance(sc, dict) else sc
    text = "".join(c.text for c in result.content if getattr(c, "type", "") == "text")
    try:
        return json.loads(text)
    except ValueError:
        return text


async def _session_run(home, steps):
    params = StdioServerParameters(command=sys.executable, args=["-m", "talkindex", "mcp", "--home", str(home)],
                                   env={"PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"})
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            return init, await steps(session)


def test_mcp_stdio_tools(samples_home):
    question = "what is feature store drift"

    async def steps(session):
        tools = await session.list_tools()
        search = await session.call_tool("search", {"query": question, "k": 3})
        episodes = await session.call_tool("list_episodes", {})
        return tools, search, episodes

    init, (tools, search, episodes) = anyio.run(_session_run, samples_home, steps)
    assert init.server_info.name == "talkindex"
    by_name = {t.name: t for t in tools.tools}
    assert {"search", "list_episodes", "get_transcript"} <= set(by_name)
    assert all(t.annotations and t.annotations.read_only_hint for t in by_name.values())
    assert not search.is_error
    hits = _payload(search)
    cli = ask_json(samples_home, question, "-k", "3")
    assert [(h["title"], h["start"], h["end"], h["text"], h["link"]) for h in hits] == [
        (h["title"], h["start"], h["end"], h["text"], h["link"]) for h in cli]
    eps = _payload(episodes)
    assert {h["episode_id"] for h in cli} <= {e["id"] for e in eps}
    assert len(eps) == 3 and all(e["status"] == "indexed" for e in eps)


def test_mcp_transcript_window_and_errors(samples_home):
    cli = ask_json(samples_home, "what is feature store drift", "-k", "1")[0]
    eid, start = cli["episode_id"], cli["start"]

    async def steps(session):
        window = await session.call_tool("get_transcript", {"episode_id": eid, "start": start, "end": start + 10})
        whole = await session.call_tool("get_transcript", {"episode_id": eid})
        unknown = await session.call_tool("get_transcript", {"episode_id": "no-such-episode"})
        empty = await session.call_tool("search", {"query": "  "})
        outline = await session.call_tool("get_transcript", {"episode_id": eid, "outline": True})
        return window, whole, unknown, empty, outline

    _, (window, whole, unknown, empty, outline) = anyio.run(_session_run, samples_home, steps)
    assert _payload(outline) == run_cli("transcript", eid, "--format", "outline", home=samples_home, check=True).stdout
    assert _payload(outline).startswith("00:00:00  ")  # every episode has chapters (detected here)
    text, full = _payload(window), _payload(whole)
    assert isinstance(text, str) and text.startswith("[00:00:")
    assert cli["text"].split(".")[0][:30] in full
    assert 0 < len(text) < len(full)
    first = text.splitlines()[0]
    h, m, s = (int(x) for x in first[1:9].split(":"))
    assert abs(h * 3600 + m * 60 + s - start) <= 15
    assert unknown.is_error and "no-such-episode" in _payload(unknown)
    assert empty.is_error
