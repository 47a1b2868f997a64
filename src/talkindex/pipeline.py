"""Runs the stages for a batch and is the only writer of a home.

    sources.resolve → sources.download → transcribe → chunking → embedding → store + vectors

Downloads run ahead in a thread while the main thread transcribes; chunking, embedding and all
writes run in one writer thread, off the transcription critical path. Per-episode state lives in
DuckDB: an episode is trusted only once it reaches 'indexed', so a crash or Ctrl-C loses at most
the episode in flight, and a rerun picks up from the stored transcript without re-transcribing.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import chunking, sources
from .errors import BusyError, SourceError, TalkindexError
from .records import Episode, Segment, Transcript, Word
from .store import Store, atomic_write_text
from .vectors import VectorIndex

log = logging.getLogger("talkindex")

Progress = Callable[..., None]  # progress(event, **data); the CLI renders it, the library never prints


@dataclass
class Layout:
    """Where everything lives under one home."""

    home: Path

    @property
    def db(self) -> Path:
        return self.home / "talkindex.duckdb"

    @property
    def vectors(self) -> Path:
        return self.home / "vectors"

    @property
    def media(self) -> Path:
        return self.home / "media"

    def episode_dir(self, episode_id: str) -> Path:
        return self.home / "episodes" / episode_id

    def transcript(self, episode_id: str) -> Path:
        return self.episode_dir(episode_id) / "transcript.json"

    def embeddings(self, episode_id: str) -> Path:
        return self.episode_dir(episode_id) / "embeddings.npz"

    def query_encoder(self, embedder_key: str) -> Path:
        return self.home / "query_encoder" / embedder_key

    @property
    def lock(self) -> Path:
        return self.home / "ingest.lock"


@dataclass
class IngestOptions:
    model: str = "tiny.en"
    device: str = "auto"
    compute_type: str = "auto"
    batch_size: int = 0
    beam_size: int = 1
    embedder: str = "all-MiniLM-L6-v2"
    force: bool = False
    max_duration: float | None = None  # seconds; longer media is refused
    max_bytes: int = 4 * 2**30
    chunk: chunking.ChunkOptions = field(default_factory=chunking.ChunkOptions)


@dataclass
class EpisodeResult:
    episode_id: str
    title: str
    source: str
    status: str  # indexed | skipped | failed
    chunks: int = 0
    duration: float = 0.0
    error: str | None = None


@dataclass
class IngestReport:
    results: list[EpisodeResult] = field(default_factory=list)
    input_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.input_errors and all(r.status != "failed" for r in self.results)


class WriterLock:
    """An exclusive flock on home/ingest.lock: a second ingest on the same home is refused."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise BusyError(
                f"{self.path.parent}: another ingest is running on this home (pid {holder}); "
                "wait for it to finish or use another --home"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _short(text: str, n: int = 80) -> str:
    """One readable line: remote titles can be 100 KB or hold newlines."""
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def transcript_to_json(t: Transcript, ep: Episode | None) -> str:
    d = asdict(t)
    if ep is not None:
        d["episode"] = asdict(ep)
    return json.dumps(d, ensure_ascii=False)


def transcript_from_json(text: str) -> Transcript:
    d = json.loads(text)
    segs = [
        Segment(**{**{k: v for k, v in s.items() if k != "words"}, "words": [Word(**w) for w in s["words"]]})
        for s in d["segments"]
    ]
    return Transcript(d["episode_id"], d["language"], d["duration"], segs, d["model"], d.get("params", {}))


