"""The command line: typer commands, the fast ask path, rendering and progress."""

from __future__ import annotations


def main() -> None:
    """The console script (`talkindex.cli:main`, and `python -m talkindex`): a plain `ask` starts its
    query encoders before typer and the app are imported (search/prefetch.py `speculate`); the imports
    stay inside, so `talkindex.cli.common` alone stays cheap."""
    import sys

    from ..search.prefetch import speculate

    speculate(sys.argv[1:])
    from .app import main as app_main

    app_main()
