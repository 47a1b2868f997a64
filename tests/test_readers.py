"""Readers rank from the writer's published snapshot (index/catalog.py), never waiting on DuckDB's lock."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import duckdb
import pytest
from conftest import ROOT, ask_json, run_cli

from talkindex import Index
from talkindex.home import Layout
from talkindex.index import catalog
from talkindex.index.duck import OPEN_LOCK, drop_reader
from talkindex.index.store import Store
from talkindex.search.snapshot import DuckRows, SnapshotRows

pytestmark = pytest.mark.fast

QUESTIONS = ["what is feature store drift", "canary deployment", "how do you monitor a model in production"]

# Another process takes DuckDB's write lock (as an ingest's writer does while it commits and checkpoints)
# and holds the writer lock, until stdin closes.
HOLDER = """
import sys, duckdb
from talkindex.home import Layout, WriterLock
layout = Layout(sys.argv[1])
with WriterLock(layout):
    con = duckdb.connect(str(layout.db))
    con.execute("UPDATE episodes SET note = 'held' WHERE id = (SELECT min(id) FROM episodes)")
    print("holding", flush=True)
    sys.stdin.read()
    con.close()
"""


def _answers(idx: Index, **kw) -> list:
    return [[(h.chunk_id, h.episode_id, round(h.start, 3), h.text, h.title, h.chapter, h.link)
             for h in idx.ask(q, k=5, **kw)] for q in QUESTIONS]


def test_ingest_publishes_rows_equal_to_the_database(tiny_home):
    """The catalog and rows files hold exactly what DuckDB holds for every indexed chunk."""
    layout = Layout(tiny_home)
    cat = catalog.load(layout)
    assert cat is not None and cat.complete and cat.episodes
    assert cat.db_key == catalog.file_key(layout.db)
    store = Store(layout)
    idx = Index(tiny_home)
    with store.connect(read_only=True) as con:
        ids = [r[0] for r in con.execute("SELECT id FROM chunks").fetchall()]
        meta = store.indexed_episodes(con)
        assert set(cat.episodes) == set(meta)
        snap = SnapshotRows(cat, idx.searcher._stored, store).rows(ids, text=True)
        duck = DuckRows(store, idx.searcher.row_cache, con)
        want = duck.rows(ids, text=True)
        assert len(snap) == len(want) == len(ids)
        for cid in ids:
            a, b = snap[cid], want[cid]
            b = {**b, "published": str(b["published"]) if b["published"] else None}
            b.pop("id", None)
            assert a == b, cid
        for filt in ({"episode": next(iter(meta))}, {"show": "samples"}, {"since": "2024-06-01"}, {"show": "SAMPLES"}):
            f = {"episode": None, "show": None, "since": None, **filt}
            got = SnapshotRows(cat, idx.searcher._stored, store).filtered(**f)
            assert {e: sorted(v) for e, v in got.items()} == {e: sorted(v) for e, v in duck.filtered(**f).items()}


def test_ask_does_not_wait_for_a_writer_holding_duckdb(tiny_home, tmp_path):
    """While another process holds DuckDB's write lock and the writer lock, `ask` (API and CLI) answers
    at once, the same as before; a DuckDB reader would wait for the lock (and time out here)."""
    home = tmp_path / "h"
    shutil.copytree(tiny_home, home)
    before = _answers(Index(home))
    cli_before = ask_json(home, QUESTIONS[0])
    with OPEN_LOCK:  # had this process read DuckDB, its idle keeper would block the holder
        drop_reader(str(Layout(home).db))
    env = {"PYTHONPATH": str(ROOT / "src")}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(home)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(duckdb.IOException):  # the lock is really held
            duckdb.connect(str(Layout(home).db), read_only=True)
        t0 = time.monotonic()
        assert _answers(Index(home)) == before
        assert ask_json(home, QUESTIONS[0]) == cli_before
        assert ask_json(home, QUESTIONS[0], "--show", "samples")  # filters too come from the snapshot
        assert time.monotonic() - t0 < 60  # a DuckDB reader would wait LOCK_WAIT_S (30 s) per question
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def test_stale_catalog_falls_back_to_duckdb(tiny_home, tmp_path):
    """A writer killed between a commit and its publication leaves a catalog older than the database:
    readers use DuckDB (same answers) until the next writer republishes."""
    home = tmp_path / "h"
    shutil.copytree(tiny_home, home)
    layout = Layout(home)
    before = _answers(Index(home))
    con = duckdb.connect(str(layout.db))  # a commit nobody published
    con.execute("UPDATE episodes SET title = 'Renamed after publication' WHERE status = 'indexed'")
    con.close()
    idx = Index(home)
    assert idx.searcher.snapshots.current() is None
    assert [p.kind for p in idx.doctor()[0]] == ["reader-snapshot"]
    after = _answers(idx)
    assert [[a[:4] for a in q] for q in after] == [[b[:4] for b in q] for q in before]
    assert all(a[4] == "Renamed after publication" for q in after for a in q)
    assert run_cli("doctor", "--repair", home=home).returncode == 0  # the next writer republishes
    cat = catalog.load(layout)
    assert cat.db_key == catalog.file_key(layout.db)
    assert {e["title"] for e in cat.episodes.values()} == {"Renamed after publication"}
    assert Index(home).searcher.snapshots.current() is not None


def test_home_without_snapshot_gets_one_from_its_next_writer(tiny_home, tmp_path):
    """A home from before catalog.py answers from DuckDB, and `doctor --repair` writes its rows files
    from the chunks table (no re-embedding): then it answers the same from the snapshot."""
    home = tmp_path / "h"
    shutil.copytree(tiny_home, home)
    layout = Layout(home)
    before = _answers(Index(home))
    layout.catalog.unlink()
    for p in layout.episodes_root.glob("*/rows.npz"):
        p.unlink()
    emb = {p: p.stat().st_mtime_ns for p in layout.episodes_root.glob("*/embeddings.npz")}
    idx = Index(home)
    assert idx.searcher.snapshots.current() is None
    assert _answers(idx) == before
    p = run_cli("doctor", "--repair", home=home)
    assert p.returncode == 0 and "published the readers' snapshot" in p.stdout + p.stderr, p.stdout + p.stderr
    assert Index(home).searcher.snapshots.current() is not None
    assert _answers(Index(home)) == before
    assert {p: p.stat().st_mtime_ns for p in emb} == emb  # nothing re-embedded


def test_sentence_vectors_are_read_by_rows_not_held(tiny_home):
    """A reader reads only the rows of sentence vectors it scores (the OS page cache holds the files),
    and ranks exactly as from whole arrays in memory."""
    import numpy as np

    from talkindex.index.npzrows import NpzRows

    idx = Index(tiny_home)
    first = [[(h.chunk_id, h.start, h.score) for h in idx.ask(q, k=5)] for q in QUESTIONS]
    again = [[(h.chunk_id, h.start, h.score) for h in idx.ask(q, k=5)] for q in QUESTIONS]
    views = [v[1] for (_, key), v in idx.searcher._vec_cache.items() if key == "sent_vecs"]
    assert views and all(isinstance(v, NpzRows) for v in views)
    assert idx.searcher._vec_bytes == sum(v[1].nbytes for v in idx.searcher._vec_cache.values() if v[1] is not None)
    assert again == first
    held = Index(tiny_home)
    stored = held.searcher._stored
    held.searcher._stored = lambda e, key: (np.asarray(a) if isinstance(a := stored(e, key), NpzRows) else a)
    assert [[(h.chunk_id, h.start, h.score) for h in held.ask(q, k=5)] for q in QUESTIONS] == first


def test_damaged_rows_file_is_skipped_not_fatal(tiny_home, tmp_path):
    """A rows file whose ids do not match the catalog's range (or is cut) drops that episode's hits only."""
    home = tmp_path / "h"
    shutil.copytree(tiny_home, home)
    layout = Layout(home)
    victim = next(iter(catalog.load(layout).episodes))
    layout.rows(victim).write_bytes(b"PK\x03\x04 cut")
    hits = Index(home).ask(QUESTIONS[0], k=10)
    assert hits and all(h.episode_id != victim for h in hits)


@pytest.mark.parametrize("args,want", [((), 10), (("--nice", "0"), 0), (("--nice", "19"), 19)])
def test_ingest_runs_at_low_cpu_priority(tmp_path, args, want):
    """`talkindex ingest` yields the cores to readers beside it: it runs at niceness 10 unless told
    (measured by the server its feed is fetched from, while the process runs)."""
    import os

    from loopback import routes

    seen: list[int] = []
    child: dict[str, int] = {}

    def enclosure(h):
        seen.append(os.getpriority(os.PRIO_PROCESS, child["pid"]))
        h.send_error(404)

    feed = ('<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>a</title><guid>a</guid>'
            '<enclosure url="http://127.0.0.1:PORT/a.mp3" type="audio/mpeg" length="1"/></item></channel></rss>')
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}
    with routes({"/feed.xml": feed.encode(), "/a.mp3": enclosure}) as (base, _hits):
        p = subprocess.Popen([sys.executable, "-m", "talkindex", "ingest", f"{base}/feed.xml", "--home",
                              str(tmp_path / "h"), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        child["pid"] = p.pid
        _out, err = p.communicate(timeout=300)
    assert p.returncode == 1, err  # the enclosure 404s: named, exit 1
    assert seen and set(seen) == {max(want, os.nice(0))}, seen
