"""Fast layer: the Python API over a tiny home built from committed transcripts (no ASR, seconds)."""

from __future__ import annotations

import json

import pytest
from fast_home import fixture_transcripts

from talkindex import Index
from talkindex.errors import NotFoundError, UsageError
from talkindex.home import IndexConfig, Layout

pytestmark = pytest.mark.fast



def test_ask_finds_the_drift_talk(tiny_home):
    hits = Index(tiny_home).ask("what is feature store drift", k=3)
    assert hits and hits[0].title == "Feature Stores and the Drift You Cannot See"
    h = hits[0]
    assert h.chunk_start <= h.start < h.end  # the start moved to the best sentence, inside the chunk
    assert h.link.startswith("file://") and h.link.endswith(f"#t={int(h.start)}")
    assert h.transcript_source == "asr" and h.media_url.endswith("feature-stores.mp3")


def test_modes_and_filters(tiny_home):
    idx = Index(tiny_home)
    for mode in ("hybrid", "dense", "keyword"):
        assert idx.ask("canary deployment", k=2, mode=mode), mode
    eid = next(e["id"] for e in idx.episodes() if "Shipping" in e["title"])
    hits = idx.ask("feature store", k=5, episode=eid)
    assert hits and {h.episode_id for h in hits} == {eid}
    with pytest.raises(NotFoundError):
        idx.ask("x", episode="nope")
    with pytest.raises(NotFoundError):
        idx.ask("x", show="no such show")
    with pytest.raises(UsageError):
        idx.ask("   ")
    with pytest.raises(UsageError):
        idx.ask("x", k=0)
    with pytest.raises(UsageError):
        idx.ask("x", mode="fuzzy")


def test_config_saved_and_drives_components(tiny_home):
    cfg = Layout(tiny_home).load_config()
    assert cfg == IndexConfig()  # defaults, written with the index
    saved = json.loads((tiny_home / "config.json").read_text())
    assert saved["embedder"] == "all-MiniLM-L6-v2" and saved["chunk"]["max_words"] == cfg.chunk.max_words
    assert Index(tiny_home).searcher.config == cfg


def test_transcript_and_episodes(tiny_home):
    idx = Index(tiny_home)
    eps = idx.episodes()
    assert len(eps) == 3 and all(e["status"] == "indexed" and e["transcript_source"] == "asr" for e in eps)
    t = idx.transcript(eps[0]["id"])
    assert t.segments and t.source == "asr"
    with pytest.raises(NotFoundError):
        idx.transcript("nope")


def test_damaged_transcript_file_is_read_from_the_database(tiny_home, tmp_path):
    import shutil

    home = tmp_path / "h"
    shutil.copytree(tiny_home, home)
    idx = Index(home)
    eid = idx.episodes()[0]["id"]
    Layout(home).transcript(eid).write_text('{"segments": 5}')
    t = idx.transcript(eid)
    assert t.segments and t.episode_id == eid


def test_rechunk_on_config_change(tiny_home, tmp_path):
    """Other chunk options on an existing home re-derive chunks from stored transcripts (no ASR)."""
    import shutil

    from talkindex.home import ChunkOptions
    from talkindex.pipeline import IngestOptions, Pipeline

    home = tmp_path / "h"
    shutil.copytree(tiny_home, home)
    before = sum(e["chunks"] for e in Index(home).episodes())
    pipe = Pipeline(home, IngestOptions(chunk=ChunkOptions(max_words=20)))
    pipe.ingest([])
    after = Index(home).episodes()
    assert all(e["status"] == "indexed" for e in after)
    assert sum(e["chunks"] for e in after) > before
    assert Layout(home).load_config().chunk.max_words == 20
    assert Index(home).ask("feature store drift", k=1)


def test_fixture_transcripts_round_trip():
    for ep, t in fixture_transcripts():
        from talkindex.records import Transcript

        back = Transcript.from_json(t.to_json(ep))
        assert back == t
