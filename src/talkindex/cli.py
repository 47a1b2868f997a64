"""Thin CLI over `talkindex.Index`: parse, call one method, render (rich, or --json).

Library exceptions become one line on stderr and an exit status here, and only here.
Heavy modules are imported inside commands so `talkindex ask` starts fast.
"""

from __future__ import annotations

import logging
import re
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
    urls: Annotated[str, typer.Argument(help="Text file with one URL, feed, playlist, channel or media path per "
                                        "line — or a single http(s) URL.")],
    home: HomeOpt = None,
    model: Annotated[str, typer.Option(help="faster-whisper model name (downloaded when online) or a local "
                                       "CTranslate2 directory. tiny.en is bundled and works offline.")] = "tiny.en",
    device: Annotated[str, typer.Option(
        help="auto | cpu | cuda (auto: CUDA float16 when present, else CPU int8).")] = "auto",
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
    from .progress import IngestProgress
    from .sources import read_urls_file

    try:
        if re.match(r"^https?://", urls, re.I):
            inputs, errors = [urls], []
        else:
            inputs, errors = read_urls_file(Path(urls))
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


eval_app = typer.Typer(help="Measure retrieval quality on a spoken QA set, or ASR word error rate.",
                       no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("retrieval")
def eval_retrieval(
    directory: Annotated[Path, typer.Argument(help="Folder like the devset: feed.xml (enclosures at "
                                              "http://127.0.0.1:PORT/…), media, questions.json, truth.json.")],
    home: Annotated[Optional[Path], typer.Option("--home", help="Ingest into this home (default: a scratch "
                                                 "home, deleted afterwards).")] = None,
    mode: Annotated[Optional[list[str]], typer.Option(help="Search mode(s) to score; repeat for several "
                                                      "(default: hybrid).")] = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Serve DIRECTORY on loopback, ingest its feed, ask every question; print R@1, R@5, MRR@10 and
    |hit start − answer start| overall and per question kind. A hit is in the right episode and overlaps
    the answer sentence ±1 sentence."""
    _setup_logging(verbose)
    from .api import dumps
    from .evaluate import eval_retrieval as run
    from .progress import IngestProgress

    try:
        with IngestProgress(quiet=True) as progress:
            res = run(directory, home=home, modes=tuple(mode or ["hybrid"]), progress=progress)
    except TalkindexError as e:
        _fail(e)
    if json_out:
        typer.echo(dumps(res))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{res['set']}: {res['questions']} questions", box=None)
    for col in ("mode", "kind", "n", "R@1", "R@5", "MRR@10", "≤10 s", "median |Δstart| s", "p90 s", "ask ms"):
        t.add_column(col)
    for m, r in res["modes"].items():
        for kind, v in [("all", r["overall"]), *r["by_kind"].items()]:
            t.add_row(m, kind, str(v["n"]), f"{v['r@1']:.2f}", f"{v['r@5']:.2f}", f"{v['mrr@10']:.3f}",
                      f"{v['within_10s']:.2f}", str(v["start_error_median"]), str(v["start_error_p90"]),
                      str(r["ask_ms_per_question"]) if kind == "all" else "")
    Console().print(t)


@eval_app.command("asr")
def eval_asr(
    manifest: Annotated[Path, typer.Argument(help="JSON list of clips: file, transcript_text (or transcript), "
                                             "language; paths relative to the manifest.")],
    model: Annotated[str, typer.Option(help="faster-whisper model name or directory.")] = "tiny.en",
    beam_size: Annotated[int, typer.Option(help="Beam size.")] = 1,
    batch_size: Annotated[int, typer.Option(help="Batched inference size; 0 = sequential on CPU.")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Word error rate per clip and overall (lower-cased, punctuation stripped) and real-time factor, for
    English clips with exact human references."""
    from .api import dumps
    from .evaluate import eval_asr as run

    if not manifest.is_file():
        typer.echo(f"talkindex: error: {manifest}: no such manifest file", err=True)
        raise typer.Exit(2)
    try:
        res = run(manifest, model=model, beam_size=beam_size, batch_size=batch_size, device=device)
    except TalkindexError as e:
        _fail(e)
    if json_out:
        typer.echo(dumps(res))
        return
    for r in res["clips"]:
        typer.echo(f"{r['clip']:<55} words {r['words']:>4}  WER {r['wer']:.3f}  RTF {r['rtf']:.3f}")
    typer.echo(f"overall: {res['words']} words, WER {res['wer']:.3f}, RTF {res['rtf']:.3f} ({res['model']})")


def _fast_ask(argv: list[str]) -> bool:
    """Run a well-formed `talkindex ask ...` without typer's parameter coercion, which imports pydantic
    (~0.1 s, a third of the cold-start budget). Anything unusual (--help, a bad or unknown option, k < 1)
    returns False and typer handles the command as before, with its own messages."""
    if not argv or argv[0] != "ask" or any(a in ("-h", "--help") for a in argv[1:]):
        return False
    import argparse

    class _Parser(argparse.ArgumentParser):
        def error(self, message):  # noqa: ARG002 - fall back to typer for every error
            raise ValueError(message)

    p = _Parser(add_help=False, allow_abbrev=False, exit_on_error=False)
    p.add_argument("question", nargs="?")
    p.add_argument("-k", type=int, default=5)
    for opt in ("--file", "--mode", "--show", "--since", "--episode", "--home"):
        p.add_argument(opt)
    p.add_argument("--json", dest="json_out", action="store_true")
    p.add_argument("--verbose", "-v", action="store_true")
    try:
        a = p.parse_args(argv[1:])
    except (ValueError, argparse.ArgumentError):
        return False
    if a.k < 1 or a.mode == "" or a.home == "":
        return False
    try:
        ask(question=a.question, k=a.k, file=Path(a.file) if a.file is not None else None,
            mode=a.mode or "hybrid", show=a.show, since=a.since, episode=a.episode,
            home=Path(a.home) if a.home is not None else None, json_out=a.json_out, verbose=a.verbose)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    return True


def main() -> None:
    try:
        if not _fast_ask(sys.argv[1:]):
            app()
    except KeyboardInterrupt:
        typer.echo("talkindex: interrupted", err=True)
        sys.exit(130)


@app.command()
def doctor(
    home: HomeOpt = None,
    repair: Annotated[bool, typer.Option("--repair", help="Fix what can be fixed without re-transcribing.")] = False,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Check that FAISS, DuckDB, episode states and files under the home agree.

    Exit status: 0 when clean, 1 when problems remain (each listed). --repair rebuilds FAISS from the
    stored embeddings, re-embeds from stored transcripts and removes leftovers; it refuses to run while
    an ingest holds the home.
    """
    _setup_logging(verbose)
    from . import doctor as doc
    from .api import default_home, dumps

    where = home.expanduser() if home else default_home()
    repaired: list[str] = []
    try:
        if repair:
            repaired = doc.repair(where)
        problems = doc.check(where)
    except TalkindexError as e:
        _fail(e)
    if json_out:
        typer.echo(dumps({"home": str(where), "ok": not problems, "repaired": repaired,
                          "problems": [p.to_dict() for p in problems]}))
    else:
        for line in repaired:
            typer.echo(f"repaired: {line}")
        for p in problems:
            typer.echo(f"problem: {p}")
        typer.echo(f"talkindex: {where}: " + ("ok, no problems" if not problems else f"{len(problems)} problem(s)"
                                              + ("" if repair else "; try `talkindex doctor --repair`")), err=True)
    raise typer.Exit(0 if not problems else 1)
