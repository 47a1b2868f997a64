"""Where a question's rows come from: the writer's published snapshot, or DuckDB when there is none.

Why two sources with one face: a reader that opens DuckDB waits whenever the writer holds the file
(index/catalog.py), so the Searcher ranks from the snapshot (`catalog.json` + each episode's
`rows.npz`) whenever it is current, and from DuckDB only for a home without one (made before it,
or a writer killed between a commit and its publication, until the next writer starts).
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from ..home import ingest_running
from ..index import catalog
from ..index.catalog import FIELDS


class Snapshots:
    """The current catalog of a home, reloaded when its file changes (one stat per question)."""

    def __init__(self, layout):
        self.layout = layout
        self._key: tuple | None = None
        self._cat: catalog.Catalog | None = None

    def current(self) -> catalog.Catalog | None:
        """The catalog readers may rank from now, or None (then DuckDB)."""
        try:
            st = os.stat(self.layout.catalog)
        except OSError:
            return None
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key != self._key:
            self._cat, self._key = catalog.load(self.layout), key
        cat = self._cat
        if cat is None or not cat.complete:
            return None
        if cat.db_key != catalog.file_key(self.layout.db) and not ingest_running(self.layout):
            return None  # the writer died before publishing: DuckDB is newer
        return cat


class SnapshotRows:
    """A question's rows from the catalog and the episodes' rows files; `stored(eid, key)` reads (and
    caches) one member of an episode's files (Searcher._stored)."""

    def __init__(self, cat: catalog.Catalog, stored, store):
        self.cat, self.stored, self.store = cat, stored, store
        self._fields: dict[str, np.ndarray | None] = {}

    def filtered(self, episode: str | None, show: str | None, since: str | None) -> dict[str, list[int]]:
        """Chunk ids by episode of indexed episodes passing the filters (as Store.filtered_chunks)."""
        from ..errors import NotFoundError

        eps = self.cat.episodes
        if episode and episode not in eps and episode not in self.cat.others:
            raise NotFoundError(f"unknown episode {episode!r}: see `talkindex list`")
        want = show.casefold() if show else None
        if want and not any(want in (e.get("show") or "").casefold() for e in eps.values()) \
                and not any(want in (s or "").casefold() for s in self.cat.others.values()):
            raise NotFoundError(f"unknown show {show!r}: see `talkindex list`")
        out = {}
        for eid, e in eps.items():
            if episode and eid != episode or want and want not in (e.get("show") or "").casefold():
                continue
            if since and not (e.get("published") and str(e["published"]) >= since):
                continue
            out[eid] = list(range(e["lo"], e["hi"] + 1))
        return out

    def fields(self, eid: str) -> np.ndarray | None:
        """The episode's chunk fields (rows file), when its ids are the catalog's range."""
        if eid not in self._fields:
            e, ids = self.cat.episodes[eid], self.stored(eid, "ids")
            ok = ids is not None and len(ids) == e["hi"] - e["lo"] + 1 and (not len(ids) or int(ids[0]) == e["lo"])
            self._fields[eid] = self.stored(eid, "fields") if ok else None
        return self._fields[eid]

    def rows(self, ids, text: bool = False) -> dict[int, dict]:
        """chunk id → ranking fields and episode fields (and text), for ids of indexed episodes."""
        ids = np.fromiter((int(i) for i in ids), np.int64)
        pos, ok = self.cat.episode_of(ids)
        out: dict[int, dict] = {}
        for cid, p in zip(ids[ok].tolist(), pos[ok].tolist(), strict=True):
            eid = self.cat.ids[p]
            f = self.fields(eid)
            if f is None:
                continue
            e = self.cat.episodes[eid]
            v = f[cid - e["lo"]].tolist()
            r = {"episode_id": eid, **{k: x for k, x in e.items() if k not in ("lo", "hi")},
                 **dict(zip(FIELDS, v, strict=True))}
            r["first_sentence"], r["last_sentence"] = int(r["first_sentence"]), int(r["last_sentence"])
            out[cid] = r
        if text:
            self.add_texts(out)
        return out

    def add_texts(self, rows: dict[int, dict]) -> None:
        for cid, r in rows.items():
            if "text" in r:
                continue
            eid = r["episode_id"]
            ends, blob = self.stored(eid, "text_end"), self.stored(eid, "text")
            j = cid - self.cat.episodes[eid]["lo"]
            if ends is None or blob is None or not 0 <= j < len(ends):
                r["text"] = ""
                continue
            a = int(ends[j - 1]) if j else 0
            r["text"] = bytes(blob[a:int(ends[j])]).decode("utf-8", "replace")

    def sentence_starts(self, want: list[tuple[str, int]]) -> dict:
        """Sentence starts of episodes whose embeddings predate `sent_starts` (old homes): from DuckDB."""
        if not want:
            return {}
        with self.store.connect(read_only=True) as con:
            return self.store.sentence_starts(con, want)


class DuckRows:
    """A question's rows from DuckDB (one read-only connection), through the live reader's RowCache."""

    def __init__(self, store, row_cache, con):
        self.store, self.row_cache, self.con = store, row_cache, con

    def filtered(self, episode: str | None, show: str | None, since: str | None) -> dict[str, list[int]]:
        return self.store.filtered_chunks(self.con, episode, show, since)

    def rows(self, ids, text: bool = False) -> dict[int, dict]:
        return self.row_cache.rows(self.con, ids, text)

    def add_texts(self, rows: dict[int, dict]) -> None:
        self.row_cache.add_texts(self.con, rows)

    def sentence_starts(self, want: list[tuple[str, int]]) -> dict:
        return self.store.sentence_starts(self.con, want)


@contextlib.contextmanager
def duck_rows(store, row_cache):
    with store.connect(read_only=True) as con:
        yield DuckRows(store, row_cache, con)
