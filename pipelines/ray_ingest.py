#!/usr/bin/env python
"""The batch ingest on Ray: many machines transcribe, the driver alone writes the home.

    python pipelines/ray_ingest.py urls.txt --home /data/talks                      # a local Ray
    python pipelines/ray_ingest.py urls.txt --home /data/talks --address auto \\
        --transcribers 8 --gpus-per-transcriber 1                                   # join a cluster

Stages (each one the library's own function; nothing of the pipeline is re-implemented here):

    resolve   Ray tasks (CPU)            sources.resolve, one task per input
    existing  driver threads             Pipeline.existing: stored, publisher, then caption transcripts
                                         (as `talkindex ingest`); only episodes left without one go on
    download  Ray tasks (CPU/network)    sources.download, running ahead of transcription
    transcribe  actors holding the model transcribe.Transcriber (BatchedInferencePipeline on GPU)
    embed     actors holding the models  chunking.chunk_transcript + embedding.passage_embedder (the ensemble)
    write     the driver, one thread     Pipeline's writer (store + FAISS), as `talkindex ingest`

The driver runs `Pipeline.ingest(..., resolve=, run=)`: the home's writer lock, reconcile, skip of
indexed episodes, transcripts first (`Pipeline.existing`, the order `talkindex ingest` follows), the
writer and the final FTS/compaction/ONNX export are the library's. Transcription actors start only
when an episode needs ASR. Results stream back as they finish and are written one episode at a time, so
the run is resumable exactly like `talkindex ingest`.

Media: download tasks write into the home's media cache (`<home>/media`, or --media-dir). On a
multi-node cluster that directory must be on a filesystem every node mounts (NFS, EFS, …), or pass
--ship-media to send the bytes through Ray's object store instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import queue
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402

from talkindex.embed.passages import passage_embedder  # noqa: E402
from talkindex.errors import ModelError, SourceError, TalkindexError  # noqa: E402
from talkindex.home import split_embedders  # noqa: E402
from talkindex.ingest.pipeline import Failed, IngestOptions, IngestReport, Pipeline, Transcribed  # noqa: E402
from talkindex.records import Episode  # noqa: E402

log = logging.getLogger("talkindex.ray")


def failed(reason: str) -> dict:
    """A stage result that stands for a failure (passed through the later stages as it is).

    Plain dicts, not exception or custom classes: they cross process boundaries unchanged."""
    return {"failed": reason}


def is_failed(x) -> bool:
    return isinstance(x, dict) and "failed" in x


# -- stage bodies (plain functions: they run inside Ray workers) -------------------------------------


def resolve_input(src: str):
    from talkindex.sources import resolve as sources

    try:
        return sources.resolve(src)
    except SourceError as e:  # rebuilt in the driver: exceptions with custom __init__ don't pickle
        return (e.input, e.reason)


def download_media(ep: Episode, media_dir: str, opts: IngestOptions, ship: bool):
    from talkindex.sources import resolve as sources

    try:
        path = sources.download(ep, Path(media_dir), max_bytes=opts.max_bytes, force=opts.force,
                                allow_private=opts.allow_private_urls)
    except TalkindexError as e:
        return failed(str(e).removeprefix(f"{ep.media_url}: "))
    if ship:
        return {"suffix": path.suffix, "data": path.read_bytes()}
    return str(path)


class TranscribeWorker:
    """Holds one loaded Whisper model (on a GPU when the actor was given one)."""

    def __init__(self, opts: IngestOptions, cpu_threads: int):
        from talkindex.transcripts.asr import TranscribeOptions, Transcriber

        self.opts = opts
        self.t = Transcriber(TranscribeOptions(
            model=opts.model, device=opts.device, compute_type=opts.compute_type, batch_size=opts.batch_size,
            beam_size=opts.beam_size, cpu_threads=cpu_threads))
        self.t.load()

    def device(self) -> str:
        return self.t.options.device

    def transcribe(self, ep: Episode, media, chapters: list):
        """The episode's transcript, with the published chapters attached (as `Pipeline` does after ASR)."""
        if is_failed(media):
            return media
        tmp = None
        try:
            if isinstance(media, dict):  # --ship-media
                fd, tmp = tempfile.mkstemp(suffix=media["suffix"])
                with os.fdopen(fd, "wb") as f:
                    f.write(media["data"])
                media = tmp
            t = self.t(ep.id, Path(media))
        except TalkindexError as e:
            return failed(str(e).removeprefix(f"{ep.media_url}: "))
        except MemoryError:
            return failed("out of memory")
        finally:
            if tmp:
                os.unlink(tmp)
        m = self.opts.max_duration
        if m and t.duration > m:
            return failed(f"longer than --max-duration ({t.duration:.0f} s > {m:.0f} s)")
        t.chapters = chapters
        return t


