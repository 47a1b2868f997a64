"""The fast `ask` path's query encoders, started before the imports finish (search/prefetch.py): the same
hits as an ask without them, each model loaded once, and nothing left behind for another question."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from talkindex import Index
from talkindex.embed import onnx
from talkindex.search import prefetch

pytestmark = pytest.mark.fast
pytest.importorskip("onnxruntime")

Q = "what is feature store drift"


def _spy_loads(monkeypatch) -> list[int | None]:
    """The intra-op thread counts of the query encoders built from now on."""
    seen: list[int | None] = []
    real = onnx.OnnxQueryEncoder.__init__

    def spy(self, export_dir, threads=None, **kw):
        seen.append(threads)
        real(self, export_dir, threads, **kw)

    monkeypatch.setattr(onnx.OnnxQueryEncoder, "__init__", spy)
    return seen


def test_prefetched_encoders_give_the_same_hits(tiny_home, monkeypatch):
    expected = Index(tiny_home).ask(Q, k=5)
    names = Index(tiny_home).config.embedders
    threads = _spy_loads(monkeypatch)
    prefetch.start(tiny_home, Q)
    idx = Index(tiny_home)
    assert idx.ask(Q, k=5) == expected
    assert threads == [1] * len(names)  # each model loaded once, by its prefetch thread
    other = "canary deployment"  # not the prefetched question: encoded now, by the same sessions
    assert idx.ask(other, k=3) == Index(tiny_home).ask(other, k=3)
    np.testing.assert_array_equal(idx.searcher.encode([Q]), Index(tiny_home).searcher.encode([Q]))


def test_prefetch_of_a_home_without_index_or_config_is_harmless(tmp_path, tiny_home):
    prefetch.start(tmp_path / "nothing-here", Q)  # no config.json: nothing started
    assert prefetch._pending == {}
    prefetch.start(tiny_home, Q)
    prefetch.start(tiny_home, "another question")  # a new start forgets the old one's encoders
    assert all(a.question == "another question" for a in prefetch._pending.values())
    for a in list(prefetch._pending.values()):
        a.done.wait(60)
    prefetch._pending.clear()


def test_cli_ask_with_prefetch_matches_the_api(tiny_home):
    """Through the real fast path in a new process (keyword mode skips the prefetch)."""
    from conftest import ROOT

    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
    for mode in ("hybrid", "keyword"):
        p = subprocess.run([sys.executable, "-m", "talkindex", "ask", Q, "-k", "3", "--mode", mode, "--json",
                            "--home", str(tiny_home)], capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        got = [(h["episode_id"], h["start"]) for h in json.loads(p.stdout)]
        assert got == [(h.episode_id, h.start) for h in Index(tiny_home).ask(Q, k=3, mode=mode)]


@pytest.mark.parametrize("argv, starts", [
    (["ask", Q, "--json", "--home", "HOME"], True),
    (["ask", Q, "--home=HOME", "-k", "3"], True),
    (["ask", "--home", "HOME", Q], False),  # an option first: left to the parser
    (["ask", Q, "--home", "HOME", "--mode", "keyword"], False),  # perhaps no encoding at all
    (["ask", Q, "--home", "HOME", "--help"], False),
    (["ingest", Q, "--home", "HOME"], False),
])
def test_speculative_start_before_parsing(tiny_home, monkeypatch, argv, starts):
    """`speculate` starts only the plain form; the parsed command line's `start` then keeps its encoders
    (each model loaded once) and the ask gives the same hits."""
    expected = Index(tiny_home).ask(Q, k=5)
    names = Index(tiny_home).config.embedders
    threads = _spy_loads(monkeypatch)
    prefetch.speculate([str(tiny_home) if a == "HOME" else a.replace("HOME", str(tiny_home)) for a in argv])
    assert bool(prefetch._pending) == starts
    prefetch.start(tiny_home, Q)  # what _fast_ask does once the arguments are parsed
    assert Index(tiny_home).ask(Q, k=5) == expected
    assert threads == [1] * len(names)
