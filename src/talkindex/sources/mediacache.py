"""Verified media files in the download cache (used by `sources.download`).

Why: a server that answers an enclosure URL with an HTML error page (status 200) or closes early would
otherwise leave "ep.mp3" in the cache, to be reused forever. A download lands under a temp name, is
checked (ffprobe finds an audio stream and a duration), and only then renamed into the cache next to a
"<file>.ok" record of its size and duration. A cached file whose record is missing or does not match
(written by an older version, or a crash) is probed again: adopted when it is media, deleted otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path

from talkindex.fsutil import open_new
from talkindex.sources.feeds import MEDIA_EXTS
from talkindex.textsafe import line

log = logging.getLogger("talkindex")

# formats that name other files or URLs, or are not recordings: never accepted as downloaded media
_REFERENCING_FORMATS = ("hls", "concat", "m3u", "playlist", "tty", "image2", "lavfi", "ffmetadata", "dash")
_MAGIC = (b"ID3", b"OggS", b"fLaC", b"\x1aE\xdf\xa3")


def ffprobe(p: Path) -> tuple[dict[str, str], float | None]:
    """Tags (lower-cased keys) and duration of a local file; empty when ffprobe is missing or fails."""
    cmd = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "file:" + str(p)]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=15, check=True, stdin=subprocess.DEVNULL)
        fmt = json.loads(out.stdout).get("format", {})
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        log.debug("ffprobe %s: %s", p, e)
        return {}, None
    tags = {str(k).lower(): str(v).strip() for k, v in (fmt.get("tags") or {}).items()}
    try:
        duration = float(fmt["duration"])
    except (KeyError, TypeError, ValueError):
        duration = None
    return tags, duration


def verify(path: Path) -> dict:
    """{'size', 'duration', 'format'} when `path` is audio/video; ValueError(short reason) otherwise.

    ffprobe may read only the local file (-protocol_whitelist file): a downloaded playlist must not make it
    (or the decoder later) fetch URLs or read other local files, so referencing formats are refused."""
    size = path.stat().st_size
    if size == 0:
        raise ValueError("empty file")
    cmd = ["ffprobe", "-v", "error", "-protocol_whitelist", "file", "-print_format", "json",
           "-show_format", "-show_streams", "file:" + str(path)]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return _verify_magic(path, size)
    except (OSError, subprocess.SubprocessError) as e:
        raise ValueError(f"ffprobe failed: {e}") from None
    if out.returncode != 0:
        lines = out.stderr.decode("utf-8", "replace").strip().splitlines()
        msg = lines[-1].replace("file:" + str(path), "").replace(str(path), "").lstrip(": ") if lines else ""
        raise ValueError(line(f"ffprobe: {msg or 'cannot read it'}", 160))
    try:
        info = json.loads(out.stdout)
    except ValueError:
        raise ValueError("ffprobe output unreadable") from None
    fmt = info.get("format") or {}
    name = str(fmt.get("format_name") or "")
    if any(p in name for p in _REFERENCING_FORMATS):
        raise ValueError(f"a {line(name, 40)} file, not a recording")
    if not any(s.get("codec_type") == "audio" for s in info.get("streams") or []):
        raise ValueError("no audio stream")
    try:
        duration = float(fmt.get("duration"))
    except (TypeError, ValueError):
        duration = 0.0
    if not duration > 0:
        raise ValueError("no duration")
    return {"size": size, "duration": duration, "format": name}


def _verify_magic(path: Path, size: int) -> dict:
    """Without ffprobe: accept only well-known media signatures."""
    with open(path, "rb") as f:
        head = f.read(64)
    ok = (head.startswith(_MAGIC) or head[4:8] == b"ftyp" or (head[:4] == b"RIFF" and head[8:12] == b"WAVE")
          or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0))
    if not ok:
        raise ValueError("unrecognised content (ffprobe is not installed to check it)")
    return {"size": size, "duration": None, "format": ""}


def ok_path(media: Path) -> Path:
    return media.with_name(media.name + ".ok")


def write_ok(media: Path, info: dict, url: str) -> None:
    """Record that `media` was verified (atomically: a crash leaves no half record)."""
    rec = {**info, "url": url, "verified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp = media.with_name(media.name + ".ok.tmp")
    with open_new(tmp, "w") as f:
        f.write(json.dumps(rec))
    os.replace(tmp, ok_path(media))


def read_ok(media: Path) -> dict | None:
    try:
        rec = json.loads(ok_path(media).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def discard(cache_dir: Path, name: str) -> None:
    """Delete every cached file of episode `name` (media and records)."""
    for f in cache_dir.glob(f"{name}.*"):
        if f.is_file():
            f.unlink(missing_ok=True)


def cached(cache_dir: Path, name: str) -> Path | None:
    """A cached media file whose .ok record matches it; unrecorded files are probed, adopted or deleted."""
    for f in sorted(cache_dir.glob(f"{name}.*")):
        ext = f.name[len(name) + 1:]
        if not ((ext in MEDIA_EXTS or ext == "media") and f.is_file()) or f.is_symlink():
            continue
        rec = read_ok(f)
        if rec and rec.get("size") == f.stat().st_size:
            return f
        try:
            info = verify(f)
        except (ValueError, OSError) as e:
            log.info("cached %s is not usable media (%s): downloading it again", f.name, e)
            f.unlink(missing_ok=True)
            ok_path(f).unlink(missing_ok=True)
            continue
        write_ok(f, info, rec.get("url", "") if rec else "")
        return f
    return None


def media_duration(path: Path) -> float | None:
    """Duration in seconds (None when unknown): the cache record first, else the container as the
    decoder (PyAV) reads it. The one duration probe: ingest's --max-duration check and ASR windowing."""
    rec = read_ok(Path(path))
    if rec and isinstance(rec.get("duration"), (int, float)):
        return float(rec["duration"])
    import av

    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as c:
            if c.duration:
                return c.duration / 1e6
            streams = [s for s in c.streams.audio if s.duration and s.time_base]
            return float(streams[0].duration * streams[0].time_base) if streams else None
    except Exception:  # noqa: BLE001 - unknown: transcribe the whole file, faster-whisper reports errors
        return None
