"""Runs the stages for a batch and is the only writer of a home.

    sources.resolve → (existing transcript | sources.download → transcribe) → chunking → embedding → store + vectors

Downloads run ahead in a thread while the main thread transcribes; chunking, embedding and all
writes run in one writer thread, off the transcription critical path. Per-episode state lives in
DuckDB: an episode is trusted only once it reaches 'indexed', so a crash or Ctrl-C loses at most
the episode in flight, and a rerun picks up from the stored transcript without re-transcribing.

Batch engines (pipelines/) plug in through the public surface: `Pipeline(..., transcriber=,
embedder=)`, `ingest(resolve=, run=)`, `existing()` (transcripts first: stored, publisher, captions),
`chapters()`, and the writer entry `write()` / `write_all()` fed with `Transcribed` / `Failed` jobs.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import ModelError, SourceError, TalkindexError
from ..fsutil import atomic_write_text, disk_full, open_new, replace_durably
from ..home import ChunkOptions, IndexConfig, Layout, WriterLock, default_embedders
from ..index import catalog
from ..index.bm25 import KeywordIndex
from ..index.store import Store
from ..index.vectors import VectorIndex
from ..records import TRUSTED, Episode, Status, Transcript
from ..requests import IngestOptions
from ..sources import resolve as sources
from ..sources.budget import HostBudget
from ..sources.ytdl import CaptionsFound
from ..textsafe import line
from ..transcripts import chunking
from .housekeeping import Housekeeping

log = logging.getLogger("talkindex")

Progress = Callable[..., None]  # progress(event, **data); the CLI renders it, the library never prints


@dataclass
class EpisodeResult:
    episode_id: str
    title: str
    source: str
    status: str  # indexed | skipped | failed
    chunks: int = 0
    duration: float = 0.0
    error: str | None = None
    transcript_source: str = ""


@dataclass
class IngestReport:
    results: list[EpisodeResult] = field(default_factory=list)
    input_errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.input_errors and not self.interrupted and all(r.status != "failed" for r in self.results)


@dataclass
class Transcribed:
    """A transcript ready for the writer; `fresh` ones are saved first, reused ones only re-indexed."""

    episode: Episode
    transcript: Transcript
    fresh: bool = True


@dataclass
class Failed:
    episode: Episode
    reason: str


Job = Transcribed | Failed


class Pipeline:
    """Ingests a batch into one home: the only writer (see the module docstring)."""

    def __init__(self, home: Path, options: IngestOptions | None = None, progress: Progress | None = None, *,
                 transcriber=None, embedder=None):
        self.layout = Layout(Path(home))
        self.opts = options or IngestOptions()
        self.progress = progress or (lambda event, **data: None)
        self.store = Store(self.layout, writer=True)
        self.vectors = VectorIndex(self.layout.vectors)
        self.notice: str | None = None  # e.g. "mpnet not installed: MiniLM alone" (said once per run)
        self.config = self._wanted_config()
        self.keywords = KeywordIndex(self.layout.keywords, self.config.keywords)
        self.housekeeping = Housekeeping(self.layout, self.store, self.vectors, self.keywords, self._index_episode,
                                         self.progress)
        self._transcriber = transcriber
        self._embedder = embedder

    def _wanted_config(self) -> IndexConfig:
        saved = self.store.built_config(IndexConfig())
        base = saved or IndexConfig()
        if saved is None and self.opts.embedder is None:  # a new home: the ensemble, if installed
            names, self.notice = default_embedders()
            base = replace(base, embedders=names)
        return base.with_options(model=self.opts.model, embedder=self.opts.embedder, chunk=self.opts.chunk)

    # -- components (injected, or built from the config on first use) ---------------------------
    @property
    def transcriber(self):
        if self._transcriber is None:
            from ..transcripts.asr import TranscribeOptions, Transcriber

            o = self.opts
            self._transcriber = Transcriber(
                TranscribeOptions(model=self.config.model, device=o.device, compute_type=o.compute_type,
                                  batch_size=o.batch_size, beam_size=o.beam_size)
            )
        return self._transcriber

    @property
    def embedder(self):
        """The ONNX export when this machine has one (no torch import), else sentence-transformers."""
        if self._embedder is None:
            from ..embed.passages import passage_embedder

            self._embedder = passage_embedder(self.config.embedders)
        return self._embedder

    @property
    def device(self) -> str:
        return self._transcriber.options.device if self._transcriber is not None else self.opts.device

    def check_transcriber(self) -> None:
        """Load the ASR model now: a bad --model/--device/--compute-type is a usage error before any work."""
        try:
            self.transcriber.load()
        except ModelError:
            raise
        except Exception as e:  # noqa: BLE001 - ctranslate2/huggingface raise many kinds
            raise ModelError(f"--model {self.config.model}: cannot load it ({_first_line(e)})") from None

    def check_embedder(self) -> None:
        try:
            self.embedder.dim  # noqa: B018 - loads the model
        except Exception as e:  # noqa: BLE001
            self._embedder = None
            raise ModelError(f"--embedder {self.config.embedder}: cannot load it ({_first_line(e)}); "
                             "nothing was changed") from None

    # -- the batch -------------------------------------------------------------------------------
    def ingest(
        self, inputs: list[str], input_errors: list[str] | None = None, *,
        resolve: Callable[[str], list[Episode]] | None = None,
        run: Callable[[list[Episode], IngestReport], None] | None = None,
    ) -> IngestReport:
        """`resolve` (default `sources.resolve`) and `run` (default: download/transcribe here, write in
        the writer thread) let batch engines (pipelines/ray_ingest.py) plug in; the writer side stays here."""
        report = IngestReport(input_errors=list(input_errors or []))
        self.layout.check_usable(write=True)
        with WriterLock(self.layout):
            try:
                self.store.init()
                if self.notice and not self.layout.config.exists():
                    report.warnings.append(self.notice)
                    self.progress("warning", message=self.notice)
                self.apply_config()
                self.housekeeping.reconcile()
            except Exception as e:
                if not disk_full(e):
                    raise
                for src in inputs:  # the README's promise: each input named, with the reason
                    msg = f"{src}: disk full (nothing could be written to --home {self.layout.home})"
                    report.input_errors.append(msg)
                    self.progress("error", message=msg)
                return report
            try:
                episodes = self._resolve_all(inputs, report, resolve)
                todo = self._plan(episodes, report)
                if todo:
                    (run or self._run)(todo, report)
            except KeyboardInterrupt:
                report.interrupted = True
                self.progress("interrupted")
            finally:
                self.finish()
        return report

    def apply_config(self) -> None:
        """Bring the home to the wanted config: re-embed or re-chunk stored transcripts, never re-transcribe."""
        saved = self.store.built_config(self.config, self.config.embedder) or self.config  # old home: keep chunking
        changes = saved.diff(self.config)
        has_data = bool(self.store.statuses())
        if "embed" in changes and has_data:
            self.check_embedder()  # a mistyped --embedder changes nothing
            log.info("embedder changed %s → %s: re-embedding stored transcripts", saved.embedder,
                     self.config.embedder)
            self.vectors.reset()
            self.store.requeue_indexed()
        elif "chunk" in changes and has_data:
            log.info("chunking changed: re-chunking stored transcripts")
            self.store.requeue_indexed(drop_chunks=True)
        self.store.set_meta("embedder", self.config.embedder)
        self.layout.save_config(self.config)

    def _resolve_all(self, inputs: list[str], report: IngestReport,
                     resolve: Callable[[str], list[Episode]] | None = None) -> list[Episode]:
        seen: dict[str, Episode] = {}
        for i, src in enumerate(inputs):
            self.progress("resolve", source=src, done=i, total=len(inputs))
            try:
                eps = (resolve or self._resolve)(src)
            except SourceError as e:
                report.input_errors.append(str(e))
                self.progress("error", message=str(e))
                continue
            for ep in eps:
                seen.setdefault(ep.id, ep)
        self.store.upsert_episodes(list(seen.values()))
        return list(seen.values())

    def _resolve(self, src: str) -> list[Episode]:
        return sources.resolve(src, allow_private=self.opts.allow_private_urls)

    def _plan(self, episodes: list[Episode], report: IngestReport) -> list[Episode]:
        states = self.store.statuses()
        todo = []
        for ep in episodes:
            if states.get(ep.id) == Status.INDEXED and not self.opts.force:
                row = self.store.episode(ep.id) or {}
                report.results.append(EpisodeResult(ep.id, ep.title, ep.source, "skipped",
                                                    row.get("n_chunks") or 0, row.get("duration") or 0.0,
                                                    transcript_source=row.get("transcript_source") or "asr"))
                self.progress("skip", episode=ep)
                continue
            if self.opts.max_duration and ep.duration and ep.duration > self.opts.max_duration:
                self.write(Failed(ep, f"longer than --max-duration ({ep.duration:.0f} s > "
                                      f"{self.opts.max_duration:.0f} s)"), report)
                continue
            todo.append(ep)
        return todo

    def _run(self, todo: list[Episode], report: IngestReport) -> None:
        """Download ahead, transcribe here, write in the writer thread."""
        self.progress("start", total=len(todo))
        jobs: queue.Queue = queue.Queue(maxsize=2)
        writer = threading.Thread(target=self.write_all, args=(jobs, report), name="talkindex-writer", daemon=True)
        writer.start()
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="talkindex-dl")
        futures: dict[int, object] = {}
        checked = False
        budget = HostBudget()

        def prepare(i: int) -> None:
            """Existing transcript first; else start the media download (both off the main thread)."""
            if i >= len(todo) or i in futures or budget.exhausted(todo[i]):
                return
            futures[i] = pool.submit(self._obtain, todo[i], report)

        try:
            prepare(0)
            prepare(1)
            for i, ep in enumerate(todo):
                prepare(i)
                prepare(i + 1)
                prepare(i + 2)
                if i not in futures:  # its host is out of budget: stays pending, counted, not recorded
                    budget.skip(ep)
                    report.results.append(EpisodeResult(ep.id, ep.title, ep.source, "failed",
                                                        error=f"{sources.episode_input(ep)}: not tried"))
                    continue
                try:
                    got = futures.pop(i).result()
                    budget.succeeded(ep)
                    if isinstance(got, Transcribed):
                        jobs.put(got)
                        continue
                    if not checked:
                        self.check_transcriber()  # raises ModelError: the batch stops, nothing is lost
                        checked = True
                    jobs.put(Transcribed(ep, self._transcribe(ep, got, report)))
                except ModelError:
                    raise
                except SourceError as e:  # already names the input as typed: keep only the reason
                    budget.failed(ep, e.reason)
                    jobs.put(Failed(ep, e.reason))
                except TalkindexError as e:
                    jobs.put(Failed(ep, str(e).removeprefix(f"{ep.media_url}: ")))
                except MemoryError:
                    jobs.put(Failed(ep, "out of memory"))
        finally:
            jobs.put(None)
            writer.join()
            pool.shutdown(wait=False, cancel_futures=True)
            for msg in budget.summary():
                self.progress("error", message=msg)

    def existing(self, ep: Episode, report: IngestReport) -> Transcribed | None:
        """Transcripts first: the home's stored one, else the publisher's, else captions (per --captions).

        None: only ASR is left, and only then is media downloaded. The one place of that order: `_obtain`
        and the batch engines (pipelines/ray_ingest.py) both call it."""
        t = self.reusable(ep)
        if t is not None:
            return Transcribed(ep, t, fresh=False)
        t = self._existing_transcript(ep, report)
        return Transcribed(ep, t) if t is not None else None

    def _obtain(self, ep: Episode, report: IngestReport) -> Transcribed | Path:
        """A stored or existing (publisher/captions) transcript, or the downloaded media to transcribe; a
        failed download falls back to captions not tried yet (one warning)."""
        from ..transcripts.existing import candidates

        tried = {r.url for r in candidates(ep, self.opts.captions)}  # what existing() tries, before the download
        got = self.existing(ep, report)
        if got is not None:
            return got
        try:
            try:
                media = self._download(ep, self.opts.captions)
            except CaptionsFound:  # a playlist entry's captions: known only now, tried before media
                t = self._existing_transcript(replace(ep, transcripts=[r for r in ep.transcripts
                                                                       if r.url not in tried]), report)
                if t is not None:
                    return Transcribed(ep, t)
                tried |= {r.url for r in candidates(ep, self.opts.captions)}
                media = self._download(ep, "")
        except SourceError as e:
            t = self._captions_instead(ep, tried, e.reason, report)
            if t is None:
                raise
            return Transcribed(ep, t)
        if self.opts.max_duration:  # the file's own length, before any decoding: itunes:duration may lie
            from ..sources.mediacache import media_duration

            self._check_duration(media_duration(Path(media)))
        return media

    def _download(self, ep: Episode, captions_first: str) -> Path:
        return sources.download(ep, self.layout.media, max_bytes=self.opts.max_bytes, force=self.opts.force,
                                allow_private=self.opts.allow_private_urls, captions_first=captions_first,
                                progress=lambda done, total, ep=ep: self.progress("download", episode=ep,
                                                                                   done=done, total=total))

    def _fetcher(self, ep: Episode) -> Callable[[str], tuple[bytes, str]]:
        """Fetch a document an episode names (transcript, chapters) under the episode's SSRF rule."""
        return lambda url: sources.fetch_document(url, ep, allow_private=self.opts.allow_private_urls)

    def _warn(self, ep: Episode, report: IngestReport, warning: str) -> None:
        msg = f"{sources.episode_input(ep)}: {warning}"
        report.warnings.append(msg)
        self.progress("warning", message=msg, episode=ep)

    def _existing_transcript(self, ep: Episode, report: IngestReport, policy: str = "",
                             otherwise: str = "transcribing instead") -> Transcript | None:
        """Publisher transcript or captions, per --captions; warnings name the transcript URL."""
        policy = policy or self.opts.captions
        if policy == "never" or not ep.transcripts:
            return None
        from ..transcripts.existing import fetch_existing

        t, warnings = fetch_existing(ep, policy, self._fetcher(ep), otherwise)
        for w in warnings:
            self._warn(ep, report, w)
        if t is not None:
            self._check_duration(t.duration, "transcript ends at ")
            t.chapters = self.chapters(ep, report)
        return t

    def _captions_instead(self, ep: Episode, tried: set[str], failure: str, report: IngestReport
                          ) -> Transcript | None:
        """When the media cannot be fetched (a site blocking downloads), the captions not tried yet (those
        yt-dlp's extraction found, auto-captions under --captions prefer) beat no episode: one warning
        names the failure. --captions never keeps its word: no existing transcript is used."""
        if self.opts.captions == "never":
            return None
        left = replace(ep, transcripts=[r for r in ep.transcripts if r.url not in tried])
        t = self._existing_transcript(left, report, "any", "the media download failed too")
        if t is not None:
            self._warn(ep, report, f"media download failed ({failure}); indexed from its {t.source} instead")
        return t

    def _check_duration(self, seconds: float | None, what: str = "") -> None:
        """The --max-duration rule, checked against what the media or transcript itself says."""
        limit = self.opts.max_duration
        if limit and seconds and seconds > limit:
            raise TalkindexError(f"longer than --max-duration ({what}{seconds:.0f} s > {limit:.0f} s)")

    def chapters(self, ep: Episode, report: IngestReport) -> list:
        """Published chapters (feed or chapters URL); warnings go to the report. Batch engines attach them to ASR."""
        if not (ep.chapters or ep.chapters_url):
            return []
        from ..transcripts.chapters import fetch_chapters

        chapters, warnings = fetch_chapters(ep, self._fetcher(ep))
        for w in warnings:
            self._warn(ep, report, w)
        return chapters

    def _transcribe(self, ep: Episode, media: Path, report: IngestReport) -> Transcript:
        self.progress("transcribe_start", episode=ep)
        t = self.transcriber(ep.id, media,
                             lambda d, tot, ep=ep: self.progress("transcribe", episode=ep, done=d, total=tot))
        self._check_duration(t.duration)
        t.chapters = self.chapters(ep, report)
        return t

    def reusable(self, ep: Episode) -> Transcript | None:
        """A stored transcript from the same model (or an existing one), when not forced (e.g. after a crash)."""
        if self.opts.force:
            return None
        row = self.store.episode(ep.id)
        if not row or row["status"] not in TRUSTED:
            return None
        if (row.get("transcript_source") or "asr") == "asr" and row["model"] != self.config.model:
            return None
        try:
            return Transcript.from_json(self.layout.transcript(ep.id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    # -- the writer (one thread; Ray's driver feeds it too) -------------------------------------
    def write_all(self, jobs: queue.Queue, report: IngestReport) -> None:
        """Write jobs from `jobs` until a None arrives."""
        while (job := jobs.get()) is not None:
            self.write(job, report)

    def write(self, job: Job, report: IngestReport) -> EpisodeResult:
        """Save (if fresh), chunk, embed and index one episode; one bad episode never stops the batch."""
        ep = job.episode
        if isinstance(job, Failed):
            return self._fail(ep, report, job.reason)
        t = job.transcript
        try:
            if job.fresh:
                self._save_transcript(ep, t)
            n = self._index_episode(ep.id, t)
            for note in t.notes:
                msg = f"{sources.episode_input(ep)}: {note}"
                report.warnings.append(msg)
                self.progress("warning", message=msg, episode=ep)
            r = EpisodeResult(ep.id, ep.title, ep.source, "indexed", n, t.duration, transcript_source=t.source)
            report.results.append(r)
            self.progress("done", episode=ep, chunks=n, duration=t.duration, source=t.source)
            return r
        except Exception as e:  # noqa: BLE001 - one bad episode must not stop the batch
            log.debug("episode %s failed", ep.id, exc_info=True)
            reason = _first_line(e)
            if disk_full(e):
                reason = "disk full while writing"
            return self._fail(ep, report, reason)

    def _fail(self, ep: Episode, report: IngestReport, reason: str) -> EpisodeResult:
        msg = f"{sources.episode_input(ep)}: {line(reason, 300)}"
        try:
            self.store.set_status(ep.id, Status.FAILED, reason)
        except Exception:  # noqa: BLE001 - the line is still printed and counted
            log.debug("could not record the failure of %s", ep.id, exc_info=True)
        r = EpisodeResult(ep.id, ep.title, ep.source, "failed", error=msg)
        report.results.append(r)
        self.progress("error", message=msg, episode=ep)
        return r

    def _save_transcript(self, ep: Episode, t: Transcript) -> None:
        self.layout.episode_dir(ep.id).mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.layout.transcript(ep.id), t.to_json(ep))
        notes = list(t.notes) + ([] if t.segments else ["no speech detected"])
        self.store.save_transcript(t, str(self.layout.transcript(ep.id).relative_to(self.layout.home)),
                                   "; ".join(notes) or None)

    def _index_episode(self, episode_id: str, t: Transcript) -> int:
        """Chunk, embed, store rows, add vectors and keywords, mark indexed — in that order (crash-safe)."""
        e = embed_transcript(t, self.embedder, self.config.chunk, episode_id)
        sents, sent_vecs, chapters, chunks, chunk_vecs = e.sents, e.sent_vecs, e.chapters, e.chunks, e.chunk_vecs
        ids = self.store.save_chunks(episode_id, sents, chunks, self.config.embedder, chapters)
        path = self.layout.embeddings(episode_id)
        tmp = path.with_suffix(".tmp.npz")
        with open_new(tmp) as f:  # never through a link planted in the home
            np.savez(f, chunk_ids=np.asarray(ids, np.int64), chunk_vecs=chunk_vecs.astype(np.float16),
                     sent_vecs=sent_vecs.astype(np.float16), embedder=np.array(self.config.embedder),
                     sent_starts=np.asarray([s.start for s in sents], np.float64),  # hits start here: no SQL
                     **({"sent_speakers": np.asarray([s.speaker for s in sents])}
                        if any(s.speaker for s in sents) else {}))
        replace_durably(tmp, path)
        catalog.write_rows(self.layout, episode_id, ids, chunks)  # what readers rank with (no DuckDB lock)
        if ids:
            self.vectors.add(np.asarray(ids, np.int64), chunk_vecs, self.config.embedder)
            self.keywords.add(ids, [c.text for c in chunks])
        self.store.mark_indexed([episode_id])
        return len(ids)


    def finish(self) -> None:
        """End of a run (also after Ctrl-C): stale entries dropped, segments compacted, ONNX export."""
        self.housekeeping.drop_orphans()  # re-indexed episodes (--force, re-chunking) left entries of their old chunks
        self.vectors.compact()
        self.keywords.compact()
        if self._embedder is not None:
            from ..embed.passages import export_missing

            export_missing(self._embedder)


@dataclass
class Embedded:
    """One episode as the index holds it: sentences and their vectors, chapters, windows and theirs."""

    sents: list
    sent_vecs: np.ndarray
    chapters: list
    chunks: list
    chunk_vecs: np.ndarray


def embed_transcript(t: Transcript, embedder, opts: ChunkOptions, episode_id: str | None = None) -> Embedded:
    """Sentences → their vectors → chapters (published win, else detected from those vectors) → windows
    that never straddle a chapter → the windows' vectors. The one recipe: ingest's writer and the batch
    engines' embed workers (pipelines/ray_ingest.py) both call it, so their windows are the same texts."""
    from ..transcripts.detect import episode_chapters

    def encode(texts: list[str]) -> np.ndarray:
        return embedder.encode_passages(texts) if texts else np.zeros((0, 1), np.float32)

    sents = chunking.sentences(t, opts)
    sent_vecs = encode([s.text for s in sents])
    chapters = episode_chapters(t.chapters, sents, sent_vecs, t.duration)
    chunks = chunking.windows(sents, episode_id or t.episode_id, opts, [c.start for c in chapters])
    return Embedded(sents, sent_vecs, chapters, chunks, encode([c.text for c in chunks]))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]
