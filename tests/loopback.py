"""A scripted loopback HTTP server for tests: each path answers what a test function says.

`with routes({"/feed.xml": feed_xml, "/slow.vtt": hang(30)}) as (base, hits): ...` — a route is bytes (a 200
with that body), a (status, headers, body) tuple, a list of those (answered in turn, the last one repeated),
or a callable(handler) that writes the whole response itself. `hits[path]` counts the requests.
The literal `PORT` in a body is replaced by the server's port.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def hang(seconds: float):
    """A route that sends nothing for `seconds` (an episode still in flight), then a 404."""

    def answer(h: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        h.send_error(404)

    return answer


@contextmanager
def routes(table: dict) -> Iterator[tuple[str, Counter]]:
    hits: Counter = Counter()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # quiet
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            with lock:
                n = hits[path]
                hits[path] += 1
            route = table.get(path)
            if route is None:
                self.send_error(404)
                return
            if callable(route):
                route(self)
                return
            if isinstance(route, list):
                route = route[min(n, len(route) - 1)]
            status, headers, body = (200, {}, route) if isinstance(route, bytes) else route
            if isinstance(body, str):
                body = body.encode()
            body = body.replace(b"PORT", str(self.server.server_address[1]).encode())
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)
