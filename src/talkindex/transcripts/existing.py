"""Transcripts that already exist come first: publisher transcripts, creator captions, auto-captions.

A feed's `<podcast:transcript>` or a platform's captions are usually better than tiny.en ASR and cost
nothing to produce. This module turns their bytes (WebVTT, SRT, Podcasting 2.0 JSON, YouTube json3)
into the same `Transcript` records ASR gives, so chunking and search need not care where text came from.

Captions carry cue times, not word times: each cue's words get times spread over the cue by character
length (`word_timing="estimated"`), or anchored at inline `<00:00:01.240>` tags where a cue has them.
Each cue keeps its own times (cues may overlap: crosstalk is legal). Rolling captions (each cue
repeating the previous line) are de-duplicated so no word appears twice, but only where the repeat
comes from the same speaker in a cue that starts where the previous one ends and, unless the file is
YouTube-style (inline timestamps), repeats most of the previous line and adds new words: an echo in
dialogue, a line said twice or another speaker's "Yeah." is speech. HTML and plain-text transcripts
carry no times and are refused: a hit must point at a moment. Every failure is a `TranscriptUnusable`
with a one-line reason; no parser exception escapes. Chapters and language checks live in
`talkindex.transcripts.chapters` / `talkindex.transcripts.language`; bytes → text (BOMs, charsets) in
`talkindex.transcripts.decode`.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import SourceError, UsageError
from ..records import TRANSCRIPT_SOURCES, Episode, Segment, Transcript, TranscriptRef, Word
from ..requests import CAPTION_POLICIES
from ..textsafe import line
from .decode import BinaryBody, decode_body
from .language import guess_language, language_mismatch, primary

log = logging.getLogger("talkindex")

POLICIES = CAPTION_POLICIES  # --captions: which existing transcripts come before ASR
MAX_BYTES = 32 * 2**20  # a transcript larger than this is not a transcript
MAX_CUE_S = 300.0  # one cue longer than this is not timed finely enough to point at a moment
# Per episode: an existing transcript beyond these is indexed up to them, with one note (20,000 cues, or
# 200,000 words ≈ 20 h of speech, cost minutes to index; 200,000 one-word cues would cost hours).
MAX_SEGMENTS = 20_000
MAX_WORDS = 200_000
MAX_TRIES = 4  # offered transcripts fetched per episode, best first (a feed may list hundreds)

MIME_FORMATS = {
    "text/vtt": "vtt", "text/webvtt": "vtt",
    "application/x-subrip": "srt", "application/srt": "srt", "text/srt": "srt", "application/x-srt": "srt",
    "text/x-srt": "srt", "application/json": "json", "text/json": "json",
    "text/html": "html", "application/xhtml+xml": "html", "text/plain": "text",
}
EXT_FORMATS = {"vtt": "vtt", "srt": "srt", "json": "json", "json3": "json", "html": "html", "htm": "html",
               "txt": "text"}
FORMAT_NAMES = {"vtt": "WebVTT", "srt": "SRT", "json": "JSON", "html": "HTML", "text": "plain text", "ttml": "TTML"}

_SRT_START = re.compile(r"\s*\d+[ \t]*\r?\n[ \t]*\d+:\d{2}:\d{2}[,.]\d+[ \t]*-->")
_TAG_OR_TEXT = re.compile(r"<([^>]*)(?:>|$)|([^<]+)")  # an unclosed tag runs to the line's end (WebVTT)
_TIMESTAMP = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})")
_VOICE = re.compile(r"v(?:\.[^\s>]*)?(?:\s+(.*))?", re.S)
# SSA/ASS override blocks ({\an8}, {\i1}), MicroDVD control codes ({Y:i}, {c:$0000ff}), SSA \h \N \n
_CODES = re.compile(r"\{\\[^{}]*\}|\{[YyCcFfSsPH]:[^{}]*\}|\\[Nnh]")
_TIMING_LINE = re.compile(r"[ \t]*(?:\d+:)?\d{1,2}:\d{2}[.,]\d+[ \t]*-->")
# A Podcasting 2.0 SRT speaker label: "Travis: …", "Speaker 2: …" at the start of a cue (plain text)
_SRT_SPEAKER = re.compile(r"((?:[A-Z][\w'.-]*)(?: (?:[A-Z][\w'.-]*|\d+)){0,3}):[ \t]+(?=\S)")
ROLLUP_GAP_S = 0.0015  # a roll-up cue starts where (or before) the previous one ends; subtitles leave gaps
_KEY = re.compile(r"[^\w']+")
_INLINE_TIME = re.compile(r"<(?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3}>")


class TranscriptUnusable(Exception):
    """A transcript (or chapters document) that cannot be used; `reason` is one line for the user."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass
