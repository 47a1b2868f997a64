"""A mistyped --embedder on a populated home changes nothing (not in the fast layer: loading an unknown
model name goes through sentence-transformers and the hub client, which take their time to say no)."""

from __future__ import annotations

from test_damaged_homes import ask_ids, empty_ingest, run
from test_damaged_homes import home as home  # noqa: F401 - the fixture


def test_mistyped_embedder_changes_nothing(home, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline here anyway: fail at once instead of after retries
    before = (home / "vectors" / "manifest.json").read_text()
    cfg = (home / "config.json").read_text()
    r = empty_ingest(home, tmp_path, "--embedder", "no-such-org/no-such-embedder-xyz")
    assert r.exit_code == 2 and "--embedder" in r.stderr and "nothing was changed" in r.stderr, r.output
    assert (home / "vectors" / "manifest.json").read_text() == before
    assert (home / "config.json").read_text() == cfg
    assert len(ask_ids(home, "dense")) == 3
    assert run("doctor", "--repair", "--home", str(home)).exit_code == 0

