"""Fast layer: the Python API over a tiny home built from committed transcripts (no ASR, seconds)."""

from __future__ import annotations

import json

import pytest
from fast_home import fixture_transcripts

from talkindex import Index
from talkindex.errors import NotFoundError, UsageError
from talkindex.home import IndexConfig, Layout, default_embedders

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
    assert cfg == IndexConfig(embedders=default_embedders()[0])  # defaults, written with the index
    saved = json.loads((tiny_home / "config.json").read_text())
    assert saved["embedders"] == default_embedders()[0] and saved["chunk"]["max_words"] == cfg.chunk.max_words
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
    from talkindex.ingest.pipeline import IngestOptions, Pipeline

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


QUESTIONS = ("what is feature store drift", "canary deployment", "how do you roll back a model")


def _answers(idx: Index) -> list[list[tuple]]:
    return [[(h.chunk_id, h.episode_id, round(h.start, 3), h.speaker, h.text) for h in idx.ask(q, k=5)]
            for q in QUESTIONS]


def test_hit_starts_same_from_older_embeddings_files(tiny_home, tmp_path):
    """Hits start at the sentence times stored beside the vectors; a home written before those existed
    (no `sent_starts` in embeddings.npz) answers identically from the database."""
    import shutil

    import numpy as np

    home = tmp_path / "h"
    shutil.copytree(tiny_home, home)
    new = _answers(Index(home))
    assert any(h[2] > 0 for a in new for h in a)
    # a process's first question reads rows by id, later ones from the cached table: same answers
    idx = Index(home)
    flipped = [[(h.chunk_id, h.episode_id, round(h.start, 3), h.speaker, h.text) for h in idx.ask(q, k=5)]
               for q in reversed(QUESTIONS)]
    assert flipped[::-1] == new
    for f in Layout(home).episodes_root.glob("*/embeddings.npz"):
        with np.load(f) as z:
            assert "sent_starts" in z.files
            keep = {k: z[k] for k in z.files if not k.startswith(("sent_starts", "sent_speakers"))}
        np.savez(f.with_suffix(".tmp.npz"), **keep)
        f.with_suffix(".tmp.npz").replace(f)
    assert _answers(Index(home)) == new


def test_live_reader_follows_a_reindex(tiny_home, tmp_path):
    """A live Index caches chunk fields; after another writer re-chunks the home (new chunk ids), its
    next answers hold only current chunks, with their current text and times."""
    import shutil

    import duckdb

    from talkindex.home import ChunkOptions
    from talkindex.ingest.pipeline import IngestOptions, Pipeline

    home = tmp_path / "h"
    shutil.copytree(tiny_home, home)
    live = Index(home)
    before = _answers(live)
    Pipeline(home, IngestOptions(chunk=ChunkOptions(max_words=20))).ingest([])
    after = _answers(live)
    con = duckdb.connect(str(Layout(home).db), read_only=True)
    rows = {i: (e, t) for i, e, t in con.execute("SELECT id, episode_id, text FROM chunks").fetchall()}
    con.close()
    assert after != before
    for answer in after:
        assert answer
        for cid, eid, _start, _spk, text in answer:
            assert rows[cid] == (eid, text)
    assert after == _answers(Index(home))  # the live reader answers as a fresh one does


def test_rerank_stage_reorders_by_the_scorer():
    """`SearchOptions.reranker` re-scores the fused top windows (a cross-encoder online); the stage
    keeps the scorer's order whatever its scale."""
    from talkindex.search.ranking import rerank_stage
    from talkindex.search.searcher import SearchOptions

    rows = {i: {"episode_id": f"e{i}", "start": 0.0, "end": 10.0, "quality": 1.0, "first_sentence": 0,
                "last_sentence": 0, "text": f"window {i}"} for i in range(1, 6)}
    dense = {i: 1.0 - i / 10 for i in rows}  # retrieval order 1..5
    got = rerank_stage("q", dense, None, rows, lambda r: None, SearchOptions(k=3, rerank_top=5),
                       lambda q, texts: [-float(t.split()[1]) * 3 for t in texts])  # scores < 0: 1 best
    assert [r.chunk_id for r in got] == [1, 2, 3]
    got = rerank_stage("q", dense, None, rows, lambda r: None, SearchOptions(k=3, rerank_top=5),
                       lambda q, texts: [float(t.split()[1]) for t in texts])
    assert [r.chunk_id for r in got] == [5, 4, 3]


def test_home_with_the_old_grams_column_still_reads_and_writes(tiny_home, tmp_path):
    """New homes have no `chunks.grams` column (unused since bm25.py); a home that has it still
    answers, re-chunks (writes chunk rows) and checks clean."""
    import shutil

    import duckdb

    from talkindex.home import ChunkOptions
    from talkindex.ingest.pipeline import IngestOptions, Pipeline

    con = duckdb.connect(str(Layout(tiny_home).db), read_only=True)
    assert "grams" not in {r[0] for r in con.execute("DESCRIBE chunks").fetchall()}
    con.close()
    home = tmp_path / "old"
    shutil.copytree(tiny_home, home)
    con = duckdb.connect(str(Layout(home).db))
    con.execute("ALTER TABLE chunks ADD COLUMN grams TEXT")
    con.close()
    assert Index(home).ask("feature store drift", k=1)
    Pipeline(home, IngestOptions(chunk=ChunkOptions(max_words=20))).ingest([])
    assert Index(home).ask("feature store drift", k=1)
    assert Index(home).doctor()[0] == []
