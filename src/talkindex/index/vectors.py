"""FAISS vectors under `home/vectors/`: a few immutable segment files plus a manifest.

Adding an episode writes one small new segment and rewrites only the manifest (atomically), so a
large index is never rewritten to add a little; `compact()` merges small segments (LSM style) and
drops ids whose chunks were deleted. Ids are DuckDB chunk ids.

Index type is chosen per segment by its size (`choose_factory`): exact inner product ("Flat",
1.5 KB per 384-d vector) for small segments, the same exhaustive scan over float16 codes ("SQfp16",
0.77 KB) up to `EXACT_MAX` vectors; above it an inverted file over float16 codes
("IVF{4 sqrt(n)},SQfp16", `NPROBE` lists probed). Measured on MiniLM embeddings of perturbed real
transcript text (benchmarks/_realvecs.py, 100 held-out queries): recall@10 against exact search
0.952 at 50k, 0.983 at 100k, ~0.98 at 1M (0.976 at 32 probes, 0.987 at 64), for ~1 ms at 100k
instead of the 13.5 ms an exhaustive float16 scan takes; 8-bit codes (SQ8) plateau at 0.94 at 1M
with sqrt(n) lists. IVF rather than HNSW because a segment is read with
mmap: a cold `ask` touches only the probed lists, while an HNSW graph must be read whole (and
takes ~10x longer to build on 2 cores). `factory` overrides ("HNSW32,Flat" etc. still work).
Small new segments are always Flat, so adding an episode never retrains or rewrites the base.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .segments import MAX_SEGMENTS, SegmentDir, segments_to_merge

log = logging.getLogger("talkindex")

EXACT_MAX = 50_000  # vectors; above this a segment is IVF (see the module docstring)
HALF_MIN = 20_000  # vectors; from here to EXACT_MAX a segment scans float16 codes (half the bytes of Flat,
# recall@10 1.0 against it)
NPROBE = 64  # IVF lists scanned per query (see the module docstring for the recall it buys)
TRAIN_PER_LIST = 64  # k-means training sample per IVF list
SMALL_QUERY = 8  # up to this many query rows, search single-threaded (OpenMP start-up costs more)


def _faiss():
    import faiss

    return faiss


def choose_factory(n: int, factory: str = "auto") -> str:
    """The FAISS factory string for a segment of `n` vectors."""
    if factory != "auto":
        return factory
    if n >= EXACT_MAX:
        return f"IVF{max(64, int(4 * np.sqrt(n)))},SQfp16"
    if n >= HALF_MIN:  # exhaustive over float16 codes: half the bytes scanned, same neighbours (measured)
        return "SQfp16"
    return "Flat"


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
        self.segs = SegmentDir(self.dir, "seg", ".faiss")
        self.factory = factory
        self._loaded: dict[str, object] = {}
        self._warned: set[str] = set()

    # -- manifest ----------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.segs.manifest_path

    def _read_manifest(self) -> dict:
        """The manifest as stored; FileNotFoundError, or ValueError when unreadable or malformed."""
        m = self.segs.read_manifest()
        for s in m["segments"]:
            if not isinstance(s, dict) or not isinstance(s.get("file"), str) or not isinstance(s.get("n"), int):
                raise ValueError("bad segment entry")
            if "/" in s["file"] or not s["file"].startswith("seg-"):
                raise ValueError("bad segment file name")
        if not isinstance(m.get("seq", 0), int):
            raise ValueError("bad seq")
        m.setdefault("seq", 0)
        m.setdefault("dim", None)
        m.setdefault("embedder", None)
        return m

    def manifest(self) -> dict:
        """The manifest; an empty one when missing, unreadable or malformed (`damaged()` says which)."""
        try:
            return self._read_manifest()
        except (FileNotFoundError, ValueError):
            return {"dim": None, "embedder": None, "segments": [], "seq": self.segs.max_seq()}

    def damaged(self) -> str | None:
        """Why the vectors cannot be trusted as they are (None when fine): a bad manifest or segment."""
        try:
            m = self._read_manifest()
        except FileNotFoundError:
            return "the vector manifest is missing" if self.segs.unnamed(set()) else None
        except ValueError as e:
            return f"the vector manifest is damaged ({e})"
        for s in m["segments"]:
            try:
                self._index(s["file"])
            except (RuntimeError, OSError) as e:
                return f"vector segment {s['file']} is unreadable ({str(e).splitlines()[0][:120]})"
        return None

    def inspect(self) -> tuple[str | None, list[dict]]:
        """For doctor: (manifest problem or None, per segment {file, n, path, ids|None, dim, error})."""
        faiss = _faiss()
        try:
            m = self._read_manifest()
        except FileNotFoundError:
            return (f"{self.manifest_path} is missing" if self.segs.unnamed(set()) else None), []
        except ValueError as e:
            return f"{self.manifest_path}: {e}", []
        out = []
        for s in m["segments"]:
            path = self.dir / s["file"]
            rec = {"file": s["file"], "n": s["n"], "path": path, "ids": None, "dim": None, "error": None,
                   "manifest_dim": m.get("dim"), "embedder": m.get("embedder")}
            if not path.is_file():
                rec["error"] = "missing"
            else:
                try:
                    idx = faiss.read_index(str(path))
                    rec["ids"] = faiss.vector_to_array(idx.id_map).astype(np.int64)
                    rec["dim"] = idx.d
                except RuntimeError as e:
                    rec["error"] = str(e).splitlines()[0][:200]
            out.append(rec)
        return None, out

    def _write_manifest(self, m: dict) -> None:
        self.segs.write_manifest(m)

    def _write_segment(self, m: dict, index, fac: str, n: int) -> dict:
        """Write one segment file durably under a never-used name; returns its manifest entry."""
        from ..fsutil import replace_durably

        name = self.segs.new_name(m)
        tmp = self.segs.tmp(name)
        tmp.unlink(missing_ok=True)  # FAISS opens by name: a link planted here must not be followed
        _faiss().write_index(index, str(tmp))
        replace_durably(tmp, self.dir / name)
        return {"file": name, "n": int(n), "factory": fac}

    @property
    def ntotal(self) -> int:
        return sum(s["n"] for s in self.manifest()["segments"])

    # -- writes (pipeline only) ----------------------------------------------------------------
    def add(self, ids: np.ndarray, vecs: np.ndarray, embedder: str) -> None:
        """Write one new segment; the manifest rename is the commit point."""
        if len(ids) == 0:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        m = self.manifest()
        if m["embedder"] not in (None, embedder) or m["dim"] not in (None, vecs.shape[1]):
            raise ValueError(f"index holds {m['embedder']} vectors; cannot add {embedder} vectors")
        fac = choose_factory(len(ids), "Flat" if len(ids) < min(HALF_MIN, EXACT_MAX) else self.factory)
        entry = self._write_segment(m, build_index(vecs, np.asarray(ids), fac), fac, len(ids))
        m.update(dim=int(vecs.shape[1]), embedder=embedder)
        m["segments"].append(entry)
        self._write_manifest(m)
        self._loaded.clear()

    def rebuild(self, ids: np.ndarray, vecs: np.ndarray, embedder: str | None) -> None:
        """Replace every segment with one built from (ids, vecs): doctor's and self-heal's entry."""
        self.dir.mkdir(parents=True, exist_ok=True)
        m = {"dim": None, "embedder": None, "segments": [], "seq": max(self.manifest()["seq"], self.segs.max_seq())}
        if len(ids):
            vecs = np.asarray(vecs, np.float32)
            vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)  # float16 round trip
            fac = choose_factory(len(ids), self.factory)
            m["segments"].append(self._write_segment(m, build_index(vecs, np.asarray(ids, np.int64), fac),
                                                     fac, len(ids)))
            m.update(dim=int(vecs.shape[1]), embedder=embedder)
        self._write_manifest(m)
        self._loaded.clear()
        self.gc()

    def reset(self) -> None:
        """Forget every vector (used when the embedder changes)."""
        self._write_manifest({"dim": None, "embedder": None, "segments": [], "seq": self.manifest()["seq"]})
        self.gc()

    def compact(self, live_ids: set[int] | None = None, full: bool = False) -> bool:
        """Merge small segments (or all, with `full`), keeping only `live_ids` if given."""
        m = self.manifest()
        segs = m["segments"]
        merge = segments_to_merge(segs, full or live_ids is not None, MAX_SEGMENTS)
        if not merge:
            return False
        ids, vecs = self._read_segments(merge)
        if live_ids is not None:
            keep = np.fromiter((i in live_ids for i in ids), dtype=bool, count=len(ids))
            ids, vecs = ids[keep], vecs[keep]
        merged = {s["file"] for s in merge}
        m["segments"] = [s for s in segs if s["file"] not in merged]
        if len(ids):  # an empty segment is not written at all
            fac = choose_factory(len(ids), self.factory)
            m["segments"].append(self._write_segment(m, build_index(vecs, ids, fac), fac, len(ids)))
        self._write_manifest(m)
        self._loaded.clear()
        self.gc()
        return True

    def stray_files(self) -> list[Path]:
        """Files left by an interrupted write or a compaction: temporary segments, and segment files the
        manifest does not name (only when the manifest is readable: else they are what a repair uses)."""
        if not self.dir.exists():
            return []
        stray = self.segs.temporaries()
        try:
            named = {s["file"] for s in self._read_manifest()["segments"]}
        except (FileNotFoundError, ValueError):
            return stray
        return stray + self.segs.unnamed(named)

    def gc(self) -> None:
        """Delete `stray_files()`. Never while the manifest is missing or damaged: those files are what a
        repair rebuilds from."""
        try:
            self._read_manifest()
        except (FileNotFoundError, ValueError):
            return
        for p in self.stray_files():
            p.unlink(missing_ok=True)

    # -- reads -----------------------------------------------------------------------------------
    def open(self) -> None:
        """Map every segment now (a reader's first question does this while its query encoders load);
        an unreadable one is left for `search` to warn about."""
        for s in self.manifest()["segments"]:
            try:
                self._index(s["file"])
            except (RuntimeError, OSError):
                continue

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

    def read_all(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every segment, decoded (compaction, benchmarks' exact baselines)."""
        return self._read_segments(self.manifest()["segments"])

    def ids(self) -> np.ndarray:
        """Every id in the readable segments (an unreadable one is skipped: `damaged()` names it)."""
        faiss = _faiss()
        out = []
        for s in self.manifest()["segments"]:
            try:
                out.append(faiss.vector_to_array(self._index(s["file"]).id_map))
            except (RuntimeError, OSError):
                continue
        return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)

    def search(self, q: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query row, merged over segments; ids -1 pad short results.

        `allowed` (chunk ids) is applied inside each segment's search (a FAISS id selector), not after it."""
        q = np.ascontiguousarray(np.atleast_2d(q), dtype=np.float32)
        params = None
        if allowed is not None:
            faiss = _faiss()
            sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            params = faiss.SearchParameters(sel=sel)
        all_s, all_i = [], []
        with _threads(1 if len(q) <= SMALL_QUERY else 0):
            for s in self.manifest()["segments"]:
                if s["n"] <= 0:
                    continue
                try:
                    index = self._index(s["file"])
                except (RuntimeError, OSError) as e:
                    if s["file"] not in self._warned:
                        self._warned.add(s["file"])
                        log.warning("skipping unreadable vector segment %s (%s); run `talkindex doctor --repair`",
                                    s["file"], str(e).splitlines()[0][:120])
                    continue
                sc, ix = index.search(q, min(k, s["n"]), params=params) if params else index.search(q, min(k, s["n"]))
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
