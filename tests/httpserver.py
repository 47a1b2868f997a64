"""Loopback HTTP server for tests: `with serve(directory) as base_url: ...` (no trailing slash).

The project's own server (talkindex.serve), so tests exercise the code `talkindex eval` uses."""

from talkindex.serve import serve_directory as serve

__all__ = ["serve"]
