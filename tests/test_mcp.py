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


async def _session_run(home, steps, errlog=None):
    params = StdioServerParameters(command=sys.executable, args=["-m", "talkindex", "mcp", "--home", str(home)],
                                   env={"PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"})
    async with stdio_client(params, errlog=errlog or sys.stderr) as (read, write):
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


def _raw_calls(home, calls: list[str]) -> tuple[list[dict], str]:
    """JSON-RPC lines written by hand (the SDK's client would turn NaN into null): each `tools/call`
    params text as given; returns the responses and the server's stderr."""
    import subprocess
    import threading

    lines = [json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                 "protocolVersion": "2025-06-18", "capabilities": {},
                 "clientInfo": {"name": "raw", "version": "1"}}}),
             json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})]
    lines += ['{"jsonrpc": "2.0", "id": ' + str(i) + ', "method": "tools/call", "params": ' + c + "}"
              for i, c in enumerate(calls, 1)]
    p = subprocess.Popen([sys.executable, "-m", "talkindex", "mcp", "--home", str(home)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={"PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1", "PATH": "/usr/bin:/bin"})
    got: dict = {}
    watchdog = threading.Timer(120, p.kill)  # a hung server fails the test instead of hanging it
    watchdog.start()
    try:
        p.stdin.write("\n".join(lines) + "\n")
        p.stdin.flush()
        while len(got) < len(calls) + 1:  # every answer before closing stdin (EOF cancels calls in flight)
            line = p.stdout.readline()
            if not line:
                break
            msg = json.loads(line)
            got[msg.get("id")] = msg
        p.stdin.close()
        stderr = p.stderr.read()
    finally:
        watchdog.cancel()
        p.kill()
        p.wait(timeout=30)
    return [got.get(i, {}) for i in range(1, len(calls) + 1)], stderr


def test_mcp_refuses_what_every_face_refuses(tiny_home, tmp_path):
    """One validation for all faces: a bad date, a bool k and non-finite times are tool errors with one
    line each, and nothing but the server's own lines reaches its stderr (no traceback)."""
    eid = sorted((ROOT / "tests" / "fixtures").glob("*.transcript.json"))[0].name.split(".")[0]

    async def steps(session):
        calls = [("search", {"query": "feature store", "since": "garbage"}),
                 ("search", {"query": "feature store", "k": True}),
                 ("search", {"query": "feature store", "k": 101}),
                 ("search", {"query": "x" * 501}),
                 ("get_transcript", {"episode_id": eid, "start": -5, "end": 1e308})]
        return [await session.call_tool(name, args) for name, args in calls]

    with open(tmp_path / "stderr.txt", "w+") as err:
        _, results = anyio.run(_session_run, tiny_home, steps, err)
        err.seek(0)
        stderr = err.read()
    assert "Traceback" not in stderr, stderr
    since, k_bool, k_big, long_q, clamped = results
    assert since.is_error and "not a date" in _payload(since)
    assert k_bool.is_error and "k" in _payload(k_bool)
    assert k_big.is_error and "between 1 and 100" in _payload(k_big)
    assert long_q.is_error and "too long" in _payload(long_q)
    assert not clamped.is_error and _payload(clamped).startswith("[00:00:00]")

    (nan, inf), stderr = _raw_calls(tiny_home, [
        '{"name": "get_transcript", "arguments": {"episode_id": "' + eid + '", "start": NaN, "end": Infinity}}',
        '{"name": "get_transcript", "arguments": {"episode_id": "' + eid + '", "start": -Infinity}}'])
    assert "Traceback" not in stderr, stderr
    for r in (nan, inf):
        assert r["result"]["isError"] and "finite" in r["result"]["content"][0]["text"], r