class Pipeline:
    def __init__(self, home: Path, options: IngestOptions | None = None, progress: Progress | None = None):
        self.layout = Layout(Path(home))
        self.opts = options or IngestOptions()
        self.progress = progress or (lambda event, **data: None)
        self.store = Store(self.layout.db, writer=True)
        self.vectors = VectorIndex(self.layout.vectors)
        self._transcriber = None
        self._embedder = None

    # -- lazily loaded models ------------------------------------------------------------------
    @property
    def transcriber(self):
        if self._transcriber is None:
            from .transcribe import TranscribeOptions, Transcriber

            o = self.opts
            self._transcriber = Transcriber(
                TranscribeOptions(model=o.model, device=o.device, compute_type=o.compute_type,
                                  batch_size=o.batch_size, beam_size=o.beam_size)
            )
        return self._transcriber

    @property
    def embedder(self):
        if self._embedder is None:
            from .embedding import Embedder

            self._embedder = Embedder(self.opts.embedder)
        return self._embedder

    # -- the batch -------------------------------------------------------------------------------
    def ingest(
        self, inputs: list[str], input_errors: list[str] | None = None, *,
        resolve: Callable[[str], list[Episode]] | None = None,
        run: Callable[[list[Episode], IngestReport], None] | None = None,
    ) -> IngestReport:
        """`resolve` (default `sources.resolve`) and `run` (default: download/transcribe here, write in
        the writer thread) let batch engines (pipelines/ray_ingest.py) plug in; the writer side stays here."""
        report = IngestReport(input_errors=list(input_errors or []))
        with WriterLock(self.layout.lock):
            self.store.init()
            self._switch_embedder_if_needed()
            self.reconcile()
            episodes = self._resolve_all(inputs, report, resolve)
            todo = self._plan(episodes, report)
            if todo:
                (run or self._run)(todo, report)
            self._finish()
        return report

    def _resolve_all(self, inputs: list[str], report: IngestReport,
                     resolve: Callable[[str], list[Episode]] | None = None) -> list[Episode]:
        seen: dict[str, Episode] = {}
        for i, src in enumerate(inputs):
            self.progress("resolve", source=src, done=i, total=len(inputs))
            try:
                eps = (resolve or sources.resolve)(src)
            except SourceError as e:
                report.input_errors.append(str(e))
                self.progress("error", message=str(e))
                continue
            for ep in eps:
                seen.setdefault(ep.id, ep)
        for ep in seen.values():
            self.store.upsert_episode(ep)
        return list(seen.values())

    def _plan(self, episodes: list[Episode], report: IngestReport) -> list[Episode]:
        states = self.store.statuses()
        todo = []
        for ep in episodes:
            if states.get(ep.id) == "indexed" and not self.opts.force:
                row = self.store.episode(ep.id) or {}
                report.results.append(EpisodeResult(ep.id, ep.title, ep.source, "skipped",
                                                    row.get("n_chunks") or 0, row.get("duration") or 0.0))
                self.progress("skip", episode=ep)
                continue
            if self.opts.max_duration and ep.duration and ep.duration > self.opts.max_duration:
                self._fail(ep, report,
                           f"longer than --max-duration ({ep.duration:.0f} s > {self.opts.max_duration:.0f} s)")
                continue
            todo.append(ep)
        return todo

    def _fail(self, ep: Episode, report: IngestReport, reason: str) -> None:
        msg = f"{_short(ep.title or ep.id)} ({_short(ep.media_url, 200)}): {reason}"
        self.store.set_status(ep.id, "failed", reason)
        report.results.append(EpisodeResult(ep.id, ep.title, ep.source, "failed", error=msg))
        self.progress("error", message=msg, episode=ep)

    def _run(self, todo: list[Episode], report: IngestReport) -> None:
        """Download ahead, transcribe here, write in the writer thread."""
        self.progress("start", total=len(todo))
        jobs: queue.Queue = queue.Queue(maxsize=2)
        writer = threading.Thread(target=self._writer, args=(jobs, report), name="talkindex-writer", daemon=True)
        writer.start()
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="talkindex-dl")
        futures = {}

        def fetch(ep: Episode):
            def cb(done, total, ep=ep):
                self.progress("download", episode=ep, done=done, total=total)

            return sources.download(ep, self.layout.media, max_bytes=self.opts.max_bytes, progress=cb)

        def submit(i: int) -> None:
            if i < len(todo) and i not in futures and not self._reusable(todo[i]):
                futures[i] = pool.submit(fetch, todo[i])

        try:
            submit(0)
            submit(1)
            for i, ep in enumerate(todo):
                submit(i + 1)
                submit(i + 2)
                try:
                    t = self._reusable(ep)
                    if t is None:
                        media = futures.pop(i).result()
                        if self.opts.max_duration and not ep.duration:  # unknown until downloaded
                            probed = sources._ffprobe(Path(media))[1]
                            if probed and probed > self.opts.max_duration:
                                raise TalkindexError(f"longer than --max-duration ({probed:.0f} s > "
                                                     f"{self.opts.max_duration:.0f} s)")
                        self.progress("transcribe_start", episode=ep)
                        t = self.transcriber(
                            ep.id, media,
                            lambda d, tot, ep=ep: self.progress("transcribe", episode=ep, done=d, total=tot),
                        )
                        if self.opts.max_duration and t.duration > self.opts.max_duration:
                            raise TalkindexError(
                                f"longer than --max-duration ({t.duration:.0f} s > {self.opts.max_duration:.0f} s)")
                        jobs.put(("transcript", ep, t))
                    else:
                        jobs.put(("reuse", ep, t))
                except TalkindexError as e:
                    jobs.put(("failed", ep, str(e).removeprefix(f"{ep.media_url}: ")))
                except MemoryError:
                    jobs.put(("failed", ep, "out of memory"))
        finally:
            jobs.put(None)
            writer.join()
            pool.shutdown(wait=False, cancel_futures=True)

    def _reusable(self, ep: Episode) -> Transcript | None:
        """A stored transcript from the same model, when not forced (e.g. after a crash)."""
        if self.opts.force:
            return None
        row = self.store.episode(ep.id)
        if not row or row["status"] not in ("transcribed", "indexed") or row["model"] != self.opts.model:
            return None
        try:
            return transcript_from_json(self.layout.transcript(ep.id).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _writer(self, jobs: queue.Queue, report: IngestReport) -> None:
        while (job := jobs.get()) is not None:
            kind, ep, payload = job
            try:
                if kind == "failed":
                    self._fail(ep, report, payload)
                    continue
                if kind == "transcript":
                    self._save_transcript(ep, payload)
                n = self._index_episode(ep.id, payload)
                report.results.append(EpisodeResult(ep.id, ep.title, ep.source, "indexed", n, payload.duration))
                self.progress("done", episode=ep, chunks=n, duration=payload.duration)
            except Exception as e:  # noqa: BLE001 - one bad episode must not stop the batch
                log.debug("episode %s failed", ep.id, exc_info=True)
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                if isinstance(e, OSError) and e.errno == 28:
                    reason = "disk full while writing"
                try:
                    self._fail(ep, report, reason)
                except Exception:  # noqa: BLE001
                    msg = f"{_short(ep.title or ep.id)} ({_short(ep.media_url, 200)}): {reason}"
                    report.results.append(EpisodeResult(ep.id, ep.title, ep.source, "failed", error=msg))
                    self.progress("error", message=msg, episode=ep)

    def _save_transcript(self, ep: Episode, t: Transcript) -> None:
        d = self.layout.episode_dir(ep.id)
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.layout.transcript(ep.id), transcript_to_json(t, ep))
        note = None if t.segments else "no speech detected"
        self.store.save_transcript(t, str(self.layout.transcript(ep.id).relative_to(self.layout.home)), note)

    def _index_episode(self, episode_id: str, t: Transcript) -> int:
        """Chunk, embed, store rows, add vectors, mark indexed — in that order (crash-safe)."""
        sents, chunks = chunking.chunk_transcript(t, self.opts.chunk)
        emb = self.embedder
        texts = [c.text for c in chunks] + [s.text for s in sents]
        vecs = emb.encode_passages(texts) if texts else np.zeros((0, 1), np.float32)
        chunk_vecs, sent_vecs = vecs[: len(chunks)], vecs[len(chunks):]
        ids = self.store.save_chunks(episode_id, sents, chunks, self.opts.embedder)
        np.savez(
            _tmp := self.layout.embeddings(episode_id).with_suffix(".tmp.npz"),
            chunk_ids=np.asarray(ids, np.int64), chunk_vecs=chunk_vecs.astype(np.float16),
            sent_vecs=sent_vecs.astype(np.float16), embedder=np.array(self.opts.embedder),
        )
        os.replace(_tmp, self.layout.embeddings(episode_id))
        if ids:
            self.vectors.add(np.asarray(ids, np.int64), chunk_vecs, self.opts.embedder)
        self.store.mark_indexed([episode_id])
        return len(ids)

    # -- housekeeping ------------------------------------------------------------------------------
    def _switch_embedder_if_needed(self) -> None:
        """A new embedder re-embeds every stored transcript (no re-transcription)."""
        current = self.store.get_meta("embedder")
        if current is None:
            self.store.set_meta("embedder", self.opts.embedder)
            return
        if current == self.opts.embedder:
            return
        log.info("embedder changed %s → %s: re-embedding stored transcripts", current, self.opts.embedder)
        self.vectors.reset()
        with self.store.connect() as con:
            con.execute("UPDATE episodes SET status = 'transcribed' WHERE status = 'indexed'")
            con.execute("INSERT OR REPLACE INTO meta VALUES ('embedder', ?)", [self.opts.embedder])

    def reconcile(self) -> None:
        """Bring DuckDB and FAISS into agreement after a crash, without re-transcribing.

        - vectors whose chunk no longer exists (a crash between re-chunking and indexing) are dropped;
        - 'transcribed' episodes whose chunks are all in FAISS are marked indexed;
        - other 'transcribed' episodes are (re)indexed from their stored transcript."""
        self.vectors._gc()
        import shutil

        for stale in self.layout.media.glob(".dl-*"):  # partial downloads of a killed run (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        with self.store.connect(read_only=True) as con:
            live = {r[0] for r in con.execute("SELECT id FROM chunks").fetchall()}
            pending = con.execute(
                "SELECT e.id, list(c.id) FROM episodes e LEFT JOIN chunks c ON c.episode_id = e.id "
                "WHERE e.status = 'transcribed' GROUP BY e.id"
            ).fetchall()
        in_faiss = set(self.vectors.ids().tolist())
        if in_faiss - live:
            self.vectors.compact(live_ids=live)
        done, redo = [], []
        for eid, cids in pending:
            cids = [c for c in (cids or []) if c is not None]
            (done if cids and all(c in in_faiss for c in cids) else redo).append(eid)
        self.store.mark_indexed(done)
        for eid in redo:
            try:
                t = transcript_from_json(self.layout.transcript(eid).read_text(encoding="utf-8"))
            except (OSError, ValueError, KeyError, TypeError):
                self.store.set_status(eid, "pending")  # artifact lost: transcribe again
                continue
            self._index_episode(eid, t)

    def _finish(self) -> None:
        self.store.rebuild_fts()
        if self.opts.force:  # re-indexed episodes left vectors of their old chunks: drop them now
            with self.store.connect(read_only=True) as con:
                live = {r[0] for r in con.execute("SELECT id FROM chunks").fetchall()}
            if set(self.vectors.ids().tolist()) - live:
                self.vectors.compact(live_ids=live)
        self.vectors.compact()
        if self._embedder is not None:
            self._export_query_encoder()

    def _export_query_encoder(self) -> None:
        """Cache an ONNX copy of the query encoder so `ask` needs no torch."""
        from .embedding import embedder_key

        out = self.layout.query_encoder(embedder_key(self.opts.embedder))
        if (out / "meta.json").exists():
            return
        try:
            from .onnx_encoder import export_query_encoder

            export_query_encoder(self.embedder.model, out)
        except Exception as e:  # noqa: BLE001 - ask falls back to sentence-transformers
            log.warning("could not export the query encoder to ONNX (%s); ask will be slower", e)
