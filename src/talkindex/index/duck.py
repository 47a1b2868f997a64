"""DuckDB plumbing for the Store: the reader keeper and bulk inserts.

Kept apart from store.py so the schema owner reads as schema and statements only. The keeper's
state is private; the Store calls `keep_reader`, `drop_reader` and `touch_reader` while holding
`OPEN_LOCK`.
"""

from __future__ import annotations

import threading
import time

# DuckDB caches one database instance per file per process; opening and closing connections from
# two threads at once races on that cache ("pandas_scan does not exist", "Unique file handle
# conflict"). The pipeline opens from its main and writer threads, so opens/closes are serialised.
OPEN_LOCK = threading.Lock()
# A live process (Index.ask in a notebook or server) keeps one read-only DuckDB instance open for
# READER_KEEP_S after its last query: every `duckdb.connect` then reuses the cached instance (and
# its caches): ~10 ms per question instead of ~100 ms to reopen the file. The shared lock it holds
# is released when idle, never taken while an ingest holds home/ingest.lock, and dropped before
# this process opens the file read-write.
READER_KEEP_S = 2.0
_keepers: dict[str, list] = {}  # path -> [connection, last use (monotonic)]
_closer: threading.Thread | None = None


def keep_reader(path: str) -> None:
    """Open (or touch) the keeper for `path`; caller holds OPEN_LOCK."""
    global _closer
    import duckdb

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


def drop_reader(path: str) -> None:
    """Close the keeper for `path`; caller holds OPEN_LOCK."""
    k = _keepers.pop(path, None)
    if k is not None:
        k[0].close()


def _close_idle_readers() -> None:
    while True:
        time.sleep(READER_KEEP_S / 4)
        with OPEN_LOCK:
            now = time.monotonic()
            for path in [p for p, k in _keepers.items() if now - k[1] > READER_KEEP_S]:
                drop_reader(path)
            if not _keepers:
                return

def touch_reader(path: str) -> None:
    """Mark the keeper for `path` (if any) as just used; caller holds OPEN_LOCK."""
    k = _keepers.get(path)
    if k is not None:
        k[1] = time.monotonic()


def bulk_insert(con, table: str, columns: dict[str, list]) -> None:
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


def dict_rows(cur) -> list[dict]:
    """A result's rows as dicts, dates and times as ISO strings (JSON-ready)."""
    names = [d[0] for d in cur.description]
    out = []
    for row in cur.fetchall():
        d = dict(zip(names, row))
        for k, v in d.items():
            if hasattr(v, "isoformat"):
                d[k] = v.isoformat()
        out.append(d)
    return out


