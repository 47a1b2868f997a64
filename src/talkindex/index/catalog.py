"""The readers' snapshot: what `ask` needs of the database, published by the writer as plain files.

Why: DuckDB lets no other process open its file while the writer has it open, and the writer's
closing checkpoint holds it for up to a second on a large home, so a concurrent `ask` used to wait
(issue 23, goal 4). Now the writer publishes, after every write that changed the database:

  * `catalog.json` — every indexed episode's fields that hits show (title, show, links, date,
    chapters) and its chunk id range, plus the other episodes' ids and shows (for filter errors),
    stamped with the database's file key at publication; replaced atomically.
  * `episodes/<id>/rows.npz` — the episode's chunks as ranking reads them (start, end, quality,
    first and last sentence) and their texts, written before the episode is marked indexed.

A reader (`search/snapshot.py`) never opens DuckDB while the catalog is current: its file key
matches the database's, or an ingest holds the writer lock (the catalog then lags the episode in
flight at most, as DuckDB readers did). A kill -9 between a commit and its publication leaves a
stale key, and readers fall back to DuckDB until the next writer republishes (ingest and doctor
do at start). Homes from before this file get their rows files at the writer's next start.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from ..fsutil import atomic_write_bytes, open_new, replace_durably

FORMAT = 1
FIELDS = ("start", "end", "quality", "first_sentence", "last_sentence")  # rows.npz `fields` columns, in order


@dataclass
class Catalog:
    """One published snapshot. `episodes`: id → hit fields + `lo`/`hi` chunk ids; `others`: id → show."""

    episodes: dict[str, dict]
    others: dict[str, str] = field(default_factory=dict)
    db_key: list | None = None
    complete: bool = True  # every indexed episode has its rows file
    ids: list[str] = field(default_factory=list, repr=False)  # indexed episodes by first chunk id
    lo: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    hi: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)

    def __post_init__(self) -> None:
        order = sorted(self.episodes, key=lambda e: self.episodes[e]["lo"])
        self.ids = order
        self.lo = np.asarray([self.episodes[e]["lo"] for e in order], np.int64)
        self.hi = np.asarray([self.episodes[e]["hi"] for e in order], np.int64)

    def episode_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in `self.ids`, found) for each chunk id: a binary search over the id ranges."""
        pos = np.searchsorted(self.lo, ids, side="right") - 1
        ok = (pos >= 0) & (ids <= self.hi[np.maximum(pos, 0)]) if len(self.lo) else np.zeros(len(ids), bool)
        return pos, ok

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "db_key": self.db_key, "complete": self.complete,
                           "episodes": self.episodes, "others": self.others}, separators=(",", ":"), default=str)

    @classmethod
    def from_json(cls, text: str) -> Catalog | None:
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            return None
        return cls(d["episodes"], d.get("others") or {}, d.get("db_key"), bool(d.get("complete")))


def file_key(db) -> list:
    """Changes whenever DuckDB writes the database (its file or its write-ahead log)."""
    out = []
    for p in (str(db), str(db) + ".wal"):
        try:
            s = os.stat(p)
            out.append([s.st_mtime_ns, s.st_size])
        except OSError:
            out.append(None)
    return out


def publish(layout, indexed: dict[str, dict], ranges: list[tuple[str, int, int]], others: dict[str, str],
            db_key: list) -> Catalog:
    """Write `catalog.json` atomically from the database's current rows (`Store.publish` calls this)."""
    eps = {}
    for eid, lo, hi in ranges:
        if eid in indexed:
            eps[eid] = {**indexed[eid], "lo": int(lo), "hi": int(hi)}
    complete = all(os.path.exists(layout.rows(e)) for e in eps)
    cat = Catalog(eps, others, db_key, complete)
    atomic_write_bytes(layout.catalog, cat.to_json().encode("utf-8"))
    return cat


def load(layout) -> Catalog | None:
    """The published catalog, or None (absent, damaged, another format)."""
    try:
        with open(layout.catalog, "rb") as f:
            return Catalog.from_json(f.read().decode("utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_rows(layout, episode_id: str, ids: list[int], chunks: list) -> None:
    """An episode's `rows.npz` (chunks as ranking reads them, and their texts), written atomically
    before the episode is marked indexed. `chunks`: records with the FIELDS attributes and `text`."""
    texts = [c.text.encode("utf-8") for c in chunks]
    ends = np.cumsum([len(t) for t in texts], dtype=np.int64) if texts else np.zeros(0, np.int64)
    fields = np.asarray([[float(getattr(c, f) if getattr(c, f) is not None else (1.0 if f == "quality" else 0))
                          for f in FIELDS] for c in chunks], np.float64).reshape(len(chunks), len(FIELDS))
    path = layout.rows(episode_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    with open_new(tmp) as f:  # never through a link planted in the home
        np.savez(f, ids=np.asarray(ids, np.int64), fields=fields, text_end=ends,
                 text=np.frombuffer(b"".join(texts), np.uint8))
    replace_durably(tmp, path)
