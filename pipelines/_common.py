"""Driver-side helpers shared by the batch jobs in this folder: options, inputs and the summary.

Only the driver process imports this module; Ray workers never need it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from talkindex.errors import SourceError
from talkindex.ingest.pipeline import IngestOptions, IngestReport
from talkindex.records import Episode


def add_ingest_args(ap: argparse.ArgumentParser) -> None:
    """The options `talkindex ingest` has, read from its own declaration (same names, defaults, help);
    only the batch size (auto per device here), --json (a summary) and -q differ."""
    from talkindex.cli.app import ingest
    from talkindex.cli.common import add_arguments

    add_arguments(ap, ingest, skip={"batch_size", "json_out", "verbose", "allow_private_urls"})
    ap.add_argument("--batch-size", type=int, default=None,
                    help="Batched inference size (faster-whisper BatchedInferencePipeline). Default: 16 on "
                         "CUDA, 0 (sequential, same as `talkindex ingest`) on CPU.")
    ap.add_argument("--json", action="store_true", help="Print the summary as one JSON object on stdout.")
    ap.add_argument("-q", "--quiet", action="store_true", help="No per-episode lines on stderr.")


def ingest_options(args: argparse.Namespace, cuda: bool) -> IngestOptions:
    """The run's `IngestOptions`; a value `talkindex ingest` would refuse (e.g. --captions) exits 2 here too."""
    from talkindex.errors import UsageError

    batch = args.batch_size if args.batch_size is not None else (16 if cuda and args.device != "cpu" else 0)
    try:
        opts = IngestOptions.from_args({**vars(args), "batch_size": batch})
        opts.lower_priority()  # the batch job's process only ingests (its Ray workers inherit it)
        return opts
    except UsageError as e:
        print(f"{Path(sys.argv[0]).stem}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def home_of(args: argparse.Namespace) -> Path:
    from talkindex.home import default_home

    return args.home.expanduser() if args.home else default_home()


def read_inputs(path: Path | str, prog: str) -> tuple[list[str], list[str]] | None:
    """Inputs of a urls file and one message per malformed line (as `talkindex ingest` reads it).

    Each malformed line is printed as `PROG: error: …`; an unreadable file prints one line and
    returns None (the caller exits 2)."""
    from talkindex.errors import TalkindexError
    from talkindex.sources.resolve import read_urls_file

    try:
        inputs, errors = read_urls_file(Path(path))
    except TalkindexError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return None
    for e in errors:
        print(f"{prog}: error: {e}", file=sys.stderr)
    return inputs, [str(e) for e in errors]


def resolve_parallel(inputs: list[str], workers: int) -> dict[str, list[Episode] | SourceError]:
    """`sources.resolve` for every input on a thread pool (feeds and channels are network-bound)."""
    from talkindex.sources import resolve as sources

    def one(src: str):
        try:
            return sources.resolve(src)
        except SourceError as e:
            return e

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="resolve") as pool:
        return dict(zip(inputs, pool.map(one, inputs), strict=True))


def resolver(resolved: dict[str, list[Episode] | SourceError]):
    """A `resolve` hook for `Pipeline.ingest` that answers from `resolved`."""
    from talkindex.sources import resolve as sources

    def resolve(src: str) -> list[Episode]:
        got = resolved.get(src)
        if got is None:
            return sources.resolve(src)
        if isinstance(got, SourceError):
            raise got
        return got

    return resolve


def printer(quiet: bool, prog: str = "batch"):
    """A progress callback: one line per finished / failed episode on stderr."""

    def progress(event: str, **d) -> None:
        if quiet:
            return
        ep = d.get("episode")
        name = (ep.title or ep.id)[:60] if ep else ""
        if event == "error":
            print(f"{prog}: error: {d['message']}", file=sys.stderr, flush=True)
        elif event == "done":
            print(f"{prog}: indexed: {name} ({d['chunks']} chunks, {d['duration']:.0f} s)", file=sys.stderr, flush=True)
        elif event == "transcribe_start":
            print(f"{prog}: transcribing: {name}", file=sys.stderr, flush=True)

    return progress


@dataclass
class Summary:
    engine: str
    home: str
    wall_s: float
    indexed: int = 0
    skipped: int = 0
    failed: int = 0
    audio_s: float = 0.0  # audio indexed by this run
    chunks: int = 0
    failures: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @classmethod
    def of(cls, engine: str, home: Path, wall_s: float, reports: list[IngestReport], **extra) -> Summary:
        s = cls(engine, str(home), wall_s, extra=extra)
        for rep in reports:
            s.failures += rep.input_errors
            for r in rep.results:
                if r.status == "indexed":
                    s.indexed += 1
                    s.audio_s += r.duration
                    s.chunks += r.chunks
                elif r.status == "skipped":
                    s.skipped += 1
                else:
                    s.failures.append(r.error or r.episode_id)
        s.failed = len(s.failures)
        return s

    @property
    def rtf(self) -> float | None:
        """Real-time factor: wall seconds per second of audio indexed (lower is faster; 0.1 = 10x)."""
        return round(self.wall_s / self.audio_s, 4) if self.audio_s else None

    def as_dict(self) -> dict:
        return {
            "engine": self.engine, "home": self.home, "episodes": self.indexed + self.skipped + self.failed,
            "indexed": self.indexed, "skipped": self.skipped, "failed": self.failed,
            "audio_hours": round(self.audio_s / 3600, 4), "wall_s": round(self.wall_s, 2), "rtf": self.rtf,
            "speed_x": round(self.audio_s / self.wall_s, 2) if self.wall_s else None, "chunks": self.chunks,
            "failures": self.failures, **self.extra,
        }

    def print(self, as_json: bool) -> None:
        d = self.as_dict()
        if as_json:
            print(json.dumps(d, ensure_ascii=False))
            return
        rtf = f"{d['rtf']:.3f} ({d['speed_x']}x real time)" if d["rtf"] else "n/a (no new audio)"
        lines = [
            f"{self.engine} summary ({self.home})",
            f"  episodes      {d['episodes']}: {d['indexed']} indexed, {d['skipped']} already done, "
            f"{d['failed']} failed",
            f"  audio         {d['audio_hours']:.3f} h indexed ({d['chunks']} chunks)",
            f"  wall time     {d['wall_s']:.1f} s",
            f"  real-time     {rtf}",
        ]
        lines += [f"  {k:<13} {v}" for k, v in self.extra.items()]
        lines += [f"  failure: {f}" for f in self.failures]
        print("\n".join(lines))


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