class EmbedWorker:
    """Holds the home's embedders (one model or the ensemble); embeds every text the writer will index."""

    def __init__(self, opts: IngestOptions, use_gpu: bool):
        import torch

        self.opts = opts
        self.e = passage_embedder(split_embedders(opts.embedder),
                                  device="cuda" if use_gpu and torch.cuda.is_available() else "cpu")

    def embed(self, t):
        if is_failed(t):
            return t
        from talkindex.ingest.pipeline import embed_transcript

        e = embed_transcript(t, self.e, self.opts.chunk)  # the writer's own recipe: the same window texts
        texts = [s.text for s in e.sents] + [c.text for c in e.chunks]
        return t, texts, np.concatenate([e.sent_vecs, e.chunk_vecs]) if texts else np.zeros((0, 1), np.float32)


# -- driver side --------------------------------------------------------------------------------------


class PrecomputedEmbedder:
    """The writer's embedder: answers with vectors the embed actors computed, per text.

    Texts it was not given (none, unless the writer's chunking differs) are encoded here."""

    def __init__(self, name: str):
        self.name = name
        self._fallback = None
        self._vecs: dict[str, tuple[np.ndarray, int]] = {}
        self._lock = threading.Lock()
        self.misses = 0

    def put(self, texts: list[str], vecs: np.ndarray) -> None:
        with self._lock:
            for t, v in zip(texts, vecs, strict=True):
                old = self._vecs.get(t)
                self._vecs[t] = (v, (old[1] if old else 0) + 1)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            got = [self._vecs.get(t) for t in texts]
            for t in set(texts):
                if t in self._vecs:
                    v, n = self._vecs[t]
                    if n <= 1:
                        del self._vecs[t]
                    else:
                        self._vecs[t] = (v, n - 1)
        missing = [t for t, g in zip(texts, got, strict=True) if g is None]
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        extra = iter(self.fallback.encode_passages(missing)) if missing else iter(())
        self.misses += len(missing)
        return np.stack([g[0] if g is not None else next(extra) for g in got]).astype(np.float32)


    @property
    def fallback(self):
        if self._fallback is None:
            self._fallback = passage_embedder(split_embedders(self.name))
        return self._fallback

    @property
    def dim(self) -> int:
        return self.fallback.dim


@dataclasses.dataclass
class NeedsAsr:
    """An episode `Pipeline.existing` found no transcript for: transcribe it, then attach these chapters."""

    episode: Episode
    chapters: list


