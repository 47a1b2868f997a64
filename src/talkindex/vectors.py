"""FAISS vectors under `home/vectors/`: a few immutable segment files plus a manifest.

Adding an episode writes one small new segment and rewrites only the manifest (atomically), so a
large index is never rewritten to add a little; `compact()` merges small segments (LSM style) and
drops ids whose chunks were deleted. Ids are DuckDB chunk ids.

Index type is chosen per segment by its size (`choose_factory`): exact inner product ("Flat",
1.5 KB per 384-d vector) below `EXACT_MAX` vectors, where a brute-force scan still takes only a
few ms; above it an inverted file with 8-bit scalar quantisation ("IVF{nlist},SQ8", sqrt(n)
lists, `NPROBE` probed, ~0.4 KB per vector). IVF rather than HNSW because a segment is read with
mmap: a cold `ask` touches only the probed lists, while an HNSW graph must be read whole (and
takes ~10x longer to build on 2 cores). `factory` overrides ("HNSW32,Flat" etc. still work).
Small new segments are always Flat, so adding an episode never retrains or rewrites the base.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

log = logging.getLogger("talkindex")

EXACT_MAX = 200_000  # vectors; above this a segment is IVF (see the module docstring)
HNSW_THRESHOLD = EXACT_MAX  # old name, kept for callers
NPROBE = 24  # IVF lists scanned per query (recall@50 ~0.95+ on the scale benchmark's vectors)
TRAIN_PER_LIST = 64  # k-means training sample per IVF list
MAX_SEGMENTS = 8
SMALL_QUERY = 8  # up to this many query rows, search single-threaded (OpenMP start-up costs more)


def _faiss():
    import faiss

    return faiss


def choose_factory(n: int, factory: str = "auto") -> str:
    """The FAISS factory string for a segment of `n` vectors."""
    if factory != "auto":
        return factory
    if n < EXACT_MAX:
        return "Flat"
    return f"IVF{max(64, int(np.sqrt(n)))},SQ8"


def build_index(vecs: np.ndarray, ids: np.ndarray, factory: str = "auto"):
    """An IndexIDMap2 over the chosen inner-product index, filled with `vecs`."""
    faiss = _faiss()
    d = vecs.shape[1]
    factory = choose_factory(len(vecs), factory)
    if factory.startswith("HNSW"):
        m = int(factory[4:].split(",")[0] or 32)
        inner = faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = 80
        inner.hnsw.efSearch = 96
    else:
        inner = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
        if not inner.is_trained:
            nlist = getattr(faiss.try_extract_index_ivf(inner), "nlist", 0) or 256
            sample = vecs
            if len(vecs) > TRAIN_PER_LIST * nlist:
                pick = np.random.default_rng(0).choice(len(vecs), TRAIN_PER_LIST * nlist, replace=False)
                sample = vecs[np.sort(pick)]
            inner.train(np.ascontiguousarray(sample, dtype=np.float32))
        _tune(inner)
    index = faiss.IndexIDMap2(inner)
    if len(vecs):
        index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), ids.astype(np.int64))
    return index


class VectorIndex:
    def __init__(self, directory: Path, factory: str = "auto"):
        self.dir = Path(directory)
        self.factory = factory
        self._loaded: dict[str, object] = {}

    # -- manifest ----------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.dir / "manifest.json"

    def manifest(self) -> dict:
        try:
            return json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            return {"dim": None, "embedder": None, "segments": [], "seq": 0}

    def _write_manifest(self, m: dict) -> None:
        from .store import atomic_write_text

        atomic_write_text(self.manifest_path, json.dumps(m, indent=1))

    @property
    def ntotal(self) -> int:
        return sum(s["n"] for s in self.manifest()["segments"])

    # -- writes (pipeline only) ----------------------------------------------------------------
    def add(self, ids: np.ndarray, vecs: np.ndarray, embedder: str) -> None:
        """Write one new segment; the manifest rename is the commit point."""
        if len(ids) == 0:
            return
        faiss = _faiss()
        self.dir.mkdir(parents=True, exist_ok=True)
        m = self.manifest()
        if m["embedder"] not in (None, embedder) or m["dim"] not in (None, vecs.shape[1]):
            raise ValueError(f"index holds {m['embedder']} vectors; cannot add {embedder} vectors")
        m["seq"] += 1
        name = f"seg-{m['seq']:06d}.faiss"
        tmp = self.dir / f".{name}.tmp"
        fac = choose_factory(len(ids), "Flat" if len(ids) < EXACT_MAX else self.factory)
        faiss.write_index(build_index(vecs, np.asarray(ids), fac), str(tmp))
        os.replace(tmp, self.dir / name)
        m.update(dim=int(vecs.shape[1]), embedder=embedder)
        m["segments"].append({"file": name, "n": int(len(ids)), "factory": fac})
        self._write_manifest(m)
        self._loaded.clear()

    def reset(self) -> None:
        """Forget every vector (used when the embedder changes)."""
        self._write_manifest({"dim": None, "embedder": None, "segments": [], "seq": self.manifest()["seq"]})
        self._gc()

    def compact(self, live_ids: set[int] | None = None, full: bool = False) -> bool:
        """Merge small segments (or all, with `full`), keeping only `live_ids` if given."""
        m = self.manifest()
        segs = m["segments"]
        if not segs:
            return False
        if not full and len(segs) <= MAX_SEGMENTS and live_ids is None:
            return False
        segs_sorted = sorted(segs, key=lambda s: s["n"])
        if full or live_ids is not None:
            merge = segs_sorted
        else:  # merge the small ones; a base much larger than them is left alone
            merge, total = [], 0
            for s in segs_sorted:
                if merge and s["n"] > 4 * total and len(segs) - len(merge) < MAX_SEGMENTS:
                    break
                merge.append(s)
                total += s["n"]
        ids, vecs = self._read_segments(merge)
        if live_ids is not None:
            keep = np.fromiter((i in live_ids for i in ids), dtype=bool, count=len(ids))
            ids, vecs = ids[keep], vecs[keep]
        faiss = _faiss()
        m["seq"] += 1
        name = f"seg-{m['seq']:06d}.faiss"
        tmp = self.dir / f".{name}.tmp"
        fac = choose_factory(len(ids), self.factory)
        faiss.write_index(build_index(vecs, ids, fac), str(tmp))
        os.replace(tmp, self.dir / name)
        merged = {s["file"] for s in merge}
        m["segments"] = [s for s in segs if s["file"] not in merged] + [
            {"file": name, "n": int(len(ids)), "factory": fac}]
        self._write_manifest(m)
        self._loaded.clear()
        self._gc()
        return True

    def _gc(self) -> None:
        """Delete segment files the manifest no longer names (left by compaction or a crash)."""
        named = {s["file"] for s in self.manifest()["segments"]}
        for p in self.dir.glob("seg-*.faiss"):
            if p.name not in named:
                p.unlink(missing_ok=True)
        for p in self.dir.glob(".seg-*.tmp"):
            p.unlink(missing_ok=True)

    # -- reads -----------------------------------------------------------------------------------
    def _index(self, file: str):
        idx = self._loaded.get(file)
        if idx is None:
            faiss = _faiss()
            path = str(self.dir / file)
            try:
                idx = faiss.read_index(path, faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
            except RuntimeError:
                idx = faiss.read_index(path)
            _tune(faiss.downcast_index(idx.index) if hasattr(idx, "index") else idx)
            self._loaded[file] = idx
        return idx

    def _read_segments(self, segs: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        faiss = _faiss()
        ids_l, vecs_l = [], []
        for s in segs:
            idx = faiss.read_index(str(self.dir / s["file"]))
            ivf = faiss.try_extract_index_ivf(faiss.downcast_index(idx.index))
            if ivf is not None:  # IVF reconstructs by id only through a direct map (SQ8: decoded values)
                ivf.make_direct_map()
            ids = faiss.vector_to_array(idx.id_map).astype(np.int64)
            vecs = idx.reconstruct_batch(ids) if len(ids) else np.zeros((0, idx.d), np.float32)
            ids_l.append(ids)
            vecs_l.append(vecs)
        d = self.manifest()["dim"] or 0
        if not ids_l:
            return np.zeros(0, np.int64), np.zeros((0, d), np.float32)
        return np.concatenate(ids_l), np.concatenate(vecs_l).astype(np.float32)

    def ids(self) -> np.ndarray:
        faiss = _faiss()
        out = [faiss.vector_to_array(self._index(s["file"]).id_map) for s in self.manifest()["segments"]]
        return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query row, merged over segments; ids -1 pad short results."""
        q = np.ascontiguousarray(np.atleast_2d(q), dtype=np.float32)
        all_s, all_i = [], []
        with _threads(1 if len(q) <= SMALL_QUERY else 0):
            for s in self.manifest()["segments"]:
                sc, ix = self._index(s["file"]).search(q, min(k, s["n"]))
                all_s.append(sc)
                all_i.append(ix)
        if not all_s:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        sc = np.concatenate(all_s, axis=1)
        ix = np.concatenate(all_i, axis=1)
        sc = np.where(ix < 0, -np.inf, sc)
        order = np.argsort(-sc, axis=1)[:, :k]
        return np.take_along_axis(sc, order, 1), np.take_along_axis(ix, order, 1)


def _tune(inner) -> None:
    """Search-time parameters (not all are stored in the index file)."""
    faiss = _faiss()
    ivf = faiss.try_extract_index_ivf(inner)
    if ivf is not None:
        ivf.nprobe = min(NPROBE, ivf.nlist)
    hnsw = getattr(faiss.downcast_index(inner), "hnsw", None)
    if hnsw is not None:
        hnsw.efSearch = max(hnsw.efSearch, 96)


class _threads:
    """OpenMP threads for one search: 1 for a few query rows (thread start-up and, on a busy
    2-core machine, spinning threads cost more than they save); 0 leaves the setting alone."""

    def __init__(self, n: int):
        self.n = n
        self.prev = 0

    def __enter__(self):
        if self.n:
            faiss = _faiss()
            self.prev = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(self.n)

    def __exit__(self, *exc):
        if self.n:
            _faiss().omp_set_num_threads(self.prev)