class _Cue:
    start: float
    end: float
    lines: list[str]  # raw cue text lines, tags kept


@dataclass
class _Tok:
    text: str
    speaker: str
    at: float | None = None  # an inline timestamp right before this word


# ---------------------------------------------------------------------------------------------- parsing


def detect_format(text: str, content_type: str = "", url: str = "") -> str:
    """vtt | srt | json | html | text | "" — the body wins over a wrong or missing declared type."""
    s = text.lstrip("\ufeff \t\r\n")
    if s.startswith("WEBVTT"):
        return "vtt"
    if _SRT_START.match(s):
        return "srt"
    if s[:1] in ("{", "["):
        try:
            json.loads(s)
            return "json"
        except (ValueError, RecursionError):
            pass
    declared = MIME_FORMATS.get(content_type.split(";")[0].strip().lower(), "")
    if declared in ("vtt", "srt", "json"):
        return declared
    if s[:1] == "<":
        return "ttml" if re.match(r"<\?xml[^>]*>\s*<(\w+:)?tt\b|<(\w+:)?tt\b", s) else "html"
    ext = urlsplit(url).path.rsplit(".", 1)[-1].lower() if "." in urlsplit(url).path else ""
    return declared or EXT_FORMATS.get(ext, "") or ("text" if s else "")


def parse_transcript(body: bytes, content_type: str = "", *, url: str = "", source: str = "publisher",
                     episode_id: str = "", language: str = "") -> Transcript:
    """Bytes of a transcript → `Transcript` with estimated word times, or `TranscriptUnusable`."""
    if not body or not body.strip():
        raise TranscriptUnusable("empty transcript")
    if len(body) > MAX_BYTES:
        raise TranscriptUnusable(f"transcript is larger than {MAX_BYTES // 2**20} MiB")
    try:
        text, decode_note = decode_body(body, content_type)
    except BinaryBody as e:
        raise TranscriptUnusable(str(e)) from None
    fmt = detect_format(text, content_type, url)
    try:
        if fmt == "vtt":
            cues, notes = _vtt_cues(text), []
        elif fmt == "srt":
            cues, notes = _srt_cues(text)
        elif fmt == "json":
            segments, notes = _json_segments(text)
            cues = None
        elif fmt in ("html", "text"):
            raise TranscriptUnusable(f"{FORMAT_NAMES[fmt]} transcript has no timings (not timed enough for moments)")
        elif fmt == "ttml":
            raise TranscriptUnusable("TTML captions are not supported (WebVTT, SRT and JSON are)")
        else:
            raise TranscriptUnusable(f"unsupported transcript type {content_type or 'unknown'!r}")
        if cues is not None:
            segments, dropped = _segments_from_cues(cues)
            if dropped:
                notes.append(f"dropped {dropped} repeated caption words (rolling captions)")
    except TranscriptUnusable:
        raise
    except RecursionError:
        raise TranscriptUnusable(f"malformed {FORMAT_NAMES[fmt]} (nested too deeply)") from None
    except Exception as e:  # noqa: BLE001 - a library's parse error is a reason, never a crash
        reason = f"malformed {FORMAT_NAMES.get(fmt, fmt)} ({type(e).__name__}: {line(str(e), 120)})"
        raise TranscriptUnusable(reason) from None
    if not segments:
        raise TranscriptUnusable(f"{FORMAT_NAMES[fmt]} transcript has no timed text")
    if decode_note:
        notes.insert(0, decode_note)
    return Transcript(
        episode_id=episode_id, language=language, duration=max(s.end for s in segments), segments=segments,
        model=url, params={"format": fmt, "content_type": content_type}, source=source, source_url=url,
        word_timing="estimated", notes=notes,
    )




