"""DuckDB: the one place that knows the schema. Episodes, states, transcripts, sentences, chunks.

DuckDB lets one process write and, while it does, no other process may even open the file. So
nobody holds a connection for long: the writer opens, commits one episode's rows in one transaction
and closes; readers open read-only for one query. Both retry briefly on a lock conflict, so `ask`
works while `ingest` runs (it may not see the episode in flight).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BusyError, HomeError
from ..home import DEFAULT_EMBEDDER, SCHEMA_VERSION, IndexConfig, Layout, ingest_running
from ..records import Chapter, Chunk, Episode, Status, Transcript, chapters_of
from . import catalog
from .catalog import file_key
from .duck import OPEN_LOCK, READER_KEEP_S, bulk_insert, dict_rows, drop_reader, keep_reader, touch_reader

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger("talkindex")

# DuckDB's Python layer tries `import pandas` on every parameter/result conversion (~34 times per
# question); without pandas each failed import walks sys.path. Record the absence once.
if "pandas" not in sys.modules and importlib.util.find_spec("pandas") is None:
    sys.modules["pandas"] = None  # `import pandas` now fails at once, as it would anyway

LOCK_WAIT_S = 30.0
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
    quality DOUBLE, first_sentence INTEGER, last_sentence INTEGER
);  -- homes made before bm25.py also have an unused `grams` column here: every statement names its columns
ALTER TABLE episodes ADD COLUMN IF NOT EXISTS transcript_source TEXT;
ALTER TABLE episodes ADD COLUMN IF NOT EXISTS transcript_url TEXT;
ALTER TABLE episodes ADD COLUMN IF NOT EXISTS word_timing TEXT;
ALTER TABLE episodes ADD COLUMN IF NOT EXISTS chapters JSON;
ALTER TABLE segments ADD COLUMN IF NOT EXISTS speaker TEXT;
ALTER TABLE sentences ADD COLUMN IF NOT EXISTS speaker TEXT;
"""
EPISODE_COLS = [
    "id", "title", "show", "source", "media_url", "webpage_url", "published", "duration",
    "extractor", "local",
]
SEGMENT_COLS = ["idx", "start", "end", "text", "avg_logprob", "no_speech_prob", "compression_ratio", "speaker"]
_COLS = ", ".join(f'"{c}"' for c in EPISODE_COLS)


