"""`talkindex serve`: a read-only web page and JSON API over one warm `Index`.

One `Index` lives as long as the process, so the query encoder, FAISS segments and sentence vectors
load once and a warm `/api/ask` costs milliseconds. Nothing here writes to the home: there is no
ingest or delete endpoint. Pages are rendered on the server with autoescaping Jinja templates; the
only scripts are static files (a strict Content-Security-Policy forbids inline ones), and Swagger
UI for `/docs` is served from the `fastapi-offline` package's files instead of a CDN.
"""

from __future__ import annotations

import logging
import mimetypes
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..api import Index, dumps, hits_json
from ..errors import BusyError, NotFoundError, TalkindexError, UsageError
from ..requests import DEFAULT_FORMAT, DEFAULT_K, DEFAULT_MODE, MODES, AskRequest, TranscriptRequest, seconds
from ..search.links import youtube_id
from ..search.searcher import highlight_terms
from ..transcripts.formats import FORMATS, hms, render, sections

log = logging.getLogger("talkindex")

WEB = Path(__file__).parent / "assets"
VIDEO_EXTS = {"mp4", "m4v", "webm", "mkv", "mov", "ogv"}
TRANSCRIPT_TYPES = {"txt": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt",
                    "json": "application/json", "outline": "text/plain", "youtube": "text/plain"}

# No inline script anywhere; media may come from the episode's own host; YouTube only in its iframe.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https://i.ytimg.com; "
       "media-src 'self' https: http:; frame-src https://www.youtube-nocookie.com https://www.youtube.com; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# Swagger UI sets style attributes from its bundle (still no inline script).
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
# Host names a loopback server answers to; anything else is refused (DNS rebinding), as Jupyter and Vite do.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
HOST_REFUSED = (b"talkindex: this Host is not allowed (DNS rebinding guard); "
                b"`talkindex serve --allowed-host NAME` allows another name\n")


def host_name(header: str) -> str:
    """The name in a Host header, without port or IPv6 brackets, lower-cased ("" when there is none)."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else ""
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


class HostGuard:
    """ASGI middleware: a 403 for any request whose Host is not one of `allowed` (a "*" allows all).

    A web page on a rebinding domain reaches a loopback server with its own name in Host; refusing
    unknown names keeps the index and transcripts from being read by any site the user visits."""

    def __init__(self, app, allowed):
        self.app = app
        self.allowed = {host_name(a) for a in allowed} - {""}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or "*" in self.allowed:
            return await self.app(scope, receive, send)
        hosts = [v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"]
        if len(hosts) == 1 and host_name(hosts[0]) in self.allowed:
            return await self.app(scope, receive, send)
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(HOST_REFUSED)).encode()),
                                (b"x-content-type-options", b"nosniff")]})
        await send({"type": "http.response.body", "body": HOST_REFUSED})


class SecurityHeaders:
    """ASGI middleware adding CSP and friends to every response (cheaper than BaseHTTPMiddleware)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        csp = (DOCS_CSP if scope["path"] == "/docs" else CSP).encode()

        started = False

        async def wrapped(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = list(message.get("headers", [])) + [
                    (b"content-security-policy", csp), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"strict-origin-when-cross-origin"), (b"x-frame-options", b"DENY")]
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        except Exception as e:  # a bug or a damaged home: one log line, a JSON 500, never a traceback
            log.error("%s: %s: %s", scope["path"], type(e).__name__, str(e).splitlines()[0][:300] if str(e) else "")
            if not started:
                await _error(500, "internal error (see the server's log)")(scope, receive, wrapped)


# -- helpers that do not need the app -------------------------------------------------------------
def media_file(index: Index, row: dict) -> Path | None:
    """The file the server may serve for an episode: its local input or its verified download, else None.

    Only `Index.media_path` decides (indexed episodes only); no part of a request names a path."""
    return index.media_path(row["id"])


def player(index: Index, row: dict) -> dict:
    """How the page plays an episode: kind youtube|audio|video|none and the src to use.

    A cached or local file is preferred: it is exactly what was transcribed (a podcast re-fetched
    later may carry other ads and so shifted timestamps) and it plays offline."""
    vid = youtube_id(row.get("webpage_url") or "") or youtube_id(row.get("media_url") or "")
    if vid:
        return {"kind": "youtube", "src": f"https://www.youtube-nocookie.com/embed/{vid}"}
    f = media_file(index, row)
    if f is not None:
        ext = f.suffix.lstrip(".").lower()
        return {"kind": "video" if ext in VIDEO_EXTS else "audio", "src": f"/media/{row['id']}"}
    url = row.get("media_url") or ""
    if urlsplit(url).scheme in ("http", "https"):
        ext = urlsplit(url).path.rsplit(".", 1)[-1].lower()
        return {"kind": "video" if ext in VIDEO_EXTS else "audio", "src": url}
    return {"kind": "none", "src": ""}


