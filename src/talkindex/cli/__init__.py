"""The command line: typer commands, the fast ask path, rendering and progress."""
