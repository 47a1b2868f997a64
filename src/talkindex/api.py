"""The Python API that the CLI, the web server, MCP, notebooks and batch jobs share.

    from talkindex import Index
    idx = Index("~/talks")
    idx.ingest(["https://…/feed.xml"])
    for hit in idx.ask("what is feature store drift", k=5):
        print(hit.title, hit.start, hit.link)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import NotFoundError
from .home import IndexConfig, Layout, default_home
from .index.store import Store
from .index.vectors import VectorIndex
from .records import TRUSTED, Hit, Transcript, chapters_of
from .requests import DEFAULT_K, AskRequest

__all__ = ["Index", "AskRequest", "default_home", "hits_json", "dumps"]


class Index:
    """One home directory: DuckDB + FAISS + transcript artifacts + media cache, read through one object."""

    def __init__(self, home: str | os.PathLike | None = None):
        self.layout = Layout(Path(home).expanduser() if home else default_home())
        self.home = self.layout.home
        self.layout.check_usable(write=False)
        self.store = Store(self.layout)
        self.vectors = VectorIndex(self.layout.vectors)
        self._searcher = None
        self._has_index = False
        from .search.batching import QueryBatcher

        self._batcher = QueryBatcher(lambda texts: self.searcher.encode(texts))  # the current searcher's

    # -- writing -----------------------------------------------------------------------------
    def ingest(self, inputs: list[str], options=None, progress=None, input_errors: list[str] | None = None):
        """Resolve, fetch or transcribe, chunk, embed and index `inputs` (URLs, feeds, paths) → IngestReport."""
        from .ingest.pipeline import Pipeline

        self._searcher = None
        return Pipeline(self.home, options, progress).ingest(inputs, input_errors)

    def doctor(self, repair: bool = False) -> tuple[list, list[str]]:
        """(problems left, repairs done): see `talkindex.ingest.doctor`. `repair` never re-transcribes."""
        from .ingest import doctor

        self._searcher = None
        done = doctor.repair(self.home) if repair else []
        return doctor.check(self.home), done

    # -- reading ---------------------------------------------------------------------------------
    @property
    def config(self) -> IndexConfig:
        """How this home's index was built (its saved config.json; defaults for a new home)."""
        return self.store.built_config(IndexConfig()) or IndexConfig()

    @property
    def embedder(self) -> str:
        return self.config.embedder

    @property
    def searcher(self):
        if self._searcher is None:
            from .search.searcher import Searcher

            self._searcher = Searcher(self.layout, self.store, self.vectors, self.config)
        return self._searcher

    def ask(self, question: str | AskRequest, k: int = DEFAULT_K, *, qvec=None, **filters) -> list[Hit]:
        """The `k` moments that best answer `question`. Filters: mode, show, since, episode (an
        `AskRequest` carries them all); UsageError for what no face of talkindex accepts. `qvec`: the
        question already encoded (`encode`), e.g. by a server encoding outside its ranking lock."""
        req = question if isinstance(question, AskRequest) else AskRequest.of(question, k, **filters)
        self._require_index()
        return self.searcher.search(req.question, self._options(req), qvec)

    @staticmethod
    def _options(req: AskRequest):
        from .search.searcher import SearchOptions

        return SearchOptions.of(req)

    def encode(self, req: AskRequest):
        """The question's vector for `ask(qvec=)` (None in keyword mode, which needs none); thread-safe:
        questions that arrive while another is being encoded are encoded together (`search.batching`)."""
        if req.mode == "keyword":
            return None
        self._require_index()
        return self._batcher(req.question)

    def ask_many(self, questions: list[str], k: int = DEFAULT_K, **filters) -> list[list[Hit]]:
        """Batch form of `ask`: the query encoder runs once over all questions; blank ones get []."""
        reqs = [AskRequest.of(q, k, **filters) if q.strip() else None for q in questions]
        good = [r for r in reqs if r is not None]
        if not good:
            return [[] for _ in questions]
        self._require_index()
        vecs = self.searcher.encode([r.question for r in good]) if good[0].mode != "keyword" else None
        out, j = [], 0
        for r in reqs:
            if r is None:
                out.append([])
                continue
            out.append(self.searcher.search(r.question, self._options(r), None if vecs is None else vecs[j]))
            j += 1
        return out

    def _require_index(self) -> None:
        if self._has_index:  # an index never becomes empty under a live reader
            return
        cat = self.searcher.snapshots.current() if self.layout.db.exists() else None
        if cat is not None and cat.episodes:  # the writer's snapshot: no DuckDB open (index/catalog.py)
            self._has_index = True
            return
        if not self.layout.db.exists() or not self.store.has_indexed():
            raise NotFoundError(f"{self.home}: the index is empty; run `talkindex ingest urls.txt` first")
        self._has_index = True

    def episodes(self) -> list[dict]:
        if not self.layout.db.exists():
            return []
        return self.store.episodes()

    def episode(self, episode_id: str) -> dict:
        row = self.store.episode(episode_id) if self.layout.db.exists() else None
        if row is None:
            raise NotFoundError(f"unknown episode {episode_id!r}: see `talkindex list`")
        return row

    def transcript(self, episode_id: str) -> Transcript:
        row = self.episode(episode_id)
        path = self.layout.transcript(episode_id)
        if row["status"] not in TRUSTED:
            raise NotFoundError(f"episode {episode_id!r} has no transcript yet (status: {row['status']})")
        try:
            t = Transcript.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            t, _ = self.store.transcript_rows(episode_id)  # the database still has every segment
            if t is None:
                raise NotFoundError(f"episode {episode_id!r}: transcript file is damaged ({type(e).__name__}) "
                                    "and cannot be rebuilt; run `talkindex doctor --repair`") from None
        if row.get("chapters"):  # what indexing decided (published, else detected) beats the file's
            t.chapters = chapters_of(row["chapters"])
        return t

    def media_path(self, episode_id: str) -> Path | None:
        """The local file that plays this indexed episode (a local input or the download cache), if any."""
        from .sources.mediacache import read_ok
        from .sources.ytdl import safe_id

        row = self.episode(episode_id)
        if row["status"] != "indexed":
            return None
        if row.get("local"):
            p = Path(row["media_url"])
            return p if p.is_file() else None
        name = safe_id(episode_id)
        home = self.home.resolve()
        for f in sorted(self.layout.media.glob(f"{name}.*")):  # only verified downloads (an .ok record)
            real = f.resolve()
            if f.is_symlink() or not real.is_relative_to(home):  # the cache only ever holds plain files
                continue
            rec = read_ok(f) if real.is_file() and not f.name.endswith(".ok") else None
            if rec and rec.get("size") == real.stat().st_size:
                return real
        return None

    def stats(self) -> dict:
        eps = self.episodes()
        size = sum(p.stat().st_size for p in self.home.rglob("*") if p.is_file() and "media" not in p.parts)
        return {
            "home": str(self.home), "episodes": len(eps),
            "indexed": sum(e["status"] == "indexed" for e in eps),
            "hours": round(sum(e["duration"] or 0 for e in eps if e["status"] == "indexed") / 3600, 3),
            "chunks": self.vectors.ntotal, "embedder": self.embedder, "index_bytes": size,
        }


def hits_json(hits: list[Hit]) -> list[dict]:
    from dataclasses import asdict

    return [asdict(h) for h in hits]


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)
