"""The command line: typer commands, the fast ask path, rendering and progress."""


def __getattr__(name: str):
    # The console script's `talkindex.cli:main`; lazy, so `talkindex.cli.common` alone stays cheap.
    if name == "main":
        from .app import main

        return main
    raise AttributeError(name)
