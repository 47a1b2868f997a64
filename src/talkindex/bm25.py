"""The keyword (BM25) index: immutable segments plus a manifest, like the FAISS vectors beside it.

Adding an episode writes one small segment (its chunks' postings) and rewrites only the manifest, so
the cost of an ingest does not grow with the corpus and no global rebuild ever holds the write lock
(DuckDB's fts extension can only rebuild the whole index). Statistics that BM25 needs across the
corpus (N, average length, document frequency) are summed over segments at query time, so scores
equal those of one big index. Segments are folders of .npy arrays read with mmap: a cold `ask`
touches only the vocabulary pages it binary-searches and the postings of the query's terms.

Segment arrays: `terms` (sorted), `offsets` (postings of terms[i] are [offsets[i], offsets[i+1])),
`docs` (segment-local document index), `tfs`, `ids` (chunk ids), `lens` (document lengths).
Chunk ids whose chunks were replaced are dropped by `compact(live_ids=)`; until then search returns
them and the caller skips them (as it does for vectors).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from .keywords import keyword_text
from .vectors import segments_to_merge

log = logging.getLogger("talkindex")

K1, B = 1.2, 0.75
MAX_SEGMENTS = 8
MAX_TERM = 24  # characters kept of a term (grams are 4-6; long words are cut, which BM25 barely notices)
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with what how why do does did i you we he she me my our your so um uh".split())


def terms_of(text: str, tokenizer: str) -> list[str]:
    """The BM25 terms of `text` (index side and query side alike)."""
    return [t[:MAX_TERM] for t in keyword_text(text, tokenizer).lower().split() if t not in STOPWORDS]


class KeywordIndex:
    def __init__(self, directory: Path, tokenizer: str = "chargram-4-6"):
        self.dir = Path(directory)
        self.tokenizer = tokenizer
        self._loaded: dict[str, dict[str, np.ndarray]] = {}

    # -- manifest ----------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.dir / "manifest.json"

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def manifest(self) -> dict:
        try:
            m = json.loads(self.manifest_path.read_text())
            if isinstance(m, dict) and isinstance(m.get("segments"), list):
                return m
        except (OSError, ValueError):
            pass
        return {"tokenizer": self.tokenizer, "segments": [], "seq": self._max_seq()}

    def damaged(self) -> str | None:
        if not self.manifest_path.exists():
            return None
        try:
            m = json.loads(self.manifest_path.read_text())
            if not isinstance(m, dict) or not isinstance(m.get("segments"), list):
                return "the keyword index manifest is damaged"
            for s in m["segments"]:
                self._segment(s["name"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"the keyword index is damaged ({type(e).__name__})"
        return None

    def _max_seq(self) -> int:
        seq = 0
        for p in self.dir.glob("kw-*"):
            try:
                seq = max(seq, int(p.name.split("-")[1].split(".")[0]))
            except (IndexError, ValueError):
                pass
        return seq

    def _write_manifest(self, m: dict) -> None:
        from .fsutil import atomic_write_text

        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.manifest_path, json.dumps(m, indent=1))

    @property
    def n_docs(self) -> int:
        return sum(s["n"] for s in self.manifest()["segments"])

    # -- writes (the pipeline only) -------------------------------------------------------------
    def add(self, ids: list[int], texts: list[str]) -> None:
        """Index one batch of chunks (an episode) as a new segment; the manifest rename commits it."""
        if not ids:
            return
        docs = [Counter(terms_of(t, self.tokenizer)) for t in texts]
        self._commit_new([self._build(np.asarray(ids, np.int64), docs)])

    def rebuild(self, ids: list[int], texts: list[str]) -> None:
        """Replace every segment with one over (ids, texts): migration and repair."""
        m = {"tokenizer": self.tokenizer, "segments": [], "seq": max(self.manifest().get("seq", 0), self._max_seq())}
        if ids:
            docs = [Counter(terms_of(t, self.tokenizer)) for t in texts]
            m["segments"].append(self._write(m, self._build(np.asarray(ids, np.int64), docs)))
        self._write_manifest(m)
        self._loaded.clear()
        self.gc()

    def compact(self, live_ids: set[int] | None = None, full: bool = False) -> bool:
        """Merge small segments (all with `full` or `live_ids`), keeping only `live_ids` if given."""
        m = self.manifest()
        segs = m["segments"]
        merge = segments_to_merge(segs, full or live_ids is not None, MAX_SEGMENTS)
        if not merge:
            return False
        arrays = self._merge([self._segment(s["name"]) for s in merge], live_ids)
        names = {s["name"] for s in merge}
        m["segments"] = [s for s in segs if s["name"] not in names]
        if len(arrays["ids"]):
            m["segments"].append(self._write(m, arrays))
        self._write_manifest(m)
        self._loaded.clear()
        self.gc()
        return True

    def gc(self) -> None:
        """Delete segment folders the manifest does not name (left by compaction or a crash)."""
        if not self.manifest_path.exists():
            return
        named = {s["name"] for s in self.manifest()["segments"]}
        for p in self.dir.glob("kw-*"):
            if p.name not in named:
                shutil.rmtree(p, ignore_errors=True)

    def _commit_new(self, built: list[dict]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        m = self.manifest()
        m["tokenizer"] = self.tokenizer
        for arrays in built:
            m["segments"].append(self._write(m, arrays))
        self._write_manifest(m)
        if len(m["segments"]) > MAX_SEGMENTS:
            self.compact()

    @staticmethod
    def _build(ids: np.ndarray, docs: list[Counter]) -> dict:
        vocab = sorted({t for d in docs for t in d})
        index = {t: i for i, t in enumerate(vocab)}
        rows, cols, tfs = [], [], []
        for j, d in enumerate(docs):
            for t, n in d.items():
                rows.append(index[t])
                cols.append(j)
                tfs.append(n)
        rows_a = np.asarray(rows, np.int64)
        order = np.argsort(rows_a, kind="stable")
        counts = np.bincount(rows_a, minlength=len(vocab))
        return {
            "terms": np.asarray(vocab, dtype=f"<U{MAX_TERM}"),
            "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            "docs": np.asarray(cols, np.int32)[order], "tfs": np.asarray(tfs, np.float32)[order],
            "ids": ids, "lens": np.asarray([sum(d.values()) for d in docs], np.int32),
        }

    @staticmethod
    def _merge(segs: list[dict], live_ids: set[int] | None) -> dict:
        """One segment's arrays from several (postings expanded, filtered, re-sorted by term)."""
        terms_l, docs_l, tfs_l, ids_l, lens_l, base = [], [], [], [], [], 0
        for s in segs:
            keep = np.ones(len(s["ids"]), bool) if live_ids is None else np.fromiter(
                (int(i) in live_ids for i in s["ids"]), bool, count=len(s["ids"]))
            new_index = np.cumsum(keep) - 1 + base
            per_term = np.diff(s["offsets"])
            term_of = np.repeat(np.arange(len(s["terms"])), per_term)
            ok = keep[s["docs"]]
            terms_l.append(np.asarray(s["terms"])[term_of[ok]])
            docs_l.append(new_index[s["docs"][ok]])
            tfs_l.append(np.asarray(s["tfs"])[ok])
            ids_l.append(np.asarray(s["ids"])[keep])
            lens_l.append(np.asarray(s["lens"])[keep])
            base += int(keep.sum())
        if not segs:
            return {"ids": np.zeros(0, np.int64)}
        terms = np.concatenate(terms_l)
        docs = np.concatenate(docs_l).astype(np.int32)
        tfs = np.concatenate(tfs_l).astype(np.float32)
        order = np.lexsort((docs, terms))
        terms, docs, tfs = terms[order], docs[order], tfs[order]
        vocab, starts = np.unique(terms, return_index=True)
        return {"terms": vocab.astype(f"<U{MAX_TERM}"),
                "offsets": np.concatenate([starts, [len(terms)]]).astype(np.int64),
                "docs": docs, "tfs": tfs, "ids": np.concatenate(ids_l).astype(np.int64),
                "lens": np.concatenate(lens_l).astype(np.int32)}

    def _write(self, m: dict, arrays: dict) -> dict:
        """Write one segment folder durably under a never-used name; returns its manifest entry."""
        from .fsutil import fsync_dir, fsync_file

        self.dir.mkdir(parents=True, exist_ok=True)
        m["seq"] = max(int(m.get("seq") or 0), self._max_seq()) + 1
        name = f"kw-{m['seq']:06d}"
        tmp = self.dir / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for key, arr in arrays.items():
            np.save(tmp / f"{key}.npy", arr)
            fsync_file(tmp / f"{key}.npy")
        fsync_dir(tmp)
        tmp.rename(self.dir / name)
        fsync_dir(self.dir)
        return {"name": name, "n": int(len(arrays["ids"])), "length": int(np.asarray(arrays["lens"]).sum())}

    # -- reads -----------------------------------------------------------------------------------
    def _segment(self, name: str) -> dict[str, np.ndarray]:
        seg = self._loaded.get(name)
        if seg is None:
            d = self.dir / name
            seg = {k: np.load(d / f"{k}.npy", mmap_mode="r") for k in ("terms", "offsets", "docs", "tfs", "ids",
                                                                        "lens")}
            self._loaded[name] = seg
        return seg

    def ids(self) -> np.ndarray:
        out = []
        for s in self.manifest()["segments"]:
            try:
                out.append(np.asarray(self._segment(s["name"])["ids"]))
            except (OSError, ValueError):
                continue
        return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)

    def search(self, query: str, k: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        """Top-k (chunk id, BM25 score), optionally only among `allowed` chunk ids (exact: every
        matching document of an allowed id is scored, however many others rank above it)."""
        q = sorted(set(terms_of(query, self.tokenizer)))
        segs = []
        for s in self.manifest()["segments"]:
            try:
                segs.append((s, self._segment(s["name"])))
            except (OSError, ValueError) as e:
                log.warning("skipping unreadable keyword segment %s (%s); run `talkindex doctor --repair`",
                            s["name"], type(e).__name__)
        if not q or not segs:
            return []
        n_docs = sum(s["n"] for s, _ in segs)
        avgdl = max(1e-9, sum(s["length"] for s, _ in segs) / max(1, n_docs))
        qa = np.asarray(q, dtype=f"<U{MAX_TERM}")
        where = []  # per segment: (positions of query terms found, their postings ranges)
        df = np.zeros(len(q), np.int64)
        for _, seg in segs:
            pos = np.searchsorted(seg["terms"], qa)
            pos_c = np.minimum(pos, len(seg["terms"]) - 1)
            found = (pos < len(seg["terms"])) & (np.asarray(seg["terms"])[pos_c] == qa) if len(seg["terms"]) else \
                np.zeros(len(q), bool)
            lo = np.where(found, np.asarray(seg["offsets"])[pos_c], 0)
            hi = np.where(found, np.asarray(seg["offsets"])[np.minimum(pos_c + 1, len(seg["offsets"]) - 1)], 0)
            df += hi - lo
            where.append((lo, hi))
        idf = np.log((n_docs - df + 0.5) / (df + 0.5) + 1.0)
        out_ids, out_scores = [], []
        for (_, seg), (lo, hi) in zip(segs, where):
            lens = np.asarray(seg["lens"], np.float32)
            norm = K1 * (1 - B + B * lens / avgdl)
            scores = np.zeros(len(lens), np.float32)
            for t in range(len(q)):
                if hi[t] <= lo[t]:
                    continue
                d = np.asarray(seg["docs"][lo[t]:hi[t]])
                tf = np.asarray(seg["tfs"][lo[t]:hi[t]])
                scores[d] += idf[t] * tf * (K1 + 1) / (tf + norm[d])
            hit = np.nonzero(scores)[0]
            ids = np.asarray(seg["ids"])[hit]
            if allowed is not None:
                keep = np.fromiter((int(i) in allowed for i in ids), bool, count=len(ids))
                hit, ids = hit[keep], ids[keep]
            out_ids.append(ids)
            out_scores.append(scores[hit])
        ids = np.concatenate(out_ids) if out_ids else np.zeros(0, np.int64)
        scores = np.concatenate(out_scores) if out_scores else np.zeros(0, np.float32)
        if len(ids) > k:
            top = np.argpartition(-scores, k - 1)[:k]
            ids, scores = ids[top], scores[top]
        order = np.argsort(-scores, kind="stable")
        return [(int(ids[i]), float(scores[i])) for i in order if math.isfinite(scores[i])]