def _vtt_cues(text: str) -> list[_Cue]:
    import webvtt

    if not text.lstrip("\ufeff \t\r\n").startswith("WEBVTT"):
        raise TranscriptUnusable("not WebVTT (no WEBVTT header)")
    vtt = webvtt.WebVTT.from_string(_separate_cues(text))
    return [_Cue(c.start_time.in_milliseconds() / 1000, c.end_time.in_milliseconds() / 1000,
                 [_CODES.sub(_code, ln) for ln in c.lines]) for c in vtt.captions]


def _code(m: re.Match) -> str:
    return " " if m.group(0) in ("\\N", "\\n", "\\h") else ""


def _separate_cues(text: str) -> str:
    """Put the blank line back where a file forgot it before a cue, so a cue number is not cue text.

    A timing line right after text starts a new cue; a number just before it is that cue's id."""
    out: list[str] = []
    for ln in re.split(r"\r\n|\r|\n", text):  # WebVTT's line ends only (not U+2028 inside cue text)
        if _TIMING_LINE.match(ln) and len(out) >= 2 and out[-1].strip() and out[-2].strip():
            if out[-1].strip().isdigit():
                out.insert(len(out) - 1, "")
            else:
                out.append("")
        out.append(ln)
    return "\n".join(out)


def _srt_cues(text: str) -> tuple[list[_Cue], list[str]]:
    import srt

    notes: list[str] = []
    try:
        subs = list(srt.parse(text))
    except srt.SRTParseError as e:
        quiet = logging.getLogger("srt")  # it logs a warning per garbled block; we note it once instead
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            subs = list(srt.parse(text, ignore_errors=True))
        finally:
            quiet.setLevel(level)
        if not subs:
            raise TranscriptUnusable(f"malformed SRT ({line(str(e), 120)})") from None
        notes.append("skipped garbled SRT blocks")
    cues = []
    speaker = ""  # Podcasting 2.0 SRT: "Name: " starts a card when the speaker changes, and holds after it
    for s in subs:
        content = html.escape(html.unescape(_CODES.sub(_code, s.content)), quote=False)
        content = re.sub(r"&lt;(/?[a-zA-Z][^&]*?)&gt;", r"<\1>", content)  # keep <i>/<font> tags to strip
        label = _SRT_SPEAKER.match(content)
        if label:
            speaker, content = label.group(1), content[label.end():]
        voice = f"<v {speaker}>" if speaker else ""
        cues.append(_Cue(s.start.total_seconds(), s.end.total_seconds(),
                         [voice + ln for ln in content.split("\n")]))
    return cues, notes


