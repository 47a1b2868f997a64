"""Query encoders started while a one-shot `talkindex ask` is still importing.

Why: a cold ask spends ~0.3 s on one core importing duckdb, faiss, numpy, typer and talkindex, and its
query encoders need ~0.25 s more CPU (mpnet: 436 MB of weights to map and run once). onnxruntime
releases the GIL while it loads and runs a model, so the CLI's fast path calls `start(home, question)`
as soon as it has parsed the command line: one thread per model of the home loads the cold-start
session and encodes the question on the other core meanwhile. The Searcher then `take`s each
encoder; its first call with that same question returns the vector computed ahead (the same session
and input, so the same vector). Nothing outlives the process: no file, no daemon; the threads are not
daemons, so an ask that fails early waits for them rather than tearing onnxruntime down under a
running thread.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

log = logging.getLogger("talkindex")

_lock = threading.Lock()
_pending: dict[str, _Ahead] = {}  # export dir → its encoder being loaded
_started: tuple[str, str] | None = None  # (home, question) of the encoders being loaded


class _Ahead:
    """One model's cold-start encoder, loaded (and the question encoded) in its own thread."""

    def __init__(self, export: Path, question: str):
        self.export = export
        self.question = question
        self.encoder = None
        self._vector = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            from ..embed.onnx import load_query_encoder

            # One intra-op thread: the main thread keeps the other core for its imports (two threads
            # each: pair ask 1.52 s vs 1.17 s, median of 9, on the 2-core box under load).
            enc = load_query_encoder(self.export, threads=1)
            if enc is not None:
                self._vector = enc.encode([self.question])
            self.encoder = enc
        except Exception:  # noqa: BLE001 - the Searcher then loads the encoder itself and reports
            log.debug("query encoder prefetch failed for %s", self.export, exc_info=True)
        finally:
            self.done.set()

    def encode(self, texts: list[str]):
        vector, self._vector = self._vector, None  # computed ahead for the first call only
        if vector is not None and list(texts) == [self.question]:
            return vector
        return self.encoder.encode(texts)


def start(home: str | Path | None, question: str) -> None:
    """Begin loading the query encoders of `home`'s models and encoding `question` in the background.

    onnxruntime, tokenizers and the export paths are imported here, in the caller's thread (the ask
    needs them anyway): imported by the background threads they would share the GIL with the caller's
    own imports and the sessions would start loading later. A second call for the same home and
    question (the parsed command line after `speculate`) keeps what is still loading."""
    global _started
    try:
        from ..home import Layout, default_home

        layout = Layout(Path(home).expanduser() if home else default_home())
        with _lock:
            if _started == (str(layout.home), question) and _pending:
                return
            _started = (str(layout.home), question)
            _pending.clear()
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401

        from ..embed.passages import export_dir

        cfg = layout.load_config() if layout.db.exists() else None  # no config.json: the Searcher loads them
        aheads = {name: _Ahead(export_dir(name), question) for name in (cfg.embedders if cfg else ())}
        for name, ahead in sorted(aheads.items(), key=lambda kv: -_weight_bytes(kv[1].export)):  # slowest first
            threading.Thread(target=ahead.run, name=f"talkindex-prefetch-{name}").start()
            with _lock:  # only once running: `take` must never wait for a thread that did not start
                _pending[str(ahead.export)] = ahead
    except Exception:  # noqa: BLE001 - no onnxruntime, an unreadable home...: the ask itself reports it
        log.debug("query encoder prefetch not started", exc_info=True)


def speculate(argv: list[str]) -> None:
    """`start` from the raw command line, before typer is imported and the arguments parsed (~60 ms
    sooner: mpnet's encoder is the last thing a cold ask waits for), for the plain form
    `ask "QUESTION" [--home DIR] [options]` only. Anything else waits for the parsed `start`; a guess
    the parser contradicts costs only the work done ahead (`start` again, and `take` checks the question)."""
    if len(argv) < 2 or argv[0] != "ask" or argv[1].startswith("-"):
        return
    home = None
    for i, a in enumerate(argv[2:], 2):
        if a in ("-h", "--help") or a.startswith(("--file", "--mode")):  # help, or perhaps no encoding at all
            return
        if a == "--home" and i + 1 < len(argv):
            home = argv[i + 1]
        elif a.startswith("--home="):
            home = a.split("=", 1)[1]
    if home != "":
        start(home, argv[1])


def _weight_bytes(export: Path) -> int:
    from ..embed.onnx import WEIGHTS_FILE

    try:
        return (export / WEIGHTS_FILE).stat().st_size
    except OSError:
        return 0


def take(export: Path):
    """The `encode` of the encoder prefetched for `export` (waits for it), or None when none was."""
    with _lock:
        ahead = _pending.pop(str(export), None)
    if ahead is None:
        return None
    ahead.done.wait()
    return ahead.encode if ahead.encoder is not None else None