class RayRunner:
    """`run(todo, report)` for `Pipeline.ingest`: transcripts first, Ray stages for the rest, feeds the writer."""

    def __init__(self, p: Pipeline, embedder: PrecomputedEmbedder, args: argparse.Namespace, ray):
        self.p, self.args, self.ray = p, args, ray
        self.embedder = embedder  # the pipeline's writer encodes through it (injected into Pipeline)
        # the workers get the options with the home's config filled in (model, embedder, chunking)
        self.opts = dataclasses.replace(p.opts, model=p.config.model, embedder=p.config.embedder,
                                        chunk=p.config.chunk)
        self.transcribers: list = []
        self.embedders: list = []
        self.devices: list[str] = []
        self.stats = {"transcribed": 0, "existing": 0, "reused": 0}

    def _start_embedders(self) -> None:
        a = self.args
        if not self.embedders:
            E = self.ray.remote(num_cpus=a.cpus_per_embedder, num_gpus=a.gpus_per_embedder)(EmbedWorker)
            self.embedders = [E.remote(self.opts, a.gpus_per_embedder > 0) for _ in range(a.embedders)]

    def _start_transcribers(self) -> None:
        """On the first episode that needs ASR (a feed with transcripts for all loads no Whisper model)."""
        ray, a = self.ray, self.args
        if self.transcribers:
            return
        T = ray.remote(num_cpus=a.cpus_per_transcriber, num_gpus=a.gpus_per_transcriber)(TranscribeWorker)
        threads = max(1, int(a.cpus_per_transcriber))
        self.transcribers = [T.remote(self.opts, threads) for _ in range(a.transcribers)]
        try:
            self.devices = ray.get([t.device.remote() for t in self.transcribers])
        except ray.exceptions.RayError as e:  # as `talkindex ingest`: a usage error, the batch stops
            raise ModelError(f"--model {self.opts.model}: cannot load it ({_short(e)})") from None

    def lookup(self, ep: Episode, report: IngestReport) -> Transcribed | NeedsAsr | Failed:
        """On a driver thread: the library's transcripts-first step; chapters when ASR is left."""
        try:
            got = self.p.existing(ep, report)
            return got if got is not None else NeedsAsr(ep, self.p.chapters(ep, report))
        except SourceError as e:
            return Failed(ep, e.reason)
        except TalkindexError as e:
            return Failed(ep, str(e).removeprefix(f"{ep.media_url}: "))

    def __call__(self, todo: list[Episode], report: IngestReport) -> None:
        ray, a, p = self.ray, self.args, self.p
        p.progress("start", total=len(todo))
        self._start_embedders()
        download = ray.remote(num_cpus=a.cpus_per_download)(download_media)
        media_dir = str(Path(a.media_dir).expanduser().resolve()) if a.media_dir else str(p.layout.media)
        capacity = max(1, a.queue_per_transcriber) * a.transcribers  # ASR episodes in flight
        embed_capacity = 2 * a.embedders  # episodes with a transcript queued on the embedders
        ahead = capacity + embed_capacity + a.prefetch  # looked up (or waiting) before their turn

        jobs: queue.Queue = queue.Queue(maxsize=capacity + embed_capacity + 2)
        writer = threading.Thread(target=p.write_all, args=(jobs, report), name="ray-writer", daemon=True)
        writer.start()
        pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ray-existing")
        pending = deque(todo)
        looking: list[Future] = []
        found: deque[Transcribed] = deque()  # transcripts first: waiting for an embedder
        asr: deque[NeedsAsr] = deque()  # waiting for a transcriber
        downloads: dict[str, object] = {}  # episode id -> download ref, started ahead
        in_flight: dict[object, tuple[Transcribed | NeedsAsr, int]] = {}  # embed ref -> (what, transcriber or -1)
        load = [0] * a.transcribers
        rr = 0

        def embed(arg, what, actor: int) -> None:
            nonlocal rr
            in_flight[self.embedders[rr % len(self.embedders)].embed.remote(arg)] = (what, actor)
            rr += 1

        try:
            while pending or looking or found or asr or in_flight:
                while pending and len(looking) + len(found) + len(asr) < ahead:
                    looking.append(pool.submit(self.lookup, pending.popleft(), report))
                for f in [f for f in looking if f.done()]:
                    looking.remove(f)
                    got = f.result()
                    (jobs.put if isinstance(got, Failed) else
                     asr.append if isinstance(got, NeedsAsr) else found.append)(got)
                while found and len(in_flight) - sum(load) < embed_capacity:
                    job = found.popleft()
                    embed(job.transcript, job, -1)
                while asr and sum(load) < capacity:
                    self._start_transcribers()
                    need = asr.popleft()
                    ep = need.episode
                    dref = downloads.pop(ep.id, None) or download.remote(ep, media_dir, self.opts, a.ship_media)
                    actor = min(range(len(load)), key=load.__getitem__)
                    load[actor] += 1
                    embed(self.transcribers[actor].transcribe.remote(ep, dref, need.chapters), need, actor)
                for need in list(asr)[: a.prefetch]:  # downloads run ahead of the transcribers
                    ep = need.episode
                    if ep.id not in downloads and not ep.local:
                        downloads[ep.id] = download.remote(ep, media_dir, self.opts, a.ship_media)
                if not in_flight:
                    wait(looking, return_when=FIRST_COMPLETED)
                    continue
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.2 if looking else None)
                for ref in ready:
                    what, actor = in_flight.pop(ref)
                    if actor >= 0:
                        load[actor] -= 1
                    try:
                        out = ray.get(ref)
                    except ray.exceptions.RayError as e:  # a worker died, an unexpected exception
                        out = failed(_short(e))
                    if is_failed(out):
                        jobs.put(Failed(what.episode, out["failed"]))
                        continue
                    t, texts, vecs = out
                    self.embedder.put(texts, vecs)
                    if isinstance(what, NeedsAsr):
                        self.stats["transcribed"] += 1
                        jobs.put(Transcribed(what.episode, t))
                    else:
                        self.stats["existing" if what.fresh else "reused"] += 1
                        jobs.put(what)
        finally:
            jobs.put(None)
            writer.join()
            pool.shutdown(wait=False, cancel_futures=True)
            for ref in downloads.values():
                ray.cancel(ref)


def _short(e: BaseException) -> str:
    cause = getattr(e, "cause", None)
    text = str(cause or e).strip().splitlines()
    return (text[-1] if text else type(e).__name__)[:300]


