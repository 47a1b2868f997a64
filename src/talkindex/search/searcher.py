"""Question → ranked, answer-precise moments with deep links.

Dense (FAISS, inner product) and keyword (bm25.py segments) candidates are fused with reciprocal
rank fusion; each hit's start is moved to the sentence inside the chunk that best matches the
question, using the sentence vectors stored at ingest. Nothing here imports torch when an ONNX
export of the query encoder exists (ingest writes one).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..index.npzrows import NPZ_ERRORS, NpzRows, member_rows
from ..records import Hit
from ..requests import DEFAULT_MODE, AskRequest
from .links import youtube_id
from .ranking import _SentenceSims, rank_candidates, rerank_stage
from .snapshot import SnapshotRows, Snapshots, duck_rows

log = logging.getLogger("talkindex")


@dataclass
class SearchOptions:
    k: int = 5
    mode: str = DEFAULT_MODE
    show: str | None = None
    since: str | None = None  # YYYY-MM-DD
    episode: str | None = None
    candidates: int = 50  # per retriever, before fusion
    dense_weight: float = 1.0
    keyword_weight: float = 0.15  # hybrid mode: BM25's RRF weight (out of the default: it lost, issue 19)
    fusion: str = "rrf"  # rrf | linear (dense cosine + weight × max-normalised BM25)
    dedupe: bool = True
    # Dense score = (1 - w) × window cosine + w × its best sentence's cosine; with the ensemble each cosine
    # is the mean of the models' (the index's joined vectors). 0.5 won on 128 devset questions (issue 19).
    sentence_weight: float = 0.5
    precise: bool = True  # move a hit's start to a sentence inside its window (see `start`)
    start: str = "best"  # best | before (one sentence of lead-in) | chunk — see start_sentence()
    episode_weight: float = 0.5  # dense score += weight × its episode's mean top-3 candidate score (issue 12, 19)
    reranker: str | None = None  # a cross-encoder name or path: re-scores the fused top `rerank_top` (online)
    rerank_top: int = 20

    @classmethod
    def of(cls, req: AskRequest) -> SearchOptions:
        """The options an `AskRequest` runs with: its limits and filters, its tuning by name."""
        return cls(k=req.k, mode=req.mode, show=req.show, since=req.since, episode=req.episode, **req.tuning)


def deep_link(webpage_url: str, media_url: str, start: float, local: bool = False) -> str:
    """A URL that starts playback at `start` (whole seconds)."""
    t = max(0, int(math.floor(start)))
    url = webpage_url or media_url
    if local or url.startswith("/"):
        path = media_url if media_url.startswith("/") else url.removeprefix("file://")
        return f"file://{path}#t={t}"
    vid = youtube_id(url)
    if vid:
        return f"https://www.youtube.com/watch?v={vid}&t={t}s"
    return f"{url.split('#')[0]}#t={t}"


def chapter_at(chapters_json: str | None, t: float) -> str:
    """Title of the chapter that contains second `t` (chapters are stored as JSON on the episode)."""
    if not chapters_json:
        return ""
    import json

    from ..records import Chapter
    from ..transcripts.chapters import chapter_at as at

    try:
        return at([Chapter(**c) for c in json.loads(chapters_json)], t)
    except (ValueError, TypeError):
        return ""


STOP_WORDS = frozenset({"the", "a", "an", "of", "to", "in", "is", "are", "what", "how", "why", "and", "or", "for",
                        "on", "do", "does", "it", "that", "this", "with", "be", "by", "as", "at", "from", "was",
                        "when"})


def highlight_terms(query: str) -> list[str]:
    """The question's words worth marking in a hit's text (the CLI's and the page's highlighting)."""
    return [w for w in re.findall(r"[\w'-]+", query.lower()) if len(w) > 2 and w not in STOP_WORDS]


class Searcher:
    """Holds what a live process reuses between questions: encoder, FAISS and keyword segments."""

    def __init__(self, layout, store, vectors, config):
        self.layout = layout
        self.store = store
        self.vectors = vectors
        self.config = config  # home.IndexConfig: embedder and keyword tokeniser the index was built with
        self.embedder = config.embedder
        from ..index.bm25 import KeywordIndex
        from .rowcache import RowCache

        self.keywords = KeywordIndex(layout.keywords, config.keywords)
        self.row_cache = RowCache(store)
        self._encoder = None
        self._encoder_lock = threading.Lock()
        self._upgrading = False  # throughput sessions requested (see encode)
        self._vec_cache: OrderedDict[tuple[str, str], tuple[float, np.ndarray]] = OrderedDict()
        self._vec_bytes = 0
        self._paths: dict[tuple[str, bool], str] = {}  # (episode id, rows file?) → path (pathlib: ~20 µs a call)
        self.snapshots = Snapshots(layout)

    # -- query encoding ------------------------------------------------------------------------
    def encode(self, queries: list[str]) -> np.ndarray:
        """Query vectors (thread-safe: the encoders load once, onnxruntime runs concurrently).

        Why two kinds of session: the first question loads sessions built for a cold start (BASIC graph
        optimisation, no weight pre-packing: mpnet 75 ms to load, 55 ms a question), so a one-shot
        `talkindex ask` is quick; a process that asks again (serve, mcp, ask --file, a notebook) then builds
        throughput sessions in the background (430 ms once, 26 ms a question) and swaps them in."""
        if self._encoder is None:
            with self._encoder_lock:
                if self._encoder is None:
                    self._encoder = self._load_encoder()
        elif not self._upgrading:
            self._upgrading = True
            threading.Thread(target=self._upgrade, name="talkindex-encoder-upgrade", daemon=True).start()
        return self._encoder(queries)

    def _upgrade(self) -> None:
        try:
            self._encoder = self._load_encoder(bulk=True)
        except Exception:  # noqa: BLE001 - the cold-start sessions keep answering
            log.debug("could not build throughput sessions for the query encoders", exc_info=True)

    def _load_encoder(self, bulk: bool = False):
        """One query encoder per model of the index (ONNX when exported: no torch), joined as at ingest."""
        from functools import partial

        from ..embed.passages import join_unit

        names = self.config.embedders
        load = partial(self._member_encoder, bulk=bulk)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(names)) as pool:  # sessions load in parallel: a cold ask waits for the slowest
            loading = [pool.submit(load, name) for name in names]
            if not bulk:  # meanwhile (onnxruntime loads without the GIL): the first search maps them anyway
                self.vectors.open()
            encoders = [f.result() for f in loading]
        if len(encoders) == 1:
            return encoders[0]
        return lambda texts: join_unit([enc(texts) for enc in encoders])

    def _member_encoder(self, name: str, bulk: bool = False):
        from ..embed.passages import embedder_key, export_dir

        export = export_dir(name)
        if not bulk:
            from .prefetch import take

            ahead = take(export)  # loaded while the CLI's fast ask was importing (prefetch.py)
            if ahead is not None:
                return ahead
        try:
            from ..embed.onnx import load_query_encoder

            # throughput sessions spin only during a run (OnnxQueryEncoder); the second: homes before shared exports
            enc = load_query_encoder(export, bulk=bulk, spin=not bulk) or load_query_encoder(
                self.layout.query_encoder(embedder_key(name)), bulk=bulk, spin=not bulk)
        except ImportError:
            enc = None
        if enc is not None:
            return enc.encode
        if bulk:
            raise RuntimeError(f"no ONNX export of {name}")  # the first (torch) encoder stays
        log.info("no ONNX query encoder under %s; loading sentence-transformers", export)
        from ..embed.passages import Embedder

        return Embedder(name).encode_queries

    # -- search ----------------------------------------------------------------------------------
    def search(self, query: str, opts: SearchOptions, qvec: np.ndarray | None = None) -> list[Hit]:
        """The ranked hits for `query` (already validated: `requests.AskRequest`, as `Index.ask` builds)."""
        if qvec is None and opts.mode in ("hybrid", "dense"):
            qvec = self.encode([query])[0]  # before opening the database: hold it as briefly as possible
        cat = self.snapshots.current()
        source = contextlib.nullcontext(SnapshotRows(cat, self._stored, self.store)) if cat is not None \
            else duck_rows(self.store, self.row_cache)
        with source as src:
            allowed = self._filter(src, opts)
            dense = kw = None
            if opts.mode in ("hybrid", "dense"):
                dense = self._dense(qvec, opts, allowed)
            if opts.mode in ("hybrid", "keyword"):
                kw = self._keyword(query, opts, allowed)
            cand = set(dense or ()) | set(kw or ())
            rows = src.rows(cand, text=bool(opts.reranker))
            sims = _SentenceSims(self._sentence_vectors, qvec)
            if opts.reranker:
                ranked = rerank_stage(query, dense, kw, rows, sims, opts, self._cross_encoder(opts.reranker))
            else:
                ranked = rank_candidates(query, dense, kw, rows, sims, opts)
            src.add_texts({r.chunk_id: rows[r.chunk_id] for r in ranked})
            hits = [self._hit(rows[r.chunk_id], r.score, r.chunk_id) for r in ranked]
            if opts.precise and qvec is not None:
                self._precise(src, hits, rows, {r.chunk_id: r.sentence for r in ranked})
        for i, h in enumerate(hits, 1):
            h.rank = i
        return hits

    def _cross_encoder(self, name: str):
        """A sentence-transformers CrossEncoder as a `rerank_stage` scorer, loaded once (needs torch, and
        the hub when `name` is not a local directory)."""
        cached = self.__dict__.setdefault("_rerankers", {})
        if name not in cached:
            from sentence_transformers import CrossEncoder

            model = CrossEncoder(name, device="cpu")
            cached[name] = lambda q, texts: [float(x) for x in model.predict([(q, t) for t in texts])]
        return cached[name]

    def _filter(self, src, opts: SearchOptions) -> Allowed | None:
        """Chunk ids (and their episodes) allowed by --show/--since/--episode (None: no filter)."""
        if not (opts.show or opts.since or opts.episode):
            return None
        by_episode = src.filtered(opts.episode, opts.show, opts.since)
        allowed = Allowed(c for ids in by_episode.values() for c in ids)
        allowed.episodes = list(by_episode)
        return allowed

    def _dense(self, qvec: np.ndarray, opts: SearchOptions, allowed: Allowed | None) -> dict[int, float]:
        """Dense candidates. With a filter they are exact: the allowed episodes' stored vectors are scored
        directly (or, for filters spanning very many chunks, FAISS searches with an id selector), so a
        filtered ask never misses a match that ranks below the unfiltered top candidates."""
        if allowed is not None and len(allowed) <= EXACT_FILTER_MAX:
            return self._dense_exact(qvec, opts, allowed)
        scores, ids = self.vectors.search(qvec[None, :], opts.candidates,
                                          allowed=None if allowed is None else np.fromiter(allowed, np.int64))
        return {int(i): float(s) for s, i in zip(scores[0], ids[0]) if i >= 0}

    def _dense_exact(self, qvec: np.ndarray, opts: SearchOptions, allowed: Allowed) -> dict[int, float]:
        ids_l, sims_l = [], []
        for eid in allowed.episodes:
            got = self._episode_vectors(eid)
            if got is None:
                continue
            ids, vecs = got
            ids_l.append(ids)
            sims_l.append(vecs.astype(np.float32) @ qvec)
        if not ids_l:
            return {}
        ids, sims = np.concatenate(ids_l), np.concatenate(sims_l)
        keep = np.fromiter((int(i) in allowed for i in ids), bool, count=len(ids))
        ids, sims = ids[keep], sims[keep]
        top = np.argsort(-sims)[: opts.candidates]
        return {int(ids[i]): float(sims[i]) for i in top}

    def _keyword(self, query: str, opts: SearchOptions, allowed: set[int] | None) -> dict[int, float] | None:
        return dict(self.keywords.search(query, opts.candidates, allowed))

    def _hit(self, r: dict, score: float, cid: int) -> Hit:
        return Hit(
            rank=0, score=round(score, 6), episode_id=r["episode_id"], title=r["title"] or "", show=r["show"] or "",
            start=float(r["start"]), end=float(r["end"]), text=r["text"],
            link=deep_link(r["webpage_url"] or "", r["media_url"] or "", r["start"], bool(r["local"])),
            source_url=r["webpage_url"] or r["media_url"] or "", chunk_id=cid, chunk_start=float(r["start"]),
            published=str(r["published"]) if r["published"] else None, media_url=r["media_url"] or "",
            chapter=chapter_at(r.get("chapters"), float(r["start"])),
            transcript_source=r.get("transcript_source") or "asr",
        )

    def _precise(self, src, hits: list[Hit], rows: dict[int, dict], sentence_of: dict[int, int | None]) -> None:
        """Move each hit's start to the sentence `rank_candidates` chose (the end stays the window's)."""
        starts: dict[tuple[str, int], tuple[float, str]] = {}
        for h in hits:
            eid, i = rows[h.chunk_id]["episode_id"], sentence_of.get(h.chunk_id)
            st = None if i is None else self._stored(eid, "sent_starts")
            if st is not None and 0 <= i < len(st):
                spk = self._stored(eid, "sent_speakers")
                starts[(eid, i)] = (float(st[i]), str(spk[i]) if spk is not None and i < len(spk) else "")
        older = [(rows[h.chunk_id]["episode_id"], sentence_of[h.chunk_id]) for h in hits
                 if sentence_of.get(h.chunk_id) is not None]
        older = [w for w in older if w not in starts]  # embeddings written before sent_starts existed
        if older:
            starts.update(src.sentence_starts(older))
        for h in hits:
            r = rows[h.chunk_id]
            i = sentence_of.get(h.chunk_id)
            got = starts.get((r["episode_id"], i)) if i is not None else None
            if got is not None:
                h.start, h.speaker = float(got[0]), got[1]
                h.link = deep_link(r["webpage_url"] or "", r["media_url"] or "", h.start, bool(r["local"]))
                h.chapter = chapter_at(r.get("chapters"), h.start)

    def _stored(self, episode_id: str, key: str) -> np.ndarray | None:
        """One array of an episode's embeddings file (`sent_vecs`, `sent_starts`, `chunk_ids`, ...), cached
        until its file changes. The vectors (`ROWS_ON_DEMAND`) are views that read only the rows asked
        for (npzrows.py), the OS page cache caching the file. Sentence vectors stay views: a question
        scores a few sentences in each of ~50 episodes (~7 µs a read), while holding whole arrays cost a
        one-shot `ask` ~160 MB of reads at 100k chunks (a third of its time) and a live reader up to
        VECTOR_CACHE_BYTES. Chunk vectors (a filtered exact search reads all of an episode's) are held
        from their second use on, least recently used dropped beyond the budget."""
        in_rows = key in ROWS_FILE
        path = self._paths.get((episode_id, in_rows))
        if path is None:
            path = self._paths[(episode_id, in_rows)] = str(
                self.layout.rows(episode_id) if in_rows else self.layout.embeddings(episode_id))
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return None
        cached = self._vec_cache.get((episode_id, key))
        try:
            if cached and cached[0] == mtime:
                self._vec_cache.move_to_end((episode_id, key))
                arr = cached[1]
                if not (key in HELD_ON_REUSE and isinstance(arr, NpzRows) and self._fits(arr)):
                    return arr
                arr = np.asarray(arr)  # asked for again: held in memory now (one read, no CRC pass)
            else:
                arr = member_rows(path, key) if key in ROWS_ON_DEMAND or in_rows else None
                if arr is None:
                    with np.load(path) as z:
                        arr = z[key] if key in z.files else None  # None is cached too (older files lack sent_starts)
                elif in_rows and self._fits(arr):
                    arr = np.asarray(arr)  # rows files are small and read whole
        except NPZ_ERRORS:
            return None
        if key == "chunk_ids" and arr is not None:
            arr = arr.astype(np.int64)
        old = self._vec_cache.pop((episode_id, key), None)
        self._vec_bytes += _nbytes(arr) - (_nbytes(old[1]) if old else 0)
        self._vec_cache[(episode_id, key)] = (mtime, arr)
        while self._vec_bytes > VECTOR_CACHE_BYTES and len(self._vec_cache) > 1:
            self._vec_bytes -= _nbytes(self._vec_cache.popitem(last=False)[1][1])
        return arr

    def _fits(self, arr: NpzRows) -> bool:
        return self._vec_bytes + arr.shape[0] * arr.row_bytes <= VECTOR_CACHE_BYTES

    def _sentence_vectors(self, episode_id: str) -> np.ndarray | None:
        return self._stored(episode_id, "sent_vecs")

    def _episode_vectors(self, episode_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        ids = self._stored(episode_id, "chunk_ids")
        vecs = None if ids is None else self._stored(episode_id, "chunk_vecs")
        return None if vecs is None else (ids, vecs)


def _nbytes(a: np.ndarray | None) -> int:
    return 0 if a is None else a.nbytes


ROWS_FILE = ("ids", "fields", "text_end", "text")  # members of an episode's rows.npz (index/catalog.py)
ROWS_ON_DEMAND = ("sent_vecs", "chunk_vecs")  # read by rows from the file (npzrows.py) unless held
HELD_ON_REUSE = ("chunk_vecs",)  # held in memory from the second use on, within VECTOR_CACHE_BYTES (see _stored)
VECTOR_CACHE_BYTES = 512 * 2**20  # stored vectors a live reader keeps (float16: ~330k sentences)
EXACT_FILTER_MAX = 200_000  # chunks: up to this many, a filtered dense search scores stored vectors exactly


class Allowed(set):
    """The chunk ids a filter allows, with the episodes they belong to."""

    episodes: list[str]


def load_questions(path: Path) -> list[str]:
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
