"""DuckDB: the one place that knows the schema. Episodes, states, transcripts, sentences, chunks.

DuckDB lets one process write and, while it does, no other process may even open the file. So
nobody holds a connection for long: the writer opens, commits one episode's rows in one transaction
and closes; readers open read-only for one query. Both retry briefly on a lock conflict, so `ask`
works while `ingest` runs (it may not see the episode in flight).
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import json
import logging
import os
import random
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from .errors import BusyError
from .records import Chunk, Episode, Transcript

log = logging.getLogger("talkindex")

# DuckDB's Python layer tries `import pandas` on every parameter/result conversion (~34 times per
# question); without pandas each failed import walks sys.path. Record the absence once.
if "pandas" not in sys.modules and importlib.util.find_spec("pandas") is None:
    sys.modules["pandas"] = None  # `import pandas` now fails at once, as it would anyway

SCHEMA_VERSION = 1
LOCK_WAIT_S = 30.0
# DuckDB caches one database instance per file per process; opening and closing connections from
# two threads at once races on that cache ("pandas_scan does not exist", "Unique file handle
# conflict"). The pipeline opens from its main and writer threads, so opens/closes are serialised.
_OPEN_LOCK = threading.Lock()
# A live process (Index.ask in a notebook or server) keeps one read-only DuckDB instance open for
# READER_KEEP_S after its last query: every `duckdb.connect` then reuses the cached instance (and
# its loaded fts extension): ~10 ms per question instead of ~100-300 ms to reopen the file and
# reload fts. The shared lock it holds is released when idle, never taken while an ingest holds
# home/ingest.lock, and dropped before this process opens the file read-write.
READER_KEEP_S = 2.0
_keepers: dict[str, list] = {}  # path -> [connection, last use (monotonic)]
_closer: threading.Thread | None = None


def _ingest_running(db_path: Path) -> bool:
    """True when a writer holds home/ingest.lock (pipeline.WriterLock), in any process."""
    import fcntl

    try:
        fd = os.open(db_path.parent / "ingest.lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _keep_reader(path: str) -> None:
    """Open (or touch) the keeper for `path`; caller holds _OPEN_LOCK."""
    global _closer
    k = _keepers.get(path)
    if k is None:
        try:
            k = _keepers[path] = [duckdb.connect(path, read_only=True), 0.0]
        except duckdb.Error:
            return
    k[1] = time.monotonic()
    if _closer is None or not _closer.is_alive():
        _closer = threading.Thread(target=_close_idle_readers, name="talkindex-duckdb-keeper", daemon=True)
        _closer.start()


def _drop_reader(path: str) -> None:
    """Close the keeper for `path`; caller holds _OPEN_LOCK."""
    k = _keepers.pop(path, None)
    if k is not None:
        k[0].close()


def _close_idle_readers() -> None:
    while True:
        time.sleep(READER_KEEP_S / 4)
        with _OPEN_LOCK:
            now = time.monotonic()
            for path in [p for p, k in _keepers.items() if now - k[1] > READER_KEEP_S]:
                _drop_reader(path)
            if not _keepers:
                return

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS episodes (
    id TEXT PRIMARY KEY, title TEXT, "show" TEXT, source TEXT, media_url TEXT, webpage_url TEXT,
    published DATE, duration DOUBLE, extractor TEXT, local BOOLEAN,
    status TEXT NOT NULL DEFAULT 'pending',   -- pending | transcribed | indexed | failed
    error TEXT, note TEXT, language TEXT, model TEXT, params JSON, transcript_path TEXT,
    embedder TEXT, n_chunks INTEGER DEFAULT 0,
    added_at TIMESTAMP DEFAULT current_timestamp, updated_at TIMESTAMP DEFAULT current_timestamp
);
CREATE TABLE IF NOT EXISTS segments (
    episode_id TEXT, idx INTEGER, start DOUBLE, "end" DOUBLE, text TEXT,
    avg_logprob DOUBLE, no_speech_prob DOUBLE, compression_ratio DOUBLE
);
CREATE TABLE IF NOT EXISTS words (
    episode_id TEXT, seg_idx INTEGER, idx INTEGER, start DOUBLE, "end" DOUBLE, text TEXT,
    probability DOUBLE
);
CREATE TABLE IF NOT EXISTS sentences (
    episode_id TEXT, idx INTEGER, start DOUBLE, "end" DOUBLE, text TEXT, quality DOUBLE
);
CREATE TABLE IF NOT EXISTS chunks (
    id BIGINT PRIMARY KEY, episode_id TEXT, idx INTEGER, start DOUBLE, "end" DOUBLE, text TEXT,
    quality DOUBLE, first_sentence INTEGER, last_sentence INTEGER,
    grams TEXT  -- character n-grams of the words: BM25 over these forgives ASR misspellings
);
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS grams TEXT;
"""
EPISODE_COLS = [
    "id", "title", "show", "source", "media_url", "webpage_url", "published", "duration",
    "extractor", "local",
]
_COLS = ", ".join(f'"{c}"' for c in EPISODE_COLS)