class Store:
    """The one owner of the schema: every SQL statement of the project is a method here."""

    def __init__(self, layout: Layout, writer: bool = False):
        self.layout = layout  # its writer lock decides whether a reader may keep the file open
        self.path = layout.db
        # In the writer's process every connection is read-write: DuckDB refuses to mix
        # read-only and read-write connections to one file inside one process.
        self.writer = writer
        self._publishing = False

    # -- connections ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def connect(self, read_only: bool = False, wait: float = LOCK_WAIT_S) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open briefly, retrying while another process holds the file."""
        import duckdb  # here, not at the top: a reader ranking from the snapshot (catalog.py) never imports it
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
                with OPEN_LOCK:
                    if not read_only:
                        drop_reader(str(self.path))
                    elif READER_KEEP_S > 0 and not ingest_running(self.layout):
                        keep_reader(str(self.path))
                    else:
                        drop_reader(str(self.path))
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
                    raise HomeError(f"{self.path}: cannot open the database ({str(e).splitlines()[0][:200]})") from e
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.05)  # a waiting reader should get in soon after the writer leaves
            except duckdb.Error as e:  # not a DuckDB file, a newer storage version, …
                raise HomeError(f"{self.path}: cannot open the database ({str(e).splitlines()[0][:200]}); "
                                "move it away and run `talkindex doctor --repair`") from e
        before = None if read_only or self._publishing else file_key(self.path)
        try:
            yield con
        finally:
            with OPEN_LOCK:
                con.close()
                if read_only:
                    touch_reader(str(self.path))
            if before is not None and file_key(self.path) != before:
                self.publish()

    def publish(self) -> None:
        """Publish the readers' snapshot (index/catalog.py) of the database as it now is: called after
        every write connection that changed the file, so readers never need DuckDB's lock. A failure
        (disk full, read-only home) leaves the last catalog, whose stale key sends readers to DuckDB."""
        import duckdb

        self._publishing = True
        try:
            with self.connect() as con:
                indexed = self.indexed_episodes(con)
                ranges = self.chunk_ranges(con)
                others = dict(con.execute("SELECT id, coalesce(\"show\", '') FROM episodes "
                                          "WHERE status <> 'indexed'").fetchall())
            catalog.publish(self.layout, indexed, ranges, others, file_key(self.path))
        except (OSError, duckdb.Error, HomeError) as e:
            log.debug("could not publish the readers' catalog: %s", e)
        finally:
            self._publishing = False

    def prepare_readers(self) -> int:
        """At a writer's start: write the rows file of every indexed episode that lacks one (homes from
        before catalog.py) from the chunks table (no re-embedding), and republish a missing or stale
        catalog (a kill -9 between a commit and its publication). Returns how many rows files were written."""
        with self.connect(read_only=True) as con:
            indexed = [r[0] for r in con.execute(
                "SELECT id FROM episodes WHERE status = 'indexed' ORDER BY id").fetchall()]
            missing = [e for e in indexed if not self.layout.rows(e).exists()]
            for eid in missing:
                got = con.execute("SELECT id, start, \"end\", quality, first_sentence, last_sentence, text "
                                  "FROM chunks WHERE episode_id = ? ORDER BY id", [eid]).fetchall()
                catalog.write_rows(self.layout, eid, [r[0] for r in got], [_ChunkRow(*r[1:]) for r in got])
        cat = catalog.load(self.layout)
        if missing or cat is None or cat.db_key != file_key(self.path):
            self.publish()
        return len(missing)

    def init(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as con:
            con.execute(SCHEMA)
            con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])

    def built_config(self, default: IndexConfig, embedder: str = DEFAULT_EMBEDDER) -> IndexConfig | None:
        """How this home's index was built: its config.json; for a home made before config.json
        existed, `default` with the embedder its database records (else `embedder`, what such homes
        used); None for a new home."""
        saved = self.layout.load_config()
        if saved is None and self.path.exists():
            return default.with_options(embedder=self.get_meta("embedder") or embedder)
        return saved

    def get_meta(self, key: str) -> str | None:
        with self.connect(read_only=True) as con:
            return self._get(con, key)

    def set_meta(self, key: str, value: str) -> None:
        with self.connect() as con:
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])

    # -- writer side (only the pipeline and doctor's repairs call these) -------------------------
    def upsert_episode(self, ep: Episode) -> None:
        self.upsert_episodes([ep])

    def upsert_episodes(self, eps: list[Episode]) -> None:
        """Insert or update many episodes in one connection and transaction (a feed may hold thousands:
        one open/close each cost ~0.1 s)."""
        if not eps:
            return
        row = f"({', '.join('?' * len(EPISODE_COLS))})"
        unique = list({ep.id: ep for ep in eps}.values())  # one statement may not touch a row twice
        with self.connect() as con:
            con.execute("BEGIN")
            for i in range(0, len(unique), 200):  # multi-row VALUES: DuckDB's executemany costs ~5 ms a row
                batch = unique[i:i + 200]
                con.execute(
                    f"INSERT INTO episodes ({_COLS}) VALUES {', '.join([row] * len(batch))} "
                    'ON CONFLICT (id) DO UPDATE SET title = excluded.title, "show" = excluded."show", '
                    "webpage_url = excluded.webpage_url, media_url = excluded.media_url, source = excluded.source, "
                    "published = excluded.published, duration = coalesce(excluded.duration, episodes.duration)",
                    [getattr(ep, c) for ep in batch for c in EPISODE_COLS],
                )
            con.execute("COMMIT")

    def set_status(self, episode_id: str, status: Status | str, error: str | None = None) -> None:
        with self.connect() as con:
            con.execute(
                "UPDATE episodes SET status = ?, error = ?, updated_at = current_timestamp WHERE id = ?",
                [str(status), error, episode_id],
            )

    def set_note(self, episode_id: str, note: str | None) -> None:
        with self.connect() as con:
            con.execute("UPDATE episodes SET note = ? WHERE id = ?", [note, episode_id])

    def save_transcript(self, t: Transcript, transcript_path: str, note: str | None = None) -> None:
        """Replace an episode's segments/words and mark it transcribed, in one transaction."""
        words = [
            (t.episode_id, i, j, w.start, w.end, w.text, w.probability)
            for i, s in enumerate(t.segments) for j, w in enumerate(s.words)
        ]
        with self.connect() as con:
            con.begin()
            self._delete_rows(con, t.episode_id, ("segments", "words", "sentences", "chunks"))
            bulk_insert(con, "segments", {
                "episode_id": [t.episode_id] * len(t.segments), "idx": list(range(len(t.segments))),
                **{c: [getattr(s, c) for s in t.segments] for c in SEGMENT_COLS[1:]},
            })
            bulk_insert(con, "words", {
                name: [w[i] for w in words]
                for i, name in enumerate(["episode_id", "seg_idx", "idx", "start", "end", "text", "probability"])
            })
            chapters = json.dumps([asdict(c) for c in t.chapters]) if t.chapters else None
            con.execute(
                "UPDATE episodes SET status = 'transcribed', error = NULL, note = ?, language = ?, "
                "model = ?, params = ?, transcript_path = ?, duration = ?, n_chunks = 0, embedder = NULL, "
                "transcript_source = ?, transcript_url = ?, word_timing = ?, chapters = ?, "
                "updated_at = current_timestamp WHERE id = ?",
                [note, t.language, t.model, json.dumps(t.params), transcript_path, t.duration,
                 t.source, t.source_url or None, t.word_timing, chapters, t.episode_id],
            )
            con.commit()

    def save_chunks(self, episode_id: str, sentences: list, chunks: list[Chunk], embedder: str,
                    chapters: list[Chapter] | None = None) -> list[int]:
        """Replace an episode's sentences and chunks (and its chapters, when given); returns the new chunk ids.

        The episode stays 'transcribed' until its vectors are in the FAISS index too
        (`mark_indexed`), so a crash in between is repaired by re-adding, never trusted."""
        with self.connect() as con:
            con.begin()
            self._delete_rows(con, episode_id, ("sentences", "chunks"))
            base = con.execute("SELECT coalesce(max(id), 0) + 1 FROM chunks").fetchone()[0]
            base = max(base, int(self._get(con, "next_chunk_id") or 1))
            ids = list(range(base, base + len(chunks)))
            bulk_insert(con, "sentences", {
                "episode_id": [episode_id] * len(sentences), "idx": [s.idx for s in sentences],
                "start": [s.start for s in sentences], "end": [s.end for s in sentences],
                "text": [s.text for s in sentences], "quality": [s.quality for s in sentences],
                "speaker": [getattr(s, "speaker", "") or "" for s in sentences],
            })
            bulk_insert(con, "chunks", {
                "id": ids, "episode_id": [episode_id] * len(chunks), "idx": [c.idx for c in chunks],
                "start": [c.start for c in chunks], "end": [c.end for c in chunks],
                "text": [c.text for c in chunks], "quality": [c.quality for c in chunks],
                "first_sentence": [c.first_sentence for c in chunks],
                "last_sentence": [c.last_sentence for c in chunks],
            })
            # Ids are never reused, so a stale FAISS entry can never point at somebody else's chunk.
            con.execute("INSERT OR REPLACE INTO meta VALUES ('next_chunk_id', ?)", [str(base + len(chunks))])
            con.execute(
                "UPDATE episodes SET n_chunks = ?, embedder = ?, updated_at = current_timestamp WHERE id = ?",
                [len(chunks), embedder, episode_id],
            )
            if chapters is not None:
                self._set_chapters(con, episode_id, chapters)
            con.commit()
        return ids

    def set_chapters(self, episode_id: str, chapters: list[Chapter]) -> None:
        """Replace an episode's chapters (detected ones re-derived for a home from before detection)."""
        with self.connect() as con:
            self._set_chapters(con, episode_id, chapters)

    @staticmethod
    def _set_chapters(con, episode_id: str, chapters: list[Chapter]) -> None:
        con.execute("UPDATE episodes SET chapters = ? WHERE id = ?",
                    [json.dumps([asdict(c) for c in chapters]), episode_id])

    def sentence_rows(self, episode_id: str) -> tuple[list[float], list[str], float]:
        """(starts, texts) of an episode's sentences in order, and its duration."""
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT start, text FROM sentences WHERE episode_id = ? ORDER BY idx",
                               [episode_id]).fetchall()
            dur = con.execute("SELECT duration FROM episodes WHERE id = ?", [episode_id]).fetchone()
        return [r[0] for r in rows], [r[1] for r in rows], float((dur and dur[0]) or 0.0)

    def unchaptered(self) -> list[str]:
        """Indexed episodes that have no chapters recorded yet (homes indexed before detection)."""
        with self.connect(read_only=True) as con:
            return [r[0] for r in con.execute(
                "SELECT id FROM episodes WHERE status = 'indexed' AND chapters IS NULL ORDER BY id").fetchall()]

    def mark_indexed(self, episode_ids: list[str]) -> None:
        if not episode_ids:
            return
        with self.connect() as con:
            con.execute(
                "UPDATE episodes SET status = 'indexed', updated_at = current_timestamp "
                "WHERE list_contains(?, id) AND status = 'transcribed'",
                [episode_ids],
            )

    def requeue_indexed(self, episode_ids: list[str] | None = None, drop_chunks: bool = False) -> None:
        """Indexed → transcribed (all, or these), so the next reconcile re-derives them from transcripts;
        with `drop_chunks` their chunks go too (re-chunking: the old vectors become orphans, then dropped)."""
        if episode_ids is not None and not episode_ids:
            return
        where = "status = 'indexed'" + ("" if episode_ids is None else " AND list_contains(?, id)")
        args = [] if episode_ids is None else [episode_ids]
        with self.connect() as con:
            con.begin()
            if drop_chunks:
                for table in ("chunks", "sentences"):
                    con.execute(f"DELETE FROM {table} WHERE episode_id IN (SELECT id FROM episodes WHERE {where})",
                                args)
            con.execute(f"UPDATE episodes SET status = 'transcribed' WHERE {where}", args)
            con.commit()

    def drop_derived(self, episode_id: str, status: Status | str = Status.PENDING, error: str | None = None) -> None:
        """Forget an episode's chunks and sentences (its transcript is lost): it will be transcribed again."""
        with self.connect() as con:
            con.begin()
            self._delete_rows(con, episode_id, ("chunks", "sentences"))
            con.execute("UPDATE episodes SET status = ?, error = ?, n_chunks = 0 WHERE id = ?",
                        [str(status), error, episode_id])
            con.commit()

    def purge_untrusted_chunks(self) -> int:
        """Drop chunks of failed or pending episodes (they could surface in keyword search)."""
        with self.connect() as con:
            con.begin()
            n = con.execute("SELECT count(*) FROM chunks c JOIN episodes e ON e.id = c.episode_id "
                            "WHERE e.status NOT IN ('transcribed', 'indexed')").fetchone()[0]
            if n:
                for table in ("chunks", "sentences"):
                    con.execute(f"DELETE FROM {table} WHERE episode_id IN (SELECT id FROM episodes "
                                "WHERE status NOT IN ('transcribed', 'indexed'))")
            con.commit()
        return int(n)

    def fix_next_chunk_id(self) -> int | None:
        """Make the id counter larger than every chunk id; returns the new value when it changed."""
        with self.connect() as con:
            top = con.execute("SELECT coalesce(max(id), 0) FROM chunks").fetchone()[0]
            nxt = self._get(con, "next_chunk_id")
            if top and (not nxt or not str(nxt).isdigit() or int(nxt) <= top):
                con.execute("INSERT OR REPLACE INTO meta VALUES ('next_chunk_id', ?)", [str(top + 1)])
                return top + 1
        return None

    def fix_chunk_counts(self) -> int:
        with self.connect() as con:
            row = con.execute(
                "UPDATE episodes SET n_chunks = (SELECT count(*) FROM chunks c WHERE c.episode_id = episodes.id) "
                "WHERE status = 'indexed' AND n_chunks IS DISTINCT FROM "
                "(SELECT count(*) FROM chunks c WHERE c.episode_id = episodes.id)").fetchone()
        return int(row[0]) if row and row[0] else 0

    @staticmethod
    def _delete_rows(con, episode_id: str, tables: tuple[str, ...]) -> None:
        for table in tables:
            con.execute(f"DELETE FROM {table} WHERE episode_id = ?", [episode_id])

    @staticmethod
    def _get(con, key: str) -> str | None:
        row = con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    # -- reader side ---------------------------------------------------------------------------
    def episodes(self, status: str | None = None) -> list[dict]:
        with self.connect(read_only=True) as con:
            sql = (
                "SELECT id, title, \"show\", published, duration, status, error, note, n_chunks AS chunks, "
                "source, webpage_url, media_url, local, model, embedder, language, "
                "coalesce(transcript_source, CASE WHEN model IS NOT NULL THEN 'asr' END) AS transcript_source, "
                "transcript_url, word_timing, updated_at, chapters FROM episodes"
            )
            args: list = []
            if status:
                sql += " WHERE status = ?"
                args.append(status)
            sql += " ORDER BY published NULLS LAST, title"
            cur = con.execute(sql, args)
            rows = dict_rows(cur)
        for r in rows:  # how many chapters and where they came from, not the chapters themselves
            chapters = chapters_of(r.pop("chapters"))
            r["chapters"] = len(chapters)
            r["chapters_source"] = chapters[0].source if chapters else None
        return rows

    def episode(self, episode_id: str) -> dict | None:
        with self.connect(read_only=True) as con:
            rows = dict_rows(con.execute("SELECT * FROM episodes WHERE id = ?", [episode_id]))
        return rows[0] if rows else None

    def statuses(self) -> dict[str, str]:
        with self.connect(read_only=True) as con:
            return dict(con.execute("SELECT id, status FROM episodes").fetchall())

    def chunk_texts(self, episode_ids: list[str] | None = None) -> tuple[list[int], list[str]]:
        """(chunk ids, texts) of trusted episodes (all, or these): what the keyword index is built from."""
        sql = ("SELECT c.id, c.text FROM chunks c JOIN episodes e ON e.id = c.episode_id "
               "WHERE e.status IN ('transcribed', 'indexed')")
        args: list = []
        if episode_ids is not None:
            sql += " AND list_contains(?, e.id)"
            args.append(episode_ids)
        with self.connect(read_only=True) as con:
            rows = con.execute(sql + " ORDER BY c.id", args).fetchall()
        return [r[0] for r in rows], [r[1] for r in rows]

    def has_indexed(self) -> bool:
        with self.connect(read_only=True) as con:
            return con.execute("SELECT 1 FROM episodes WHERE status = 'indexed' LIMIT 1").fetchone() is not None

    def live_chunk_ids(self) -> set[int]:
        with self.connect(read_only=True) as con:
            return {r[0] for r in con.execute("SELECT id FROM chunks").fetchall()}

    def transcribed_chunks(self) -> dict[str, list[int]]:
        """'transcribed' episodes (not yet searchable) with the chunk ids they already have."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT e.id, list(c.id) FROM episodes e LEFT JOIN chunks c ON c.episode_id = e.id "
                "WHERE e.status = 'transcribed' GROUP BY e.id"
            ).fetchall()
        return {eid: [c for c in (cids or []) if c is not None] for eid, cids in rows}

    def snapshot(self) -> dict:
        """What doctor compares against FAISS and the files: one read transaction."""
        with self.connect(read_only=True) as con:
            cols = ["id", "status", "n_chunks", "embedder", "transcript_path"]
            episodes = {r[0]: dict(zip(cols, r, strict=True)) for r in con.execute(
                "SELECT id, status, n_chunks, embedder, transcript_path FROM episodes").fetchall()}
            chunks: dict[str, list[int]] = {}
            for eid, cid in con.execute("SELECT episode_id, id FROM chunks ORDER BY episode_id, idx").fetchall():
                chunks.setdefault(eid, []).append(int(cid))
            n_segments = dict(con.execute("SELECT episode_id, count(*) FROM segments GROUP BY 1").fetchall())
            nxt = self._get(con, "next_chunk_id")
            return {"episodes": episodes, "chunks": chunks, "n_segments": n_segments,
                    "embedder": self._get(con, "embedder"),
                    "next_chunk_id": int(nxt) if nxt and str(nxt).isdigit() else None}

    def transcript_rows(self, eid: str) -> tuple[Transcript | None, Episode | None]:
        """An episode's transcript rebuilt from the segment and word rows (a lost transcript.json)."""
        from ..records import Chapter, Segment, Word

        with self.connect(read_only=True) as con:
            row = con.execute(f"SELECT {_COLS}, language, model, params, duration, transcript_source, "
                              "transcript_url, word_timing, chapters FROM episodes WHERE id = ?", [eid]).fetchone()
            if row is None:
                return None, None
            segs = con.execute(f"SELECT {', '.join(chr(34) + c + chr(34) for c in SEGMENT_COLS)} FROM segments "
                               "WHERE episode_id = ? ORDER BY idx", [eid]).fetchall()
            words = con.execute('SELECT seg_idx, start, "end", text, probability FROM words WHERE episode_id = ? '
                                "ORDER BY seg_idx, idx", [eid]).fetchall()
            n_chunks = con.execute("SELECT count(*) FROM chunks WHERE episode_id = ?", [eid]).fetchone()[0]
        vals = dict(zip(EPISODE_COLS, row[: len(EPISODE_COLS)], strict=True))
        language, model, params, duration, source, url, timing, chapters = row[len(EPISODE_COLS):]
        if (not segs and n_chunks) or not model:  # chunks but no segments: the words are gone
            return None, None
        by_seg: dict[int, list[Word]] = {}
        for seg_idx, s, e, text, prob in words:
            by_seg.setdefault(seg_idx, []).append(Word(s, e, text, prob))
        segments = [Segment(s, e, text, lp or 0.0, nsp or 0.0, cr or 0.0, by_seg.get(i, []), spk or "")
                    for i, s, e, text, lp, nsp, cr, spk in segs]
        if vals.get("published") is not None:
            vals["published"] = str(vals["published"])
        chaps = [Chapter(**c) for c in json.loads(chapters)] if chapters else []
        t = Transcript(eid, language or "en", float(duration or 0.0), segments, model,
                       json.loads(params) if params else {}, source or "asr", url or "", timing or "asr", chaps)
        return t, Episode(**vals)

    def version(self) -> tuple:
        """Changes whenever the database files change: what a live reader's caches are keyed on."""
        return file_key(self.path)

    def chunk_ranges(self, con) -> list[tuple[str, int, int]]:
        """(episode id, first chunk id, last chunk id) of every indexed episode. An episode's chunk ids
        are one contiguous run (save_chunks allocates them in one transaction), so a chunk id finds its
        episode by binary search."""
        return con.execute("SELECT c.episode_id, min(c.id), max(c.id) FROM chunks c JOIN episodes e "
                           "ON e.id = c.episode_id WHERE e.status = 'indexed' GROUP BY 1 ORDER BY 2").fetchall()

    def chunk_columns(self, con) -> dict[str, np.ndarray]:
        """Ranking fields of every chunk, as arrays sorted by id (a live reader's RowCache)."""
        return con.execute(
            "SELECT id, start, \"end\", coalesce(quality, 1.0) AS quality, first_sentence, last_sentence "
            "FROM chunks ORDER BY id").fetchnumpy()

    def chunk_fields_of(self, con, ids, text: bool = False) -> list[dict]:
        """Ranking fields (and text) of these chunks. The ids are inlined as a literal IN list (our own
        integers): DuckDB pushes it into the scan, where a bound list or a join reads whole columns."""
        if not ids:
            return []
        cur = con.execute(
            "SELECT id, episode_id, start, \"end\", coalesce(quality, 1.0) AS quality, first_sentence, last_sentence"
            + (", text" if text else "") + f" FROM chunks WHERE id IN ({_id_list(ids)})")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def chunk_texts_of(self, con, ids) -> dict[int, str]:
        """Texts of these chunks (a literal IN list, as in chunk_fields_of: 3 ms vs 65 ms at 100k chunks)."""
        if not ids:
            return {}
        return dict(con.execute(f"SELECT id, text FROM chunks WHERE id IN ({_id_list(ids)})").fetchall())

    def indexed_episodes(self, con) -> dict[str, dict]:
        """Fields hits need of every indexed episode, by id (a live reader keeps them: rowcache.py)."""
        cur = con.execute(
            "SELECT id AS episode_id, title, \"show\", webpage_url, media_url, local, published, chapters, "
            "coalesce(transcript_source, 'asr') AS transcript_source FROM episodes WHERE status = 'indexed'")
        enames = [d[0] for d in cur.description]
        return {r[0]: dict(zip(enames, r)) for r in cur.fetchall()}

    def sentence_starts(self, con, want: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[float, str]]:
        """(start, speaker) of the given (episode id, sentence index) pairs: the fallback for homes whose
        embeddings files predate `sent_starts`."""
        if not want:
            return {}
        # one point query per pair, glued with UNION ALL: each uses the zone maps, where IN lists over
        # episodes and indexes scan every sentence (3.6 ms vs 15.9 ms at 400k sentences)
        parts = " UNION ALL ".join(
            "SELECT episode_id, idx, start, coalesce(speaker, '') FROM sentences WHERE episode_id = '"
            + str(e).replace("'", "''") + f"' AND idx = {int(i)}" for e, i in sorted(set(want)))
        return {(e, i): (st, spk) for e, i, st, spk in con.execute(parts).fetchall()}

    def filtered_chunks(self, con, episode: str | None, show: str | None, since: str | None) -> dict[str, list[int]]:
        """Chunk ids by episode, of indexed episodes passing the filters; NotFoundError names an unknown
        episode or show."""
        from ..errors import NotFoundError

        where, args = ["e.status = 'indexed'"], []
        if episode:
            if not con.execute("SELECT 1 FROM episodes WHERE id = ?", [episode]).fetchone():
                raise NotFoundError(f"unknown episode {episode!r}: see `talkindex list`")
            where.append("e.id = ?")
            args.append(episode)
        if show:
            if not con.execute("SELECT 1 FROM episodes WHERE \"show\" ILIKE ?", [f"%{show}%"]).fetchone():
                raise NotFoundError(f"unknown show {show!r}: see `talkindex list`")
            where.append('e."show" ILIKE ?')
            args.append(f"%{show}%")
        if since:
            where.append("e.published >= TRY_CAST(? AS DATE)")
            args.append(since)
        sql = ("SELECT c.episode_id, list(c.id) FROM chunks c JOIN episodes e ON e.id = c.episode_id WHERE "
               + " AND ".join(where) + " GROUP BY c.episode_id")
        return {e: ids for e, ids in con.execute(sql, args).fetchall()}


@dataclass
class _ChunkRow:
    """A stored chunk's fields, as `catalog.write_rows` reads them."""

    start: float
    end: float
    quality: float | None
    first_sentence: int
    last_sentence: int
    text: str


def _id_list(ids) -> str:
    """Chunk ids as a SQL literal list: our own integers, forced through int()."""
    return ",".join(str(int(i)) for i in ids)


