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

import functools
import logging
import math
import shutil
from pathlib import Path

import numpy as np

from .keywords import keyword_units, unit_tokens
from .segments import MAX_SEGMENTS, SegmentDir, segments_to_merge

log = logging.getLogger("talkindex")

K1, B = 1.2, 0.75
BUILD_BATCH = 20_000  # documents tokenised per part of a rebuild
PRUNE_MIN = 200_000  # postings of a question in one segment above which its top k is found by MaxScore
CHECK_MIN = 20_000  # postings of a term above which MaxScore checks whether the remaining terms can matter
MAX_TERM = 24  # characters kept of a term (grams are 4-6; long words are cut, which BM25 barely notices)
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with what how why do does did i you we he she me my our your so um uh".split())


def terms_of(text: str, tokenizer: str) -> list[str]:
    """The BM25 terms of `text` (index side and query side alike)."""
    return [t for u in keyword_units(text, tokenizer) for t in _unit_terms(u, tokenizer)]


@functools.lru_cache(maxsize=1 << 18)
def _unit_terms(unit: str, tokenizer: str) -> tuple[str, ...]:
    return tuple(t[:MAX_TERM] for t in unit_tokens(unit, tokenizer) if t not in STOPWORDS)


class KeywordIndex:
    def __init__(self, directory: Path, tokenizer: str = "chargram-4-6", prune_min: int | None = None,
                 check_min: int | None = None):
        self.dir = Path(directory)
        self.segs = SegmentDir(self.dir, "kw")
        self.tokenizer = tokenizer
        self.prune_min = PRUNE_MIN if prune_min is None else prune_min  # (tests lower both)
        self.check_min = CHECK_MIN if check_min is None else check_min
        self._loaded: dict[str, dict[str, np.ndarray]] = {}

    # -- manifest ----------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.segs.manifest_path

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def manifest(self) -> dict:
        try:
            return self.segs.read_manifest()
        except (OSError, ValueError):
            return {"tokenizer": self.tokenizer, "segments": [], "seq": self.segs.max_seq()}

    def damaged(self) -> str | None:
        if not self.manifest_path.exists():
            return None
        try:
            m = self.segs.read_manifest()
        except (OSError, ValueError):
            return "the keyword index manifest is damaged"
        try:
            for s in m["segments"]:
                self._segment(s["name"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"the keyword index is damaged ({type(e).__name__})"
        return None

    def _write_manifest(self, m: dict) -> None:
        self.segs.write_manifest(m)

    @property
    def n_docs(self) -> int:
        return sum(s["n"] for s in self.manifest()["segments"])

    # -- writes (the pipeline only) -------------------------------------------------------------
    def add(self, ids: list[int], texts: list[str]) -> None:
        """Index one batch of chunks (an episode) as a new segment; the manifest rename commits it."""
        if not ids:
            return
        self._commit_new([self._build(np.asarray(ids, np.int64), texts)])

    def rebuild(self, ids: list[int], texts: list[str]) -> None:
        """Replace every segment with one over (ids, texts): migration and repair."""
        seq = max(self.manifest().get("seq", 0), self.segs.max_seq())
        m = {"tokenizer": self.tokenizer, "segments": [], "seq": seq}
        if ids:  # built in batches and merged: memory is the postings, not Python objects for all of them
            parts = [self._build(np.asarray(ids[i:i + BUILD_BATCH], np.int64), texts[i:i + BUILD_BATCH])
                     for i in range(0, len(ids), BUILD_BATCH)]
            m["segments"].append(self._write(m, parts[0] if len(parts) == 1 else self._merge(parts, None)))
            del parts
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
        for p in self.segs.unnamed({s["name"] for s in self.manifest()["segments"]}):
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

    def _build(self, ids: np.ndarray, texts: list[str]) -> dict:
        """A segment's arrays from documents: words → term ids in Python (memoised per word), then
        term frequencies and the by-term posting order from one numpy sort (110 µs a 56-word chunk,
        ~4x faster than Counters and per-posting lists, which made a 1M-chunk build impractical)."""
        index: dict[str, int] = {}
        of_unit: dict[str, list[int]] = {}  # a word's term ids (terms_of, memoised per word)
        tok_ids: list[int] = []
        lens = np.zeros(len(texts), np.int32)
        for j, t in enumerate(texts):
            n0 = len(tok_ids)
            for u in keyword_units(t, self.tokenizer):
                got = of_unit.get(u)
                if got is None:
                    got = of_unit[u] = [index.setdefault(x, len(index)) for x in _unit_terms(u, self.tokenizer)]
                tok_ids.extend(got)
            lens[j] = len(tok_ids) - n0
        n_docs = len(texts)
        vocab = np.asarray(list(index), dtype=f"<U{MAX_TERM}")
        by_name = np.argsort(vocab, kind="stable")
        rank = np.empty(len(vocab), np.int64)  # first-seen id → position in the sorted vocabulary
        rank[by_name] = np.arange(len(vocab))
        doc_of = np.repeat(np.arange(n_docs, dtype=np.int64), lens)
        # one sort gives term frequencies and the posting order (by term, then document)
        keys, tf = np.unique(rank[np.asarray(tok_ids, np.int64)] * n_docs + doc_of, return_counts=True)
        term, doc = keys // n_docs, keys % n_docs
        counts = np.bincount(term, minlength=len(vocab)) if len(vocab) else np.zeros(0, np.int64)
        return {
            "terms": vocab[by_name],
            "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            "docs": doc.astype(np.int32), "tfs": tf.astype(np.float32),
            "ids": ids, "lens": lens,
        }

    @staticmethod
    def _merge(segs: list[dict], live_ids: set[int] | None) -> dict:
        """One segment's arrays from several, without expanding terms per posting.

        Why this shape: a merge at 1M chunks moves ~250M postings; expanding each posting's term as a
        string (the obvious lexsort) would need ~24 GB. Here each term's postings stay in their
        segments' order (segments are concatenated in order, and a segment's postings of a term are
        sorted by document), so every block is copied once to an offset computed from counts:
        memory is the output arrays plus one segment's temporaries."""
        if not segs:
            return {"ids": np.zeros(0, np.int64)}
        vocab = np.unique(np.concatenate([np.asarray(s["terms"]) for s in segs]))
        kept_l, counts_l, gmap_l = [], [], []
        total = np.zeros(len(vocab), np.int64)
        for s in segs:
            n = len(s["ids"])
            keep = np.ones(n, bool) if live_ids is None else np.fromiter(
                (int(i) in live_ids for i in s["ids"]), bool, count=n)
            gmap = np.searchsorted(vocab, np.asarray(s["terms"]))  # local term → global term
            term_of = np.repeat(np.arange(len(s["terms"])), np.diff(np.asarray(s["offsets"])))
            ok = keep[np.asarray(s["docs"])]
            counts = np.bincount(gmap[term_of[ok]], minlength=len(vocab)) if len(term_of) else \
                np.zeros(len(vocab), np.int64)
            kept_l.append(keep)
            counts_l.append(counts)
            gmap_l.append(gmap)
            total += counts
        offsets = np.concatenate([[0], np.cumsum(total)]).astype(np.int64)
        docs = np.empty(int(offsets[-1]), np.int32)
        tfs = np.empty(int(offsets[-1]), np.float32)
        cursor = offsets[:-1].copy()  # where the next segment's block of each term goes
        base = 0
        for s, keep, counts, gmap in zip(segs, kept_l, counts_l, gmap_l, strict=True):
            new_index = np.cumsum(keep) - 1 + base
            off = np.asarray(s["offsets"])
            term_of = np.repeat(np.arange(len(s["terms"])), np.diff(off))
            sdocs = np.asarray(s["docs"])
            ok = keep[sdocs]
            g = gmap[term_of[ok]]
            # rank of each kept posting inside its term's block of this segment (`counts`: block sizes;
            # term_of and ok are recomputed rather than kept, so only one segment's temporaries live)
            first = np.concatenate([[0], np.cumsum(counts)])[g]
            rank = np.arange(len(g)) - first
            dest = cursor[g] + rank
            docs[dest] = new_index[sdocs[ok]]
            tfs[dest] = np.asarray(s["tfs"])[ok]
            cursor += counts
            base += int(keep.sum())
        present = total > 0
        starts = offsets[:-1][present]
        return {"terms": vocab[present].astype(f"<U{MAX_TERM}"),
                "offsets": np.concatenate([starts, [offsets[-1]]]).astype(np.int64),
                "docs": docs, "tfs": tfs,
                "ids": np.concatenate([np.asarray(s["ids"])[k] for s, k in zip(segs, kept_l, strict=True)]).astype(
                    np.int64),
                "lens": np.concatenate([np.asarray(s["lens"])[k] for s, k in zip(segs, kept_l, strict=True)]).astype(
                    np.int32)}

    def _write(self, m: dict, arrays: dict) -> dict:
        """Write one segment folder durably under a never-used name; returns its manifest entry."""
        from ..fsutil import fsync_dir, fsync_file

        self.dir.mkdir(parents=True, exist_ok=True)
        name = self.segs.new_name(m)
        tmp = self.segs.tmp(name)
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
            # plain ndarray views of the maps: slicing a np.memmap costs ~10 µs of Python per slice
            seg = {k: np.asarray(np.load(d / f"{k}.npy", mmap_mode="r")) for k in ("terms", "offsets", "docs", "tfs",
                                                                                    "ids", "lens")}
            self._loaded[name] = seg
        return seg

    def _top_k_pruned(self, seg: dict, lo, hi, sel, idf, avgdl: float, k: int) -> tuple[np.ndarray, np.ndarray]:
        """A segment's exact top k (documents, scores) without reading every posting (MaxScore).

        Why: at 1M chunks a question's character grams reach ~3M postings, most of them of grams of
        common words, whose weight is small. A term adds at most idf (K1 + 1) to any document. Terms
        are taken rarest first; once the bound of all the remaining ones falls below θ (the k-th best
        score so far, which final scores can only raise), no document they alone contain can reach the
        top k, so they are looked up (binary search in their doc-sorted postings) only for documents
        already seen whose score plus that bound can still reach θ. Scores are equal to the full path's."""
        norm = self._norm(seg, avgdl)
        docs_a, tfs_a = seg["docs"], seg["tfs"]
        order = sel[np.argsort(idf[sel] * -1.0, kind="stable")]  # highest idf (bound) first
        bound = idf[order] * (K1 + 1)
        rest = np.concatenate([np.cumsum(bound[::-1])[::-1], [0.0]])  # rest[i]: bound of terms i..end
        scores = np.zeros(len(seg["lens"]), np.float32)
        theta, i, seen = 0.0, 0, 0
        while i < len(order):
            t = order[i]
            if seen >= k and hi[t] - lo[t] > self.check_min:  # before a long list: can the rest still matter?
                nz = scores[np.flatnonzero(scores)]
                if len(nz) >= k:
                    theta = float(np.partition(nz, len(nz) - k)[len(nz) - k])
                    if rest[i] < theta:
                        break
            d, tf = docs_a[lo[t]:hi[t]], tfs_a[lo[t]:hi[t]]
            scores[d] += np.float32(bound[i]) * tf / (tf + norm[d])
            seen += len(d)  # an upper bound on documents seen: enough to know when k exist
            i += 1
        cand = np.flatnonzero(scores)
        if i < len(order):
            cand = cand[scores[cand] + rest[i] >= theta]
            for j in range(i, len(order)):
                t = order[j]
                dt = docs_a[lo[t]:hi[t]]
                pos = np.minimum(np.searchsorted(dt, cand), len(dt) - 1)
                found = dt[pos] == cand
                c, tf = cand[found], tfs_a[lo[t] + pos[found]]
                scores[c] += np.float32(bound[j]) * tf / (tf + norm[c])
                cand = cand[scores[cand] + rest[j + 1] >= theta]
        if len(cand) > k:
            cand = cand[np.argpartition(-scores[cand], k - 1)[:k]]
        return cand, scores[cand]

    @staticmethod
    def _norm(seg: dict, avgdl: float) -> np.ndarray:
        """K1 (1 - B + B len/avgdl) per document, kept until the corpus's average length changes."""
        got = seg.get("_norm")
        if got is None or got[0] != avgdl:
            got = seg["_norm"] = (avgdl, (K1 * (1 - B + B * seg["lens"] / avgdl)).astype(np.float32))
        return got[1]

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
            sel = np.nonzero(hi > lo)[0]
            if not len(sel):
                continue
            if allowed is None and int((hi - lo)[sel].sum()) > self.prune_min:
                hit, sc = self._top_k_pruned(seg, lo, hi, sel, idf, avgdl, k)
                out_ids.append(np.asarray(seg["ids"])[hit])
                out_scores.append(sc)
                continue
            # all the query terms' postings at once, summed per document by bincount: one pass over
            # the postings instead of a scatter per term (a 100k-chunk query reads ~300k postings)
            d = np.concatenate([seg["docs"][lo[t]:hi[t]] for t in sel])
            tf = np.concatenate([seg["tfs"][lo[t]:hi[t]] for t in sel])
            w = np.repeat(idf[sel].astype(np.float32) * np.float32(K1 + 1), (hi - lo)[sel])
            contrib = tf * w
            contrib /= tf + self._norm(seg, avgdl)[d]
            scores = np.bincount(d, weights=contrib, minlength=len(seg["lens"]))
            hit = np.nonzero(scores)[0]
            if allowed is None and len(hit) > k:  # the global top k is among each segment's top k
                hit = hit[np.argpartition(-scores[hit], k - 1)[:k]]
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