def highlight(text: str, question: str) -> Markup:
    """`text` escaped, with words starting with the question's terms wrapped in <mark>."""
    terms = highlight_terms(question)
    if not terms:
        return escape(text)
    pat = re.compile(r"\b(?:" + "|".join(re.escape(t) for t in terms) + r")\w*", re.I)
    out, pos = [], 0
    for m in pat.finditer(text):
        out += [escape(text[pos:m.start()]), Markup("<mark>%s</mark>") % m.group(0)]
        pos = m.end()
    out.append(escape(text[pos:]))
    return Markup("").join(out)


def safe_url(url: str | None) -> str:
    """`url` if it is http(s), else "" (a feed could name javascript: or data: links)."""
    return url if url and urlsplit(url).scheme.lower() in ("http", "https") else ""


def _status(e: TalkindexError) -> int:
    if isinstance(e, UsageError):
        return 400
    if isinstance(e, NotFoundError):
        return 404
    if isinstance(e, BusyError):
        return 503
    return 500


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


# -- the app ----------------------------------------------------------------------------------------
def templates() -> Environment:
    """The page templates; autoescaping everywhere (titles, transcripts and queries are untrusted)."""
    env = Environment(loader=FileSystemLoader(str(WEB / "templates")), autoescape=select_autoescape(default=True))
    env.filters["hms"] = lambda s: hms(s or 0)
    env.filters["safe_url"] = safe_url
    return env