def ray_resolver(ray, inputs: list[str], cpus: float):
    """Resolve every input as a Ray task; the result is a `resolve` hook for `Pipeline.ingest`."""
    task = ray.remote(num_cpus=cpus)(resolve_input)
    got = ray.get([task.remote(src) for src in inputs])
    resolved = {src: (SourceError(*r) if isinstance(r, tuple) else r) for src, r in zip(inputs, got, strict=True)}
    return _common.resolver(resolved)


def init_ray(ray, args: argparse.Namespace) -> None:
    kw: dict = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=args.verbose)
    if args.address:
        ray.init(address=args.address, **kw)
        return
    # A local cluster: enough logical CPUs for the actors plus downloads, whatever this box has.
    need = args.transcribers * args.cpus_per_transcriber + args.embedders * args.cpus_per_embedder + 1
    ray.init(num_cpus=max(_common.cpu_count(), int(need + 0.999)), **kw)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ray_ingest", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_ingest_args(ap)
    ap.add_argument("--address", default=None,
                    help="Ray cluster to join (e.g. auto, ray://head:10001). Default: start a local one.")
    ap.add_argument("--transcribers", type=int, default=1, help="Transcription actors (one model each).")
    ap.add_argument("--gpus-per-transcriber", type=float, default=None,
                    help="GPUs per transcription actor (fractions share a GPU). Default: 1 if the cluster "
                         "has GPUs, else 0.")
    ap.add_argument("--cpus-per-transcriber", type=float, default=1.0,
                    help="CPUs per transcription actor (also its decoding threads on CPU).")
    ap.add_argument("--embedders", type=int, default=1, help="Embedding actors.")
    ap.add_argument("--gpus-per-embedder", type=float, default=0.0, help="GPUs per embedding actor (e.g. 0.25).")
    ap.add_argument("--cpus-per-embedder", type=float, default=1.0)
    ap.add_argument("--cpus-per-download", type=float, default=0.25, help="CPUs reserved per download/resolve task.")
    ap.add_argument("--queue-per-transcriber", type=int, default=2,
                    help="Episodes queued on each transcriber (their downloads start when queued).")
    ap.add_argument("--prefetch", type=int, default=4, help="Further downloads started ahead of the queue.")
    ap.add_argument("--media-dir", default=None, help="Download cache (default: <home>/media). Shared by all nodes.")
    ap.add_argument("--ship-media", action="store_true",
                    help="Send media bytes through the object store (clusters without a shared filesystem).")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.transcribers < 1 or args.embedders < 1:
        ap.error("--transcribers and --embedders: at least 1")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")

    try:
        import ray
    except ImportError:
        print("ray_ingest: needs Ray: pip install -e '.[ray]'", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    home = _common.home_of(args)
    if (read := _common.read_inputs(args.urls, "ray_ingest")) is None:
        return 2
    inputs, input_errors = read

    init_ray(ray, args)
    try:
        t_ray = time.perf_counter() - t0
        gpus = ray.cluster_resources().get("GPU", 0)
        if args.gpus_per_transcriber is None:
            args.gpus_per_transcriber = 1.0 if gpus and args.device != "cpu" else 0.0
        opts = _common.ingest_options(args, cuda=args.gpus_per_transcriber > 0)
        embedder = PrecomputedEmbedder(Pipeline(home, opts).config.embedder)  # the home's config decides
        p = Pipeline(home, opts, _common.printer(args.quiet or args.json, "ray_ingest"), embedder=embedder)
        runner = RayRunner(p, embedder, args, ray)
        try:
            report = p.ingest(inputs, input_errors, resolve=ray_resolver(ray, inputs, args.cpus_per_download),
                              run=runner)
        except TalkindexError as e:
            print(f"ray_ingest: error: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("ray_ingest: interrupted; rerun the same command to continue", file=sys.stderr)
            return 130
        wall = time.perf_counter() - t0
        summary = _common.Summary.of(
            "ray_ingest", home, wall, [report], ray_start_s=round(t_ray, 2), cluster_gpus=gpus,
            transcribers=f"{args.transcribers} x ({args.cpus_per_transcriber} CPU, {args.gpus_per_transcriber} GPU)"
                         + (f" on {','.join(sorted(set(runner.devices)))}" if runner.transcribers else ""),
            embedders=f"{args.embedders} x ({args.cpus_per_embedder} CPU, {args.gpus_per_embedder} GPU)",
            batch_size=opts.batch_size or "off", transcribed=runner.stats["transcribed"],
            existing_transcripts=runner.stats["existing"],
            writer_reembedded_texts=runner.embedder.misses,
        )
        summary.print(args.json)
        return 0 if summary.failed == 0 else 1
    finally:
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
