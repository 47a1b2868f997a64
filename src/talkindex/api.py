"""The Python API that the CLI, notebooks and batch jobs share.

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

from .errors import NotFoundError, UsageError
from .pipeline import IngestOptions, IngestReport, Layout, Pipeline, Progress, transcript_from_json
from .records import Hit, Transcript
from .search import Searcher, SearchOptions
from .store import Store
from .vectors import VectorIndex


def default_home() -> Path:
    env = os.environ.get("TALKINDEX_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("talkindex", appauthor=False))


class Index:
    """One home directory: DuckDB + FAISS + transcript artifacts + media cache."""

    def __init__(self, home: str | os.PathLike | None = None):
        self.home = Path(home).expanduser() if home else default_home()
        self.layout = Layout(self.home)
        self.store = Store(self.layout.db)
        self.vectors = VectorIndex(self.layout.vectors)
        self._searcher: Searcher | None = None

    # -- writing -----------------------------------------------------------------------------
    def ingest(
        self, inputs: list[str], options: IngestOptions | None = None, progress: Progress | None = None,
        input_errors: list[str] | None = None,
    ) -> IngestReport:
        """Resolve, download, transcribe, chunk, embed and index `inputs` (URLs, feeds, paths)."""
        self._searcher = None
        return Pipeline(self.home, options, progress).ingest(inputs, input_errors)

    # -- reading ---------------------------------------------------------------------------------
    @property
    def embedder(self) -> str:
        from .embedding import DEFAULT_EMBEDDER

        return (self.store.get_meta("embedder") if self.layout.db.exists() else None) or DEFAULT_EMBEDDER

    @property
    def searcher(self) -> Searcher:
        if self._searcher is None:
            self._searcher = Searcher(self.layout, self.store, self.vectors, self.embedder)
        return self._searcher

    def ask(self, question: str, k: int = 5, **filters) -> list[Hit]:
        """The `k` moments that best answer `question`. Filters: mode, show, since, episode."""
        opts = SearchOptions(k=k, **filters)
        if k < 1:
            raise UsageError("k must be at least 1")
        self._require_index()
        return self.searcher.search(question, opts)

    def ask_many(self, questions: list[str], k: int = 5, **filters) -> list[list[Hit]]:
        """Batch form of `ask`: the query encoder runs once over all questions."""
        self._require_index()
        opts = SearchOptions(k=k, **filters)
        good = [q for q in questions if q.strip()]
        vecs = self.searcher.encode(good) if good and opts.mode != "keyword" else None
        out, j = [], 0
        for q in questions:
            if not q.strip():
                out.append([])
                continue
            out.append(self.searcher.search(q, opts, None if vecs is None else vecs[j]))
            j += 1
        return out

    def _require_index(self) -> None:
        if not self.layout.db.exists() or self.vectors.ntotal == 0:
            raise NotFoundError(f"{self.home}: the index is empty; run `talkindex ingest urls.txt` first")

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
        if row["status"] not in ("transcribed", "indexed") or not path.exists():
            raise NotFoundError(f"episode {episode_id!r} has no transcript yet (status: {row['status']})")
        return transcript_from_json(path.read_text(encoding="utf-8"))

    def stats(self) -> dict:
        eps = self.episodes()
        size = sum(p.stat().st_size for p in self.home.rglob("*") if p.is_file() and "media" not in p.parts)
        return {
            "home": str(self.home), "episodes": len(eps),
            "indexed": sum(e["status"] == "indexed" for e in eps),
            "hours": round(sum(e["duration"] or 0 for e in eps if e["status"] == "indexed") / 3600, 3),
            "chunks": self.vectors.ntotal, "embedder": self.embedder, "index_bytes": size,
        }

    def doctor(self, repair: bool = False) -> tuple[list, list[str]]:
        """(problems left, repairs done): see `talkindex.doctor`. `repair` never re-transcribes."""
        from . import doctor

        self._searcher = None
        done = doctor.repair(self.home) if repair else []
        return doctor.check(self.home), done


def hits_json(hits: list[Hit]) -> list[dict]:
    from dataclasses import asdict

    return [asdict(h) for h in hits]


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)
