"""What ranking reads of each candidate chunk, held in arrays by a live process.

Why: a warm question at 100k chunks spent ~20 ms of its ~90 ms in DuckDB fetching the same few
fields of ~100 candidate chunks. A reader (`serve`, `mcp`, `ask --file`, a notebook) now loads the
ranking fields of every chunk on its second question (the first looks its candidates up by id, so a
one-shot `talkindex ask` never pays for the table) and keeps them until the database files change
(`Store.version`); texts are fetched only for the final hits (sentence start times come
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
        self._asked = 0  # questions answered by this process
        self._reset()

    def _reset(self) -> None:
        self._eps: list[str] = []
        self._lo = self._hi = np.zeros(0, np.int64)
        self._cols: dict[str, np.ndarray] | None = None  # loaded on the second question
        self._meta: dict[str, dict] = {}

    def refresh(self, con) -> None:
        """Drop everything if the database changed since the last question (one stat per file)."""
        v = self.store.version()
        if v == self._version:
            return
        self._reset()
        self._meta = self.store.indexed_episodes(con)
        self._version = v

    def _load(self, con) -> None:
        """Episodes' id ranges and every chunk's ranking fields, in two queries (~20 ms per 100k chunks)."""
        ranges = self.store.chunk_ranges(con)
        self._eps = [r[0] for r in ranges]
        self._lo = np.asarray([r[1] for r in ranges], np.int64)
        self._hi = np.asarray([r[2] for r in ranges], np.int64)
        self._cols = {k: np.asarray(v) for k, v in self.store.chunk_columns(con).items()}

    def rows(self, con, ids, text: bool = False) -> dict[int, dict]:
        """chunk id → {episode_id, start, end, quality, first_sentence, last_sentence, episode fields}
        (and text with `text`), for the ids that belong to an indexed episode. A process's first
        question looks its candidates up by id: a one-shot `talkindex ask` never loads the table."""
        self.refresh(con)
        self._asked += 1
        if self._cols is None and self._asked == 1:
            out = {r["id"]: r for r in self.store.chunk_fields_of(con, ids, text)}
        else:
            if self._cols is None:
                self._load(con)
            out = self._lookup(ids)
            if text:
                self.add_texts(con, out)
        return {cid: {**r, **self._meta[r["episode_id"]]} for cid, r in out.items() if r["episode_id"] in self._meta}

    def _lookup(self, ids) -> dict[int, dict]:
        ids = np.fromiter((int(i) for i in ids), np.int64)
        all_ids = self._cols["id"]
        if not len(ids) or not len(self._lo) or not len(all_ids):
            return {}
        pos = np.searchsorted(self._lo, ids, side="right") - 1
        ok = (pos >= 0) & (ids <= self._hi[np.maximum(pos, 0)])
        j = np.minimum(np.searchsorted(all_ids, ids), len(all_ids) - 1)
        ok &= all_ids[j] == ids
        cols = {f: self._cols[f][j[ok]].tolist() for f in FIELDS}
        return {cid: {"episode_id": self._eps[p], **{f: cols[f][n] for f in FIELDS}}
                for n, (cid, p) in enumerate(zip(ids[ok].tolist(), pos[ok].tolist(), strict=True))}

    def add_texts(self, con, rows: dict[int, dict]) -> None:
        missing = [c for c, r in rows.items() if "text" not in r]
        for cid, t in self.store.chunk_texts_of(con, missing).items():
            rows[cid]["text"] = t
