"""A loopback-only static file server (for `talkindex eval` on a feed folder, and for tests).

Binds 127.0.0.1 on a free port unless told otherwise; `feed.xml` may hold the literal placeholder
PORT, replaced on the fly so read-only folders can be served as they are.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Only the host:PORT placeholder of a devset-style feed, never the letters inside "SUPPORT" or "REPORT".
_PLACEHOLDER = re.compile(rb"(127\.0\.0\.1|localhost):PORT\b")


class _Handler(SimpleHTTPRequestHandler):
    port = 0

    def log_message(self, format, *args):  # quiet
        pass

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if path.suffix in (".xml", ".rss") and path.is_file():
            port = str(self.server.server_address[1]).encode()
            body = _PLACEHOLDER.sub(rb"\1:" + port, path.read_bytes())
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            import io

            return io.BytesIO(body)
        return super().send_head()


@contextmanager
def serve_directory(directory: str | Path, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `directory` from a background thread; yields the base URL (no trailing slash)."""
    handler = functools.partial(_Handler, directory=str(directory))
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="talkindex-serve", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
