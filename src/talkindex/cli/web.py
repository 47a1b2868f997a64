"""`talkindex serve` and `talkindex mcp`: registered on the main Typer app by `register(app)`.

Kept apart from app.py so `talkindex ask` never imports FastAPI, uvicorn or the MCP SDK. Every
start-up failure (a port in use, a home that is not one) is a `TalkindexError`, which the command group
(`cli_common.CommandGroup`) prints as one `talkindex: error: …` line.
"""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import HomeError, TalkindexError, UsageError
from .common import HomeOpt


def check_home(home: Optional[Path]) -> Path:
    """The home to read, or exit 2: it must be an existing directory (serve and mcp never create one)."""
    from ..api import default_home

    where = home.expanduser() if home else default_home()
    if not where.exists():
        raise HomeError(f"{where}: no such home; run `talkindex ingest urls.txt --home {where}` first")
    if not where.is_dir():
        raise HomeError(f"{where}: not a directory (--home names the index directory)")
    db = where / "talkindex.duckdb"
    if db.exists() and not db.is_file():
        raise HomeError(f"{db}: not a database file")
    return where


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound before uvicorn starts so a busy port is one clear line."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UsageError(f"--host {host!r}: {e.strerror or e}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        why = "port already in use" if e.errno in (48, 98) else (e.strerror or str(e))
        raise TalkindexError(f"cannot listen on {host}:{port}: {why} (try --port)") from None
    sock.set_inheritable(True)
    return sock


def register(app: typer.Typer) -> None:
    """Add the `serve` and `mcp` commands to `app`."""

    @app.command()
    def serve(
        home: HomeOpt = None,
        host: Annotated[str, typer.Option(help="Address to bind. Anything but loopback exposes the index "
                                          "to the network.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port (0 picks a free one).", min=0, max=65535)] = 8765,
        open_browser: Annotated[bool, typer.Option("--open", help="Open the page in a browser.")] = False,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log requests to stderr.")] = False,
        allowed_host: Annotated[Optional[list[str]], typer.Option(
            "--allowed-host", metavar="NAME",
            help="Also answer requests for this Host name (repeatable; '*' allows any). By default only "
                 "127.0.0.1, localhost, [::1] and --host are answered, so a rebinding web page cannot read "
                 "the index.")] = None,
    ) -> None:
        """Serve a search page and a read-only JSON API (/api/ask, /api/episodes; docs at /docs)."""
        where = check_home(home)
        allowed = ["127.0.0.1", "localhost", "::1", host, *(allowed_host or [])]
        if host not in ("127.0.0.1", "localhost", "::1"):
            typer.echo(f"talkindex: warning: binding {host}: anyone who can reach this address can search "
                       "the index and play its media", err=True)
            if host in ("0.0.0.0", "::", ""):  # reached by the machine's name or address: name them
                allowed.append(socket.gethostname())
                typer.echo("talkindex: note: requests must name this machine as "
                           f"{socket.gethostname()} or an --allowed-host", err=True)
        sock = bind(host, port)
        import uvicorn

        from ..serve.web import create_app

        try:
            api = create_app(where, allowed_hosts=allowed)
        except TalkindexError:
            sock.close()
            raise
        real_port = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{real_port}/"
        typer.echo(f"talkindex: serving {where} at {url} (Ctrl-C stops)", err=True)
        if open_browser:
            import webbrowser

            webbrowser.open(url)
        config = uvicorn.Config(api, log_level="info" if verbose else "warning", access_log=verbose,
                                lifespan="off", timeout_graceful_shutdown=2)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        except KeyboardInterrupt:
            pass
        finally:
            sock.close()

    @app.command()
    def mcp(home: HomeOpt = None) -> None:
        """Model Context Protocol server over stdio (read-only): tools search, list_episodes, get_transcript."""
        where = check_home(home)
        log = logging.getLogger("talkindex")
        if not log.handlers:  # stdout carries the protocol: everything else goes to stderr
            h = logging.StreamHandler(sys.stderr)
            h.setFormatter(logging.Formatter("talkindex: %(message)s"))
            log.addHandler(h)
        from ..serve.mcp import build_server

        try:
            build_server(where).run("stdio")
        except KeyboardInterrupt:
            pass