def _json_segments(text: str) -> tuple[list[Segment], list[str]]:
    d = json.loads(text)
    if isinstance(d, dict) and isinstance(d.get("events"), list):
        return _json3_segments(d["events"]), []
    if not isinstance(d, dict) or not isinstance(d.get("segments"), list):
        raise TranscriptUnusable("JSON is not a Podcasting 2.0 transcript (no segments list)")
    groups: list[tuple[list[Word], str]] = []
    for s in d["segments"]:
        if not isinstance(s, dict) or not isinstance(s.get("body"), str):
            continue
        start, end = as_number(s.get("startTime")), as_number(s.get("endTime"))
        toks = s["body"].split()
        if start is None or not toks:
            continue
        end = max(end if end is not None else start, start)  # each segment keeps its own times
        speaker = " ".join(s["speaker"].split()) if isinstance(s.get("speaker"), str) else ""
        groups.append((_spread([_Tok(t, speaker) for t in toks], start, end), speaker))
    groups.sort(key=lambda g: g[0][0].start)
    if not groups:
        return [], []
    sizes = sorted(len(w) for w, _ in groups)
    if sizes[len(sizes) // 2] >= 3:  # already sentence-sized: one segment per JSON segment
        return [_segment(w, spk) for w, spk in groups], []
    words = [w for ws, _ in groups for w in ws]
    speakers = [spk for ws, spk in groups for _ in ws]
    return _regroup(words, speakers), ["merged single-word JSON segments into sentences"]


def _regroup(words: list[Word], speakers: list[str], max_words: int = 40, max_gap: float = 2.0) -> list[Segment]:
    """Word-sized segments → sentence-sized ones (split at sentence ends, speaker changes and pauses)."""
    segs: list[Segment] = []
    cur: list[Word] = []
    for i, w in enumerate(words):
        if cur and (speakers[i] != speakers[i - 1] or w.start - cur[-1].end > max_gap or len(cur) >= max_words):
            segs.append(_segment(cur, speakers[i - 1]))
            cur = []
        cur.append(w)
        if w.text.rstrip().rstrip("\"')]»”’").endswith((".", "?", "!", "…")):
            segs.append(_segment(cur, speakers[i]))
            cur = []
    if cur:
        segs.append(_segment(cur, speakers[-1]))
    return segs


def _json3_segments(events: list) -> list[Segment]:
    """YouTube json3 captions: events with segs (`utf8`, `tOffsetMs`), as cues with inline times."""
    cues = []
    for ev in events:
        if not isinstance(ev, dict) or not isinstance(ev.get("segs"), list):
            continue
        t0, dur = as_number(ev.get("tStartMs")), as_number(ev.get("dDurationMs")) or 0.0
        if t0 is None:
            continue
        raw = ""
        for seg in ev["segs"]:
            if isinstance(seg, dict) and isinstance(seg.get("utf8"), str):
                off = as_number(seg.get("tOffsetMs"))
                if off:
                    raw += f"<{_hms((t0 + off) / 1000)}>"
                raw += html.escape(seg["utf8"], quote=False)
        cues.append(_Cue(t0 / 1000, (t0 + dur) / 1000, raw.split("\n")))
    return _segments_from_cues(cues)[0]


def as_number(v) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) and f >= 0 else None