def create_app(home: str | Path | None = None, index: Index | None = None,
               allowed_hosts: Iterable[str] = LOOPBACK_HOSTS) -> FastAPI:
    """The ASGI app over `home` (or an already open `index`), answering only requests for `allowed_hosts`."""
    index = index or Index(home)
    lock = threading.Lock()  # ranking one at a time: the Searcher's caches are not documented as thread-safe
    env = templates()
    app = FastAPI(title="talkindex", version="1", docs_url=None, redoc_url=None,
                  description="Read-only search over an index of talks, podcasts and videos.")
    app.state.index = index
    app.add_middleware(SecurityHeaders)
    app.add_middleware(HostGuard, allowed=allowed_hosts)  # added last: runs first

    def page(name: str, code: int = 200, **ctx) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**ctx), status_code=code)

    def ask(req: AskRequest):
        """The query encoders (most of an ask's time, two models) run outside the lock: questions that
        arrive while others are being encoded share one ONNX run (`Index.encode`, `search.batching`),
        which costs far less CPU than a run each, and ranking overlaps the next run."""
        qvec = index.encode(req)
        with lock:
            return index.ask(req, qvec=qvec)

    # errors: JSON under /api, a small page elsewhere; never a traceback
    def wants_json(request: Request) -> bool:
        return request.url.path.startswith(("/api/", "/media/", "/openapi"))

    homes = sorted({str(index.home), str(Path(index.home).resolve())}, key=len, reverse=True)

    def public(e: Exception) -> str:
        """An error's message for the web client: the home's absolute path is the server's business."""
        text = str(e)
        for h in homes:
            text = text.removeprefix(h + ": ").replace(h, "the index")
        return text

    @app.exception_handler(TalkindexError)
    async def _talkindex_error(request: Request, e: TalkindexError):
        status = _status(e)
        if status == 500:
            log.error("%s: %s", request.url.path, e)
        if wants_json(request):
            return _error(status, public(e))
        return page("error.html", status, status=status, message=public(e))

    @app.exception_handler(RequestValidationError)
    async def _bad_params(request: Request, e: RequestValidationError):
        msg = "; ".join(f"{'.'.join(str(p) for p in err['loc'][1:])}: {err['msg']}" for err in e.errors())
        return _error(400, msg or "bad request") if wants_json(request) else page(
            "error.html", 400, status=400, message=msg)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        message = "not found" if e.status_code == 404 else str(e.detail)
        if wants_json(request):
            return _error(e.status_code, message)
        return page("error.html", e.status_code, status=e.status_code, message=message)

    # -- JSON API ------------------------------------------------------------------------------
    errors = {400: {"description": "Bad parameters (empty or too long question, k out of range, bad date)",
                    "content": {"application/json": {"example": {"error": "empty question", "status": 400}}}},
              404: {"description": "Unknown episode or show",
                    "content": {"application/json": {"example": {"error": "unknown episode 'x'", "status": 404}}}}}

    @app.get("/api/ask", summary="Moments that answer a question (same as `talkindex ask --json`)",
             responses=errors)
    def api_ask(q: str = "", k: int = DEFAULT_K, mode: str = DEFAULT_MODE, show: Optional[str] = None,
                since: Optional[str] = None, episode: Optional[str] = None) -> Response:
        req = AskRequest(q, k, mode, show, since, episode)
        return Response(dumps(hits_json(ask(req))), media_type="application/json")

    @app.get("/api/episodes", summary="Episodes (same as `talkindex list --json`)")
    def api_episodes() -> Response:
        return Response(dumps(index.episodes()), media_type="application/json")

    @app.get("/api/episodes/{episode_id}/transcript", summary="A transcript (same as `talkindex transcript`)",
             responses=errors)
    def api_transcript(episode_id: str, format: str = Query(DEFAULT_FORMAT, description=" | ".join(FORMATS)),
                       download: bool = False) -> Response:
        req = TranscriptRequest(episode_id, format)
        body = render(index.transcript(req.episode_id), req.format)
        headers = {"Content-Disposition": f'attachment; filename="{episode_id}.{format}"'} if download else None
        return Response(body, media_type=f"{TRANSCRIPT_TYPES[req.format]}; charset=utf-8", headers=headers)

    # -- media: only files that belong to indexed episodes ----------------------------------------
    @app.get("/media/{episode_id}", include_in_schema=False)
    def media(episode_id: str) -> FileResponse:
        f = media_file(index, index.episode(episode_id))
        if f is None:
            raise NotFoundError(f"episode {episode_id!r} has no local or cached media")
        kind = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
        return FileResponse(f, media_type=kind, headers={"Cache-Control": "private, max-age=3600"})

    # -- pages -----------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home_page(q: str = "", k: int = DEFAULT_K, mode: str = DEFAULT_MODE, show: str = "", since: str = "",
                  episode: str = "") -> HTMLResponse:
        form = {"q": q, "k": k, "mode": mode, "show": show, "since": since, "episode": episode}
        eps = index.episodes()
        hits, error, status = [], "", 200
        if q.strip():
            try:
                hits = ask(AskRequest(q, k, mode, show, since, episode))
            except TalkindexError as e:
                error, status = public(e), _status(e)
        rows = {}
        for h in hits:
            if h.episode_id not in rows:
                rows[h.episode_id] = player(index, index.episode(h.episode_id))
        results = [{"hit": h, "text": highlight(h.text, q), "player": rows[h.episode_id]} for h in hits]
        return page("index.html", status, form=form, results=results, error=error, episodes=eps, modes=MODES,
                    shows=sorted({e["show"] for e in eps if e.get("show")}), searched=bool(q.strip()))

    @app.get("/episodes", response_class=HTMLResponse, include_in_schema=False)
    def episodes_page() -> HTMLResponse:
        return page("episodes.html", episodes=index.episodes())

    @app.get("/episode/{episode_id}", response_class=HTMLResponse, include_in_schema=False)
    def episode_page(episode_id: str, t: Optional[float] = None) -> HTMLResponse:
        t = seconds(t, "t")  # ?t=inf or nan: a 400, not an overflow in the template
        row = index.episode(episode_id)
        try:
            tr = index.transcript(episode_id)
        except NotFoundError:
            tr = None
        lines = []  # the index's sentences under chapter headings, not caption fragments
        for sec in sections(tr) if tr else []:
            for j, s in enumerate(sec.sentences):
                heading = (sec.chapter.title or "(untitled)") if j == 0 and sec.chapter else ""
                lines.append({"i": len(lines), "seg": s, "heading": heading})
        current = max((ln["i"] for ln in lines if ln["seg"].start <= t + 0.05), default=0) if t is not None else -1
        return page("episode.html", ep=row, player=player(index, row), lines=lines, current=current,
                    t=t if t is not None else "", transcript=tr, formats=FORMATS,
                    outline=sorted(tr.chapters, key=lambda c: c.start) if tr else [])

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> HTMLResponse:
        return page("docs.html")

    swagger = _swagger_dir()
    if swagger is not None:
        app.mount("/static/swagger", StaticFiles(directory=str(swagger)), name="swagger")
    app.mount("/static", StaticFiles(directory=str(WEB / "static")), name="static")
    return app


def _swagger_dir() -> Path | None:
    """Swagger UI's files as shipped in the fastapi-offline wheel (no CDN at run time)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("fastapi_offline")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "static"
    return d if (d / "swagger-ui-bundle.js").is_file() else None
