"""What every command line face shares: the common options, the one-line printer, and the one
boundary where library errors become `talkindex: error: …` and an exit status.

Commands (app.py, web.py) just raise `TalkindexError`s; `CommandGroup.invoke` prints and exits,
and `app.main()` does the same for the fast `ask` path and anything unexpected.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Container
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from ..errors import TalkindexError

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
    from ..textsafe import term

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


def add_arguments(parser, command: Callable, skip: Container[str] = ()) -> None:
    """Add `command`'s typer parameters (flags, types, defaults, help) to an argparse `parser`, so a path
    that must not build the typer app (the fast `ask`) or a separate script (pipelines/) parses the same
    declaration. Arguments become positionals; `skip` names parameters the caller declares itself."""
    import inspect

    from typer.models import ArgumentInfo

    defaults = inspect.signature(command).parameters
    for name, hint in typing.get_type_hints(command, include_extras=True).items():
        if name == "return" or name in skip:
            continue
        info = hint.__metadata__[0]
        typ = next(t for t in (typing.get_args(hint.__origin__) or (hint.__origin__,)) if t is not type(None))
        help_ = (info.help or "").replace("%", "%%")
        if isinstance(info, ArgumentInfo):  # required unless the command gives it a default
            optional = defaults[name].default is not inspect.Parameter.empty
            parser.add_argument(name, help=help_, **({"nargs": "?"} if optional else {}))
            continue
        flags = [d for d in (info.default, *info.param_decls) if isinstance(d, str)]  # Annotated: flags come first
        flags = flags or ["--" + name.replace("_", "-")]
        if typ is bool:
            parser.add_argument(*flags, dest=name, action="store_true", help=help_)
        elif typing.get_origin(typ) is list:  # a repeatable option
            parser.add_argument(*flags, dest=name, action="append", type=typing.get_args(typ)[0],
                                default=defaults[name].default, help=help_)
        else:
            parser.add_argument(*flags, dest=name, type=typ, default=defaults[name].default, help=help_)
