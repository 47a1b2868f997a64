"""What every command line face shares: the common options, the one-line printer, and the one
boundary where library errors become `talkindex: error: …` and an exit status.

Commands (cli.py, cli_web.py) just raise `TalkindexError`s; `CommandGroup.invoke` prints and exits,
and `cli.main()` does the same for the fast `ask` path and anything unexpected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from .errors import TalkindexError

HOME_ENV = "TALKINDEX_HOME"
HomeOpt = Annotated[
    Optional[Path],
    typer.Option("--home", help=f"Index directory. Default: ${HOME_ENV}, else the user data dir.",
                 envvar=HOME_ENV, show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON / JSON lines).")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens to stderr.")]


def say(kind: str, message: str) -> None:
    """One `talkindex: KIND: message` line on stderr, remote text made terminal-safe."""
    from .textsafe import term

    typer.echo(f"talkindex: {kind}: {term(str(message))}", err=True)


def usage(message: str) -> None:
    """Refuse a malformed command line: one line, exit status 2."""
    say("error", message)
    raise typer.Exit(2)


class CommandGroup(TyperGroup):
    """The root command group: a `TalkindexError` from any command is one line and its exit status."""

    def invoke(self, ctx):  # noqa: ANN001, ANN201 - click's signature
        try:
            return super().invoke(ctx)
        except TalkindexError as e:
            say("error", str(e))
            raise typer.Exit(e.exit_code) from None
