"""Progress for ingest: rich bars on a terminal, plain log lines otherwise (CLI layer only)."""

from __future__ import annotations

import sys

from ..textsafe import line, term


class IngestProgress:
    """Callable(event, **data) that the pipeline reports to; renders on stderr."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self._p = None
        self._tasks: dict[str, int] = {}
        self._overall = None

    def __enter__(self) -> IngestProgress:
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

            self._p = Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                               TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                               console=Console(stderr=True), transient=False)
            self._download_cols = DownloadColumn
            self._p.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._p:
            self._p.stop()

    def _line(self, msg: str) -> None:
        """One progress line; `msg` quotes remote titles and reasons, so it is escaped here (textsafe)."""
        msg = term(msg)
        if self._p:
            self._p.console.print(msg, markup=False, highlight=False)
        else:
            print(f"talkindex: {msg}", file=sys.stderr, flush=True)

    def __call__(self, event: str, **d) -> None:
        ep = d.get("episode")
        name = line(ep.title or ep.id, 60) if ep else ""
        if event == "error":
            self._line(f"error: {d['message']}")
        elif event == "warning":
            self._line(f"warning: {d['message']}")
        elif event == "start":
            if self._p:
                self._overall = self._p.add_task("episodes", total=d["total"])
            else:
                self._line(f"{d['total']} episode(s) to ingest")
        elif event == "skip":
            if not self._p and not self.quiet:
                self._line(f"already indexed: {name}")
        elif event in ("download", "transcribe") and self._p:
            key = f"{event}:{ep.id}"
            label = ("download " if event == "download" else "transcribe ") + name
            if key not in self._tasks:
                self._tasks[key] = self._p.add_task(label, total=d.get("total") or None)
            self._p.update(self._tasks[key], completed=d["done"], total=d.get("total") or None)
        elif event == "reindex":  # re-embedding/re-chunking stored transcripts (a new embedder, chunking)
            if self._p:
                if "reindex" not in self._tasks:
                    self._tasks["reindex"] = self._p.add_task("re-embed stored transcripts", total=d["total"])
                self._p.update(self._tasks["reindex"], completed=d["done"])
            elif d["done"] == 0 and not self.quiet:
                self._line(f"re-embedding {d['total']} stored transcript(s) (no re-transcription)")
        elif event == "transcribe_start" and not self._p:
            self._line(f"transcribing: {name}")
        elif event == "done":
            if self._p:
                for key in [k for k in self._tasks if k.endswith(ep.id)]:
                    self._p.remove_task(self._tasks.pop(key))
                if self._overall is not None:
                    self._p.advance(self._overall)
            self._line(f"indexed: {name} ({d['chunks']} chunks, {d['duration']:.0f} s)")
