#!/usr/bin/env python
"""The GPU-box batch job: a whole channel or feed list into one home, downloads ahead of the GPU.

    python pipelines/batch_ingest.py urls.txt --home /data/talks            # CUDA when present
    python pipelines/batch_ingest.py urls.txt --home H --device cpu          # same result as `talkindex ingest`

How it works (all stages are the library's, nothing is re-implemented here):

* every input is resolved up front on a thread pool (`sources.resolve`; feeds and channels are
  network-bound), then the episodes are cut into shards of `--shard-size`;
* each shard is one `Pipeline.ingest` call — download ahead in threads, transcribe (batched
  faster-whisper `BatchedInferencePipeline` on CUDA), chunk + embed + write in the one writer
  thread — so every shard ends with a searchable, compacted index;
* while shard k is transcribed, `--download-workers` threads fetch the media of shard k+1 into the
  home's media cache (`sources.download`), so the GPU never waits on the network;
* resumable: the store marks each episode 'indexed' as it lands; a rerun (after a crash, a kill or
  failures) skips what is indexed, reuses stored transcripts and continues.

Exit status: 0 when every input succeeded, 1 when any failed (listed in the summary), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

from talkindex.errors import TalkindexError  # noqa: E402
from talkindex.ingest.pipeline import IngestReport, Pipeline  # noqa: E402
from talkindex.records import Episode  # noqa: E402
from talkindex.sources import resolve as sources  # noqa: E402
from talkindex.sources import ytdl
from talkindex.transcripts.asr import cuda_available  # noqa: E402
from talkindex.transcripts.existing import candidates  # noqa: E402

log = logging.getLogger("talkindex.batch")


def shards(episodes: list[Episode], size: int) -> list[list[Episode]]:
    size = max(1, size)
    return [episodes[i:i + size] for i in range(0, len(episodes), size)]


class Prefetcher:
    """Downloads the media of upcoming shards into the home's media cache on a thread pool.

    `sources.download` returns a cached file at once, so when the pipeline reaches a prefetched
    episode its own download is instant. Failures are left for the pipeline to report. Episodes that
    offer a transcript --captions allows are not prefetched: the pipeline takes that transcript first
    (`Pipeline.existing`) and downloads only if it turns out unusable."""

    def __init__(self, pipeline: Pipeline, workers: int):
        self.p = pipeline
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="batch-prefetch")
        self.fetched = 0

    def submit(self, shard: list[Episode], skip: set[str]) -> None:
        for ep in shard:
            if not ep.local and ep.id not in skip and not candidates(ep, self.p.opts.captions):
                self.pool.submit(self._one, ep)

    def _one(self, ep: Episode) -> None:
        try:
            sources.download(ep, self.p.layout.media, max_bytes=self.p.opts.max_bytes)
            self.fetched += 1
        except Exception as e:  # noqa: BLE001 - the pipeline retries and reports it
            log.debug("prefetch of %s failed: %s", ep.id, e)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def drop_media(p: Pipeline, report: IngestReport, episodes: dict[str, Episode]) -> None:
    """Delete cached downloads of indexed episodes (never the user's own local files)."""
    for r in report.results:
        ep = episodes.get(r.episode_id)
        if r.status == "indexed" and ep is not None and not ep.local:
            for f in p.layout.media.glob(f"{ytdl.safe_id(ep.id)}.*"):
                f.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="batch_ingest", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_ingest_args(ap)
    ap.add_argument("--shard-size", type=int, default=25,
                    help="Episodes per shard; the index is finalised (searchable) after each shard.")
    ap.add_argument("--download-workers", type=int, default=4, help="Threads prefetching the next shard's media.")
    ap.add_argument("--resolve-workers", type=int, default=8, help="Threads resolving inputs (feeds, channels).")
    ap.add_argument("--drop-media", action="store_true", help="Delete downloaded media once its episode is indexed.")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")

    t0 = time.perf_counter()
    home = _common.home_of(args)
    if (read := _common.read_inputs(args.urls, "batch")) is None:
        return 2
    inputs, input_errors = read
    cuda = args.device != "cpu" and cuda_available()
    opts = _common.ingest_options(args, cuda)

    resolved = _common.resolve_parallel(inputs, args.resolve_workers)
    episodes: dict[str, Episode] = {}
    for got in resolved.values():
        for ep in got if isinstance(got, list) else []:
            episodes.setdefault(ep.id, ep)
    parts = shards(list(episodes.values()), args.shard_size)

    p = Pipeline(home, opts, _common.printer(args.quiet or args.json))
    # Episodes already indexed are not prefetched (the pipeline skips them). Read once, before writing.
    done = set() if opts.force or not p.layout.db.exists() else {
        k for k, v in p.store.statuses().items() if v == "indexed"}
    prefetch = Prefetcher(p, args.download_workers)
    reports: list[IngestReport] = []
    try:
        # The first call also records the inputs that resolved to nothing or failed to resolve.
        first = [src for src, got in resolved.items() if not isinstance(got, list) or not got]
        from_resolved = _common.resolver(resolved)
        parts = parts or [[]]
        for k, part in enumerate(parts):
            if k + 1 < len(parts):
                prefetch.submit(parts[k + 1], done)
            key = f"<shard {k + 1}/{len(parts)}>"
            rep = p.ingest([key] + (first if k == 0 else []), input_errors if k == 0 else None,
                           resolve=lambda src, key=key, part=part: part if src == key else from_resolved(src))
            reports.append(rep)
            if args.drop_media:
                drop_media(p, rep, episodes)
            if not args.quiet and not args.json and len(parts) > 1:
                n = sum(r.status == "indexed" for r in rep.results)
                print(f"batch: shard {k + 1}/{len(parts)} done ({n} indexed)", file=sys.stderr, flush=True)
    except TalkindexError as e:  # another writer holds the home, disk full before any episode, …
        print(f"batch: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("batch: interrupted; rerun the same command to continue", file=sys.stderr)
        return 130
    finally:
        prefetch.close()

    wall = time.perf_counter() - t0
    summary = _common.Summary.of(
        "batch_ingest", home, wall, reports,
        device=p.device if p.device != "auto" else ("cuda" if cuda else "cpu"),
        batch_size=opts.batch_size or "off", shards=len(parts), prefetched=prefetch.fetched,
    )
    summary.print(args.json)
    return 0 if summary.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
