"""Thin CLI over `talkindex.Index`: parse, call one method, render (rich, or --json).

Library exceptions become one line on stderr and an exit status here, and only here.
Heavy modules are imported inside commands so `talkindex ask` starts fast.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import TalkindexError

app = typer.Typer(
    help="Turn talks, podcasts and videos into a searchable, timestamped index, then ask it questions.\n\n"
    "  talkindex ingest urls.txt\n\n  talkindex ask \"what is feature store drift\"",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

HomeOpt = Annotated[
    Optional[Path],
    typer.Option("--home", help="Index directory. Default: $TALKINDEX_HOME, else the user data dir.",
                 envvar="TALKINDEX_HOME", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON / JSON lines).")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens to stderr.")]


def _setup_logging(verbose: bool) -> None:
    log = logging.getLogger("talkindex")
    if not log.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("talkindex: %(message)s"))
        log.addHandler(h)
    log.setLevel(logging.INFO if verbose else logging.WARNING)


def _fail(e: TalkindexError) -> None:
    typer.echo(f"talkindex: error: {e}", err=True)
    raise typer.Exit(e.exit_code)


def _index(home: Optional[Path]):
    from .api import Index

    return Index(home)


@app.command()
def ingest(
    urls: Annotated[Path, typer.Argument(help="Text file: one URL, feed, playlist, channel or media path per line.")],
    home: HomeOpt = None,
    model: Annotated[str, typer.Option(help="faster-whisper model name (downloaded when online) or a local "
                                       "CTranslate2 directory. tiny.en is bundled and works offline.")] = "tiny.en",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda (auto: CUDA float16 when present, else CPU int8).")] = "auto",
    compute_type: Annotated[str, typer.Option(help="CTranslate2 compute type (auto, int8, float16, …).")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Batched inference size; 0 = auto (batched on GPU).")] = 0,
    beam_size: Annotated[int, typer.Option(help="Beam size for decoding.")] = 1,
    embedder: Annotated[str, typer.Option(help="sentence-transformers model name or path; changing it "
                                          "re-embeds stored transcripts.")] = "all-MiniLM-L6-v2",
    max_duration: Annotated[Optional[float], typer.Option(help="Refuse media longer than this (seconds).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo episodes that are already indexed.")] = False,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Download, transcribe and index every input of URLS. Reruns skip what is done.

    Exit status: 0 when every input succeeded, 1 when any failed (each named on stderr), 2 on usage errors.
    """
    _setup_logging(verbose)
    from .pipeline import IngestOptions
    from .sources import read_urls_file

    from .progress import IngestProgress

    try:
        inputs, errors = read_urls_file(urls)
        for e in errors:
            typer.echo(f"talkindex: error: {e}", err=True)
        opts = IngestOptions(model=model, device=device, compute_type=compute_type, batch_size=batch_size,
                             beam_size=beam_size, embedder=embedder, force=force, max_duration=max_duration)
        with IngestProgress(json_out) as progress:
            report = _index(home).ingest(inputs, opts, progress, [str(e) for e in errors])
    except TalkindexError as e:
        _fail(e)
    from .api import dumps

    if json_out:
        from dataclasses import asdict

        for r in report.results:
            typer.echo(dumps(asdict(r)))
    done = sum(r.status == "indexed" for r in report.results)
    skipped = sum(r.status == "skipped" for r in report.results)
    failed = sum(r.status == "failed" for r in report.results) + len(report.input_errors)
    typer.echo(f"talkindex: {done} indexed, {skipped} already done, {failed} failed", err=True)
    raise typer.Exit(0 if report.ok else 1)


@app.command("list")
def list_(home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """Episodes in the index with status, duration, show, date and chunk count."""
    from .api import dumps

    eps = _index(home).episodes()
    if json_out:
        typer.echo(dumps(eps))
        return
    if not eps:
        typer.echo("no episodes yet: run `talkindex ingest urls.txt`", err=True)
        return
    from rich.console import Console
    from rich.table import Table

    from .formats import hms

    t = Table(box=None)
    for col in ("id", "title", "show", "date", "duration", "status", "chunks"):
        t.add_column(col, overflow="fold")
    for e in eps:
        t.add_row(e["id"], e["title"] or "", e["show"] or "", e["published"] or "",
                  hms(e["duration"]) if e["duration"] else "", e["status"] + (f" ({e['error']})" if e["error"] else ""),
                  str(e["chunks"] or 0))
    Console().print(t)


@app.command()
def transcript(
    episode_id: Annotated[str, typer.Argument(help="Episode id (see `talkindex list`).")],
    home: HomeOpt = None,
    format: Annotated[str, typer.Option("--format", "-f", help="txt | srt | vtt | json")] = "txt",
) -> None:
    """Print an episode's transcript as text, SRT, WebVTT or JSON (with word timestamps)."""
    from .formats import FORMATS, render

    if format not in FORMATS:
        typer.echo(f"talkindex: error: unknown format {format!r}: use one of {', '.join(FORMATS)}", err=True)
        raise typer.Exit(2)
    try:
        t = _index(home).transcript(episode_id)
    except TalkindexError as e:
        _fail(e)
    sys.stdout.write(render(t, format))


@app.command()
def ask(
    question: Annotated[Optional[str], typer.Argument(help="What you want to find.")] = None,
    k: Annotated[int, typer.Option("-k", help="How many moments to return.", min=1)] = 5,
    file: Annotated[Optional[Path], typer.Option("--file", help="One question per line; prints JSON lines.")] = None,
    mode: Annotated[str, typer.Option(help="hybrid | dense | keyword")] = "hybrid",
    show: Annotated[Optional[str], typer.Option(help="Only episodes of this show (substring, any case).")] = None,
    since: Annotated[Optional[str], typer.Option(help="Only episodes published on or after YYYY-MM-DD.")] = None,
    episode: Annotated[Optional[str], typer.Option(help="Only this episode id.")] = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Find the moments that answer QUESTION, each with a deep link that starts playback there."""
    _setup_logging(verbose)
    from .api import dumps, hits_json

    if (question is None) == (file is None):
        typer.echo("talkindex: error: give a QUESTION or --file QUESTIONS.txt (not both)", err=True)
        raise typer.Exit(2)
    if since is not None:
        import datetime

        try:
            datetime.date.fromisoformat(since)
        except ValueError:
            typer.echo(f"talkindex: error: --since {since!r} is not a date like 2024-01-31", err=True)
            raise typer.Exit(2) from None
    filters = dict(mode=mode, show=show, since=since, episode=episode)
    idx = _index(home)
    try:
        if file is not None:
            from .search import load_questions

            try:
                questions = load_questions(file)
            except OSError as e:
                typer.echo(f"talkindex: error: {file}: {e.strerror or e}", err=True)
                raise typer.Exit(2) from None
            for q, hits in zip(questions, idx.ask_many(questions, k=k, **filters)):
                typer.echo(dumps({"query": q, "hits": hits_json(hits)}))
            return
        hits = idx.ask(question, k=k, **filters)
    except TalkindexError as e:
        _fail(e)
    if json_out:
        typer.echo(dumps(hits_json(hits)))
        return
    if not hits:
        typer.echo("no matching moments", err=True)
        raise typer.Exit(1)
    from .render import print_hits

    print_hits(hits, question)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("talkindex: interrupted", err=True)
        sys.exit(130)
