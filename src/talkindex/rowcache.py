"""What ranking reads of each candidate chunk, held in arrays by a live process.

Why: a warm question at 100k chunks spent ~20 ms of its ~90 ms in DuckDB fetching the same few
fields of ~100 candidate chunks. A reader (`serve`, `mcp`, `ask --file`, a notebook) now loads the
ranking fields of every chunk in one query on its first question and keeps them until the database
files change (`Store.version`); texts are fetched only for the final hits (sentence start times come
with the stored vectors, `embeddings.npz`). Cost: 48 bytes per chunk (48 MB at 1M chunks), ~0.2 s
once at 1M; per-episode loads on demand measured slower (a query with many BETWEEN ranges each time a
question touched new episodes: ~40 ms a question at 1M).
"""

from __future__ import annotations

import numpy as np

FIELDS = ("start", "end", "quality", "first_sentence", "last_sentence")


class RowCache:
    def __init__(self, store):
        self.store = store
        self._version: tuple | None = None
        self._reset()

    def _reset(self) -> None:
        self._eps: list[str] = []
        self._lo = self._hi = np.zeros(0, np.int64)
        self._cols: dict[str, np.ndarray] = {"id": np.zeros(0, np.int64)}
        self._meta: dict[str, dict] = {}

    def refresh(self, con) -> None:
        """Reload if the database changed since the last question (one stat per file): episodes' id
        ranges and every chunk's ranking fields in one query (~20 ms per 100k chunks)."""
        v = self.store.version()
        if v == self._version:
            return
        self._reset()
        ranges = self.store.chunk_ranges(con)
        self._eps = [r[0] for r in ranges]
        self._lo = np.asarray([r[1] for r in ranges], np.int64)
        self._hi = np.asarray([r[2] for r in ranges], np.int64)
        self._cols = {k: np.asarray(v) for k, v in self.store.chunk_columns(con).items()}
        self._meta = self.store.indexed_episodes(con)
        self._version = v

    def rows(self, con, ids, text: bool = False) -> dict[int, dict]:
        """chunk id → {episode_id, start, end, quality, first_sentence, last_sentence, episode fields}
        (and text with `text`), for the ids that belong to an indexed episode."""
        self.refresh(con)
        ids = np.fromiter((int(i) for i in ids), np.int64)
        if not len(ids) or not len(self._lo):
            return {}
        pos = np.searchsorted(self._lo, ids, side="right") - 1
        ok = (pos >= 0) & (ids <= self._hi[np.maximum(pos, 0)])
        all_ids = self._cols["id"]
        j = np.minimum(np.searchsorted(all_ids, ids), max(0, len(all_ids) - 1))
        ok &= all_ids[j] == ids if len(all_ids) else False
        cols = {f: self._cols[f][j[ok]].tolist() for f in FIELDS}
        out = {}
        for n, (cid, p) in enumerate(zip(ids[ok].tolist(), pos[ok].tolist(), strict=True)):
            eid = self._eps[p]
            out[cid] = {"episode_id": eid, **{f: cols[f][n] for f in FIELDS}, **self._meta.get(eid, {})}
        if text:
            self.add_texts(con, out)
        return out

    def add_texts(self, con, rows: dict[int, dict]) -> None:
        missing = [c for c, r in rows.items() if "text" not in r]
        for cid, t in self.store.chunk_texts_of(con, missing).items():
            rows[cid]["text"] = t
