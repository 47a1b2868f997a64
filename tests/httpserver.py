"""Loopback HTTP server for tests: `with serve(directory) as base_url: ...` (no trailing slash).

The project's own server (talkindex.serve.files), so tests exercise the code `talkindex eval` uses.
`types={"name.srt": "application/x-subrip; charset=gb2312"}` sends those Content-Types as given
(a publisher's charset, or a wrong type), for the files named."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from talkindex.serve import files as _serve


@contextmanager
def serve(directory: str | Path, types: dict[str, str] | None = None):
    if not types:
        with _serve.serve_directory(directory) as base:
            yield base
        return

    class Typed(_serve._Handler):
        def guess_type(self, path):
            return types.get(Path(path).name) or super().guess_type(path)

    with mock.patch.object(_serve, "_Handler", Typed), _serve.serve_directory(directory) as base:
        yield base


__all__ = ["serve"]