def _hms(t: float) -> str:
    ms = round(t * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


# ------------------------------------------------------------------------------------- cues → segments


def _segments_from_cues(cues: list[_Cue]) -> tuple[list[Segment], int]:
    """Cues → segments of words, in start order, each inside its own cue's times; roll-up repeats dropped."""
    cues = sorted((c for c in cues if math.isfinite(c.start) and math.isfinite(c.end)), key=lambda c: c.start)
    for c in cues:
        if c.end - c.start > MAX_CUE_S and sum(len(ln.split()) for ln in c.lines) > 50:
            raise TranscriptUnusable(f"a cue at {c.start:.0f} s lasts {c.end - c.start:.0f} s "
                                     "(not timed finely enough for moments)")
    youtube = any(_INLINE_TIME.search(ln) for c in cues for ln in c.lines)  # roll-up auto-captions
    segments: list[Segment] = []
    prev: _Shown | None = None  # what the previous cue with words showed
    dropped = 0
    for cue in cues:
        lines: list[tuple[list[_Tok], list[str], int]] = []
        speaker = ""
        for raw in cue.lines:
            toks, speaker = _line_tokens(raw, speaker, cue.start, cue.end)
            keys = [_key(t.text) or t.text for t in toks]
            if not keys:
                continue
            skip = 0
            if (prev is not None and toks[0].speaker == prev.speaker and cue.start - prev.end <= ROLLUP_GAP_S
                    and (youtube or not lines)):  # roll-up repeats the previous rows at the top of a cue
                skip = _overlap(prev.last_line, prev.tail, keys, prev.ended, strict=not youtube)
            lines.append((toks, keys, skip))
        if not youtube and all(skip == len(keys) for _, keys, skip in lines):
            lines = [(toks, keys, 0) for toks, keys, _ in lines]  # roll-up adds words: a cue all repeat is speech
        kept: list[_Tok] = []
        shown = _Shown([], [], False, "", cue.end)
        for toks, keys, skip in lines:
            dropped += skip
            kept += toks[skip:]
            shown.tail = (shown.tail + keys[skip:])[-64:]
            shown.last_line = keys
            shown.ended = toks[-1].text.rstrip("\"')]»”’").endswith((".", "?", "!", "…"))
            shown.speaker = toks[-1].speaker
        if shown.last_line:
            shown.tail = ((prev.tail if prev else []) + shown.tail)[-64:]
            prev = shown
        if not kept:
            continue
        words = _spread(kept, cue.start, max(cue.end, cue.start))
        i = 0
        while i < len(kept):  # one segment per run of one speaker
            j = i
            while j < len(kept) and kept[j].speaker == kept[i].speaker:
                j += 1
            segments.append(_segment(words[i:j], kept[i].speaker))
            i = j
    return segments, dropped


@dataclass
class _Shown:
    """The words a cue put on screen: what the next cue may repeat if it rolls up."""

    last_line: list[str]
    tail: list[str]
    ended: bool  # its last line ended a sentence
    speaker: str  # of its last word
    end: float


def _line_tokens(raw: str, speaker: str, lo: float, hi: float) -> tuple[list[_Tok], str]:
    """One cue line → words, following `<v Name>` voice spans and inline timestamps; other tags dropped."""
    toks: list[_Tok] = []
    buf: list[str] = []
    buf_speaker, buf_at, pending = speaker, None, None

    def end_word() -> None:
        if buf:
            toks.append(_Tok("".join(buf), buf_speaker, buf_at))
            buf.clear()

    for m in _TAG_OR_TEXT.finditer(raw):
        tag = m.group(1)
        if tag is not None:
            ts = _TIMESTAMP.fullmatch(tag.strip())
            voice = _VOICE.fullmatch(tag.strip())
            if ts:
                h, mi, s, ms = ts.groups()
                t = int(h or 0) * 3600 + int(mi) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000
                pending = min(max(t, lo), hi)
            elif voice:
                end_word()
                speaker = " ".join(html.unescape(voice.group(1) or "").split())  # annotations hold &amp; too
            elif tag.strip() == "/v":
                end_word()
                speaker = ""
            continue
        for piece in re.split(r"(\s+)", html.unescape(m.group(2))):
            if not piece:
                continue
            if piece.isspace():
                end_word()
                continue
            if not buf:
                buf_speaker, buf_at, pending = speaker, pending, None
            buf.append(piece)
    end_word()
    return toks, speaker


def _key(word: str) -> str:
    return _KEY.sub("", word.lower())


def _overlap(last_line: list[str], tail: list[str], keys: list[str], ended: bool = False,
             strict: bool = False) -> int:
    """How many leading words of a caption line repeat what the previous cue showed (rolling captions).

    A line equal to the previous one, or growing it (roll-up), repeats it; so does a run of 3+ words
    ending the previous cue. A one-word previous line that ended a sentence ("So.") is not grown.
    `strict` (no inline timestamps): the run must be most of the previous line, so an echo of the
    last few words ("… si eras mujer." / "Si eras mujer, en 1928") is kept as speech; the caller also
    keeps a cue that would lose every word ("A la fourgonnette!" twice is said twice).
    """
    if keys == last_line:
        return len(keys)
    if last_line and keys[: len(last_line)] == last_line and (len(last_line) >= 2 or not ended):  # roll-up
        return len(last_line)
    for k in range(min(len(tail), len(keys)), 2, -1):  # a repeated run of 3+ words across cues
        if tail[-k:] == keys[:k] and (not strict or 2 * k > len(last_line)):
            return k
    return 0


def _spread(toks: list[_Tok], start: float, end: float) -> list[Word]:
    """Word times over [start, end] by character length, anchored at inline timestamps (estimated)."""
    anchors = [start] + [min(max(t.at, start), end) if t.at is not None else None for t in toks[1:]]
    if toks and toks[0].at is not None:
        anchors[0] = min(max(toks[0].at, start), end)
    for i in range(1, len(anchors)):  # anchors never go backwards
        if anchors[i] is not None and anchors[i] < max(a for a in anchors[:i] if a is not None):
            anchors[i] = None
    words: list[Word] = []
    i = 0
    while i < len(toks):
        j = i + 1
        while j < len(toks) and anchors[j] is None:
            j += 1
        lo = anchors[i] if anchors[i] is not None else start
        hi = anchors[j] if j < len(toks) else end
        total = sum(len(t.text) + 1 for t in toks[i:j])
        acc = 0
        for t in toks[i:j]:
            a = lo + (hi - lo) * acc / total
            acc += len(t.text) + 1
            words.append(Word(round(a, 3), round(lo + (hi - lo) * acc / total, 3), " " + t.text))
        i = j
    for a, b in zip(words, words[1:]):  # rounding must not reorder
        b.start = max(b.start, a.end)
        b.end = max(b.end, b.start)
    return words


def _segment(words: list[Word], speaker: str) -> Segment:
    return Segment(start=words[0].start, end=words[-1].end, text="".join(w.text for w in words),
                   words=words, speaker=speaker.strip())


# ------------------------------------------------------------------------------------ pipeline entry


def _type_rank(ref: TranscriptRef) -> int:
    fmt = MIME_FORMATS.get(ref.type.split(";")[0].strip().lower(), "") or detect_format("", "", ref.url)
    return 0 if fmt in ("vtt", "srt", "json") else 2 if fmt in ("html", "text") else 1


def candidates(episode: Episode, policy: str) -> list[TranscriptRef]:
    """The refs `policy` allows, publisher first, then timed formats before HTML / plain text."""
    if policy not in POLICIES:
        raise UsageError(f"unknown transcript policy {policy!r} (use never, prefer or any)")
    refs = [r for r in episode.transcripts if r.source in POLICIES[policy] and r.url]
    return sorted(refs, key=lambda r: (TRANSCRIPT_SOURCES.index(r.source), _type_rank(r)))


def _coverage(t: Transcript, episode: Episode) -> str | None:
    """A transcript of a trailer (or of another episode) is not this episode's transcript."""
    if not episode.duration or episode.duration <= 0:
        return None
    if t.duration < 0.5 * episode.duration:
        return f"transcript covers only {t.duration:.0f} s of the episode's {episode.duration:.0f} s"
    if t.duration > 1.25 * episode.duration + 120:
        return f"transcript runs to {t.duration:.0f} s, the episode is {episode.duration:.0f} s long"
    return None


def fetch_existing(episode: Episode, policy: str, fetch: Callable[[str], tuple[bytes, str]],
                   otherwise: str = "transcribing instead") -> tuple[Transcript | None, list[str]]:
    """The first usable existing transcript for `episode` (or None → `otherwise`) and warning lines.

    `fetch(url)` returns (body, content_type) and raises SourceError on network failure. Chapters are
    left empty (see `fetch_chapters`); duration is the last cue's end.
    """
    failures: list[tuple[str, str]] = []
    refs = candidates(episode, policy)
    for ref in refs[:MAX_TRIES]:
        try:
            body, ctype = fetch(ref.url)
            t = parse_transcript(body, ctype or ref.type, url=ref.url, source=ref.source, episode_id=episode.id)
            sample = " ".join(w.text for w in t.words[:3000])
            reason = language_mismatch(sample, ref.language, episode.language) or _coverage(t, episode)
            if reason:
                raise TranscriptUnusable(reason)
        except SourceError as e:
            failures.append((ref.url, e.reason))
            continue
        except OSError as e:
            failures.append((ref.url, line(str(e) or type(e).__name__, 120)))
            continue
        except TranscriptUnusable as e:
            failures.append((ref.url, e.reason))
            continue
        t.language = guess_language(sample) or primary(ref.language) or primary(episode.language)
        t.params["language_declared"] = ref.language
        cap(t)
        log.info("%s: using %s transcript %s", episode.id, ref.source, ref.url)
        return t, [f"transcript {u}: {r}; used {ref.url} instead" for u, r in failures]
    more = len(refs) - MAX_TRIES
    untried = [f"{more} more offered transcript(s) not tried (at most {MAX_TRIES} per episode)"] if more > 0 else []
    return None, [f"transcript {u}: {r}; {otherwise}" for u, r in failures] + untried


def cap(t: Transcript) -> None:
    """Keep at most MAX_SEGMENTS cues and MAX_WORDS words of `t` (in time order), with one note saying so."""
    n_seg = n_words = 0
    for i, seg in enumerate(t.segments):
        n_words += len(seg.words)
        if i >= MAX_SEGMENTS or n_words > MAX_WORDS:
            break
        n_seg = i + 1
    else:
        return
    total = len(t.segments)
    kept = t.segments[:n_seg]
    end = kept[-1].end if kept else 0.0
    t.notes.append(f"transcript too large ({total} cues, {len(t.words)} words): indexed its first {n_seg} cues "
                   f"(to {_hms(end)}; at most {MAX_SEGMENTS} cues and {MAX_WORDS} words per episode)")
    t.segments = kept


# ------------------------------------------------------------------------------------ yt-dlp captions

CAPTION_EXTS = {"vtt": "text/vtt", "srt": "application/x-subrip", "json3": "application/json"}
_NOT_CAPTIONS = ("live_chat", "rechat", "danmaku", "comments")


def caption_refs(info: dict, language: str | None, policy: str = "prefer") -> list[TranscriptRef]:
    """Caption tracks in yt-dlp's info dict worth trying, best first (one format per language).

    Creator `subtitles` → source "captions"; `automatic_captions` → "auto-captions", only for policy
    "any", and only YouTube's original-language track (`xx-orig`) when there is one, never a machine
    translation. Languages: the episode's (primary subtag), else English, else the first listed.
    Formats: vtt > srt > json3 > others (others are refused later with a reason).
    """
    if policy not in POLICIES:
        raise UsageError(f"unknown transcript policy {policy!r} (use never, prefer or any)")
    if not isinstance(info, dict):
        return []
    refs = []
    if "captions" in POLICIES[policy]:
        refs += _pick(info.get("subtitles"), primary(language), "captions")
    if "auto-captions" in POLICIES[policy]:
        refs += _pick(info.get("automatic_captions"), primary(language), "auto-captions")
    return refs


def _pick(tracks, want: str, source: str) -> list[TranscriptRef]:
    if not isinstance(tracks, dict):
        return []
    langs = [k for k, v in tracks.items() if isinstance(v, list) and str(k).lower() not in _NOT_CAPTIONS]
    if source == "auto-captions":
        orig = [k for k in langs if str(k).endswith("-orig")]
        if orig:  # YouTube: the spoken language is known; every other automatic track is a translation
            langs = orig[:1] if not want or primary(orig[0]) == want else []
    pref = want or "en"
    chosen = sorted((k for k in langs if primary(k) == pref), key=lambda k: str(k).lower() != pref)
    if not want and not chosen:
        chosen = langs[:1]
    chosen += [k for k in langs if primary(k) in ("", "und") and k not in chosen]  # unlabelled: text decides
    refs = []
    for lang in chosen[:3]:
        best = _best_format(tracks[lang])
        if best:
            lang_tag = str(lang or "").removesuffix("-orig")
            refs.append(TranscriptRef(url=best[0], type=best[1], language=lang_tag, rel="captions", source=source))
    return refs


def _best_format(entries: list) -> tuple[str, str] | None:
    order = list(CAPTION_EXTS)
    ranked = []
    for i, e in enumerate(entries):
        url = e.get("url") if isinstance(e, dict) else None
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            continue
        ext = str(e.get("ext") or "").lower() or urlsplit(url).path.rsplit(".", 1)[-1].lower()
        ranked.append((order.index(ext) if ext in order else len(order), i, url, CAPTION_EXTS.get(ext, "")))
    if not ranked:
        return None
    _, _, url, mime = min(ranked)
    return url, mime