def char_grams(text: str, lo: int = 4, hi: int = 6) -> str:
    """Words → their character n-grams, as space-separated tokens for BM25.

    Whisper's errors are often near-misses ("featured rift" for "feature drift"); matching on
    4–6-character pieces of words still finds them, where whole-word BM25 cannot."""
    out: list[str] = []
    for w in re.findall(r"[a-z]+", text.lower()):
        if len(w) <= lo:
            out.append(w)
            continue
        for n in range(lo, min(hi, len(w)) + 1):
            out.extend(w[i : i + n] for i in range(len(w) - n + 1))
    return " ".join(out)


def fts_extension_path() -> str | None:
    """The signed fts binary shipped by PyPI `duckdb-extension-fts` for this DuckDB version."""
    try:
        import duckdb_extension_fts
    except ImportError:
        return None
    root = Path(duckdb_extension_fts.__file__).parent / "extensions"
    exact = root / f"v{duckdb.__version__}" / "fts.duckdb_extension"
    if exact.exists():
        return str(exact)
    found = glob.glob(str(root / "**" / "fts.duckdb_extension"), recursive=True)
    return found[0] if found else None


class Store:
    def __init__(self, path: Path, writer: bool = False):
        self.path = Path(path)
        # In the writer's process every connection is read-write: DuckDB refuses to mix
        # read-only and read-write connections to one file inside one process.
        self.writer = writer

    # -- connections ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def connect(self, read_only: bool = False, wait: float = LOCK_WAIT_S) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open briefly, retrying while another process holds the file."""
        read_only = read_only and not self.writer
        if read_only and not self.path.exists():
            con = duckdb.connect(":memory:")
            con.execute(SCHEMA)
            try:
                yield con
            finally:
                con.close()
            return
        deadline = time.monotonic() + wait
        delay = 0.01
        while True:
            try:
                with _OPEN_LOCK:
                    if not read_only:
                        _drop_reader(str(self.path))
                    elif READER_KEEP_S > 0 and not _ingest_running(self.path):
                        _keep_reader(str(self.path))
                    else:
                        _drop_reader(str(self.path))
                    con = duckdb.connect(str(self.path), read_only=read_only)
                try:
                    con.execute("SET enable_progress_bar = false")
                except duckdb.InvalidInputException:  # under Jupyter DuckDB wants ipywidgets to change it
                    pass
                break
            except duckdb.IOException as e:
                if "lock" not in str(e).lower() or time.monotonic() > deadline:
                    if "lock" in str(e).lower():
                        raise BusyError(f"{self.path}: database is busy (held by another process)") from e
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.2)
        try:
            yield con
        finally:
            with _OPEN_LOCK:
                con.close()
                if read_only and str(self.path) in _keepers:
                    _keepers[str(self.path)][1] = time.monotonic()

    def init(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as con:
            con.execute(SCHEMA)
            con.execute(
                "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING", [str(SCHEMA_VERSION)]
            )

    def get_meta(self, key: str) -> str | None:
        with self.connect(read_only=True) as con:
            row = con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.connect() as con:
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])

    # -- writer side (only the pipeline calls these) ------------------------------------------
    def upsert_episode(self, ep: Episode) -> None:
        vals = [getattr(ep, c) for c in EPISODE_COLS]
        with self.connect() as con:
            con.execute(
                f"INSERT INTO episodes ({_COLS}) VALUES ({', '.join('?' * len(EPISODE_COLS))}) "
                'ON CONFLICT (id) DO UPDATE SET title = excluded.title, "show" = excluded."show", '
                "webpage_url = excluded.webpage_url, media_url = excluded.media_url, "
                "published = excluded.published, duration = coalesce(excluded.duration, episodes.duration)",
                vals,
            )

    def set_status(self, episode_id: str, status: str, error: str | None = None) -> None:
        with self.connect() as con:
            con.execute(
                "UPDATE episodes SET status = ?, error = ?, updated_at = current_timestamp WHERE id = ?",
                [status, error, episode_id],
            )

    def save_transcript(self, t: Transcript, transcript_path: str, note: str | None = None) -> None:
        """Replace an episode's segments/words and mark it transcribed, in one transaction."""
        segs = [
            (t.episode_id, i, s.start, s.end, s.text, s.avg_logprob, s.no_speech_prob, s.compression_ratio)
            for i, s in enumerate(t.segments)
        ]
        words = [
            (t.episode_id, i, j, w.start, w.end, w.text, w.probability)
            for i, s in enumerate(t.segments) for j, w in enumerate(s.words)
        ]
        with self.connect() as con:
            con.begin()
            self._delete_rows(con, t.episode_id, ("segments", "words", "sentences", "chunks"))
            _bulk(con, "segments", {
                name: [r[i] for r in segs]
                for i, name in enumerate(
                    ["episode_id", "idx", "start", "end", "text", "avg_logprob", "no_speech_prob", "compression_ratio"]
                )
            })
            _bulk(con, "words", {
                name: [w[i] for w in words]
                for i, name in enumerate(["episode_id", "seg_idx", "idx", "start", "end", "text", "probability"])
            })
            con.execute(
                "UPDATE episodes SET status = 'transcribed', error = NULL, note = ?, language = ?, "
                "model = ?, params = ?, transcript_path = ?, duration = ?, n_chunks = 0, embedder = NULL, "
                "updated_at = current_timestamp WHERE id = ?",
                [note, t.language, t.model, json.dumps(t.params), transcript_path, t.duration, t.episode_id],
            )
            con.commit()

    def save_chunks(self, episode_id: str, sentences: list, chunks: list[Chunk], embedder: str) -> list[int]:
        """Replace an episode's sentences and chunks; returns the new chunk ids.

        The episode stays 'transcribed' until its vectors are in the FAISS index too
        (`mark_indexed`), so a crash in between is repaired by re-adding, never trusted."""
        with self.connect() as con:
            con.begin()
            self._delete_rows(con, episode_id, ("sentences", "chunks"))
            base = con.execute("SELECT coalesce(max(id), 0) + 1 FROM chunks").fetchone()[0]
            base = max(base, int(self._get(con, "next_chunk_id") or 1))
            ids = list(range(base, base + len(chunks)))
            _bulk(con, "sentences", {
                "episode_id": [episode_id] * len(sentences), "idx": [s.idx for s in sentences],
                "start": [s.start for s in sentences], "end": [s.end for s in sentences],
                "text": [s.text for s in sentences], "quality": [s.quality for s in sentences],
            })
            _bulk(con, "chunks", {
                "id": ids, "episode_id": [episode_id] * len(chunks), "idx": [c.idx for c in chunks],
                "start": [c.start for c in chunks], "end": [c.end for c in chunks],
                "text": [c.text for c in chunks], "quality": [c.quality for c in chunks],
                "first_sentence": [c.first_sentence for c in chunks],
                "last_sentence": [c.last_sentence for c in chunks],
                "grams": [char_grams(c.text) for c in chunks],
            })
            # Ids are never reused, so a stale FAISS entry can never point at somebody else's chunk.
            con.execute("INSERT OR REPLACE INTO meta VALUES ('next_chunk_id', ?)", [str(base + len(chunks))])
            con.execute(
                "UPDATE episodes SET n_chunks = ?, embedder = ?, updated_at = current_timestamp WHERE id = ?",
                [len(chunks), embedder, episode_id],
            )
            con.commit()
        return ids

    def mark_indexed(self, episode_ids: list[str]) -> None:
        if not episode_ids:
            return
        with self.connect() as con:
            con.execute(
                "UPDATE episodes SET status = 'indexed', updated_at = current_timestamp "
                "WHERE list_contains(?, id) AND status = 'transcribed'",
                [episode_ids],
            )

    def rebuild_fts(self) -> bool:
        """(Re)build the BM25 index over chunk text. Returns False when fts is unavailable."""
        with self.connect() as con:
            if not self._load_fts(con):
                return False
            con.execute(
                "PRAGMA create_fts_index('chunks', 'id', 'text', 'grams', stemmer = 'porter', "
                "stopwords = 'english', lower = 1, strip_accents = 1, overwrite = 1)"
            )
        return True

    @staticmethod
    def _delete_rows(con, episode_id: str, tables: tuple[str, ...]) -> None:
        for table in tables:
            con.execute(f"DELETE FROM {table} WHERE episode_id = ?", [episode_id])

    @staticmethod
    def _get(con, key: str) -> str | None:
        row = con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    # -- reader side ---------------------------------------------------------------------------
    def _load_fts(self, con) -> bool:
        path = fts_extension_path()
        try:
            if path:
                con.execute(f"SET extension_directory = '{_ext_dir(self.path)}'")
                try:  # installed once per home; INSTALL (a file copy + signature check) only when missing
                    con.execute("LOAD fts")
                    return True
                except duckdb.Error:
                    con.execute(f"INSTALL '{path}'")
            con.execute("LOAD fts")
            return True
        except duckdb.Error as e:  # no fts binary for this duckdb version / platform
            log.warning("keyword search unavailable (duckdb fts extension): %s", str(e).splitlines()[0])
            return False

    def fts_ready(self, con) -> bool:
        """True when the BM25 index exists and the extension loads (readers call this per query)."""
        has = con.execute(
            "SELECT 1 FROM duckdb_schemas() WHERE schema_name = 'fts_main_chunks'"
        ).fetchone()
        return bool(has) and self._load_fts(con)

    def episodes(self, status: str | None = None) -> list[dict]:
        with self.connect(read_only=True) as con:
            sql = (
                "SELECT id, title, \"show\", published, duration, status, error, note, n_chunks AS chunks, "
                "source, webpage_url, media_url, model, embedder, language, updated_at FROM episodes"
            )
            args: list = []
            if status:
                sql += " WHERE status = ?"
                args.append(status)
            sql += " ORDER BY published NULLS LAST, title"
            cur = con.execute(sql, args)
            return _dicts(cur)

    def episode(self, episode_id: str) -> dict | None:
        with self.connect(read_only=True) as con:
            rows = _dicts(con.execute("SELECT * FROM episodes WHERE id = ?", [episode_id]))
        return rows[0] if rows else None

    def statuses(self) -> dict[str, str]:
        with self.connect(read_only=True) as con:
            return dict(con.execute("SELECT id, status FROM episodes").fetchall())


def _ext_dir(db_path: Path) -> str:
    d = db_path.parent / "duckdb_extensions"
    d.mkdir(parents=True, exist_ok=True)
    return str(d).replace("'", "''")


def _bulk(con, table: str, columns: dict[str, list]) -> None:
    """Insert columns through a registered numpy scan: executemany is ~100x slower in DuckDB."""
    import numpy as np

    first = next(iter(columns.values()))
    if not first:
        return
    arrays = {k: np.array(v, dtype=object if isinstance(v[0], str) else None) for k, v in columns.items()}
    name = f"_bulk_{table}"
    con.register(name, arrays)
    try:
        cols = ", ".join(f'"{k}"' for k in columns)
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {name}")
    finally:
        con.unregister(name)


def _dicts(cur) -> list[dict]:
    names = [d[0] for d in cur.description]
    out = []
    for row in cur.fetchall():
        d = dict(zip(names, row))
        for k, v in d.items():
            if hasattr(v, "isoformat"):
                d[k] = v.isoformat()
        out.append(d)
    return out


def atomic_write_text(path: Path, text: str) -> None:
    """Write-then-rename: a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
