"""Make remote strings safe to print on a terminal.

Why: titles, show names, transcript text, URLs and error reasons come from feeds and pages anyone
can write. Printed raw, ESC/OSC sequences recolour or retitle the terminal, plant clickable links or
rewrite earlier lines (CR, cursor movement), BEL rings, and bidi overrides (U+202E) make
"evil\u202egnp.exe" read as something else. `term` escapes all of them visibly (\\x1b, \\u202e) so a
hostile title is both harmless and recognisable. JSON output needs none of this (json.dumps escapes).
"""

from __future__ import annotations

import logging
import re
import unicodedata

# C0 (incl. TAB/LF/CR/ESC/BEL), DEL, C1, bidi embeddings/overrides/isolates/marks, line/paragraph separators
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}\u2028\u2029\ufeff\ufff9-\ufffb]")
_PCT_CTRL = re.compile(r"%(?:[01][0-9A-Fa-f]|7[Ff])")  # %0A, %1B, %7F …: must never be decoded for display


def _escape(c: str) -> str:
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"


def _needs_escape(c: str) -> bool:
    return bool(_UNSAFE.match(c)) or unicodedata.category(c) in ("Cf", "Cs", "Co", "Cn") and not c.isprintable()


def term(s: object) -> str:
    """`s` with every control, format (Cf), bidi and separator character escaped as \\xNN / \\uNNNN."""
    text = str(s)
    if text.isprintable() and not _UNSAFE.search(text):
        return text
    return "".join(_escape(c) if _needs_escape(c) else c for c in text)


def line(s: object, width: int | None = None) -> str:
    """One display line: runs of whitespace (newlines included) become one space, the rest as `term`,
    then clipped to `width` characters with "…"."""
    text = term(" ".join(str(s).split()))  # str.split also splits on \x1c-\x1f, \x85, U+2028/9
    return clip(text, width) if width else text


def clip(s: str, width: int = 80) -> str:
    """At most `width` characters; a clipped string ends with "…" (never inside an escape sequence)."""
    if len(s) <= width:
        return s
    cut = s[: max(1, width - 1)]
    m = re.search(r"\\(?:x[0-9a-f]{0,1}|u[0-9a-f]{0,3}|[xu]?)$", cut)
    if m:
        cut = cut[: m.start()]
    return cut + "…"


def name(s: object, width: int | None = None) -> str:
    """A name derived from a URL (file name, path): percent-encoded controls stay encoded, then `line`."""
    return line(str(s), width)


def cell(s: object, width: int = 60):
    """A rich Text for a table cell (`list`): escaped, one line, clipped, and never read as rich markup."""
    from rich.text import Text

    return Text(line("" if s is None else s, width))


def unquote_name(s: str) -> str:
    """urllib.parse.unquote for display names, except that %00-%1F and %7F are left encoded."""
    from urllib.parse import unquote

    parts = _PCT_CTRL.split(s)
    keep = _PCT_CTRL.findall(s)
    out = [unquote(parts[0])]
    for enc, rest in zip(keep, parts[1:]):
        out.append(enc + unquote(rest))
    return "".join(out)


class SafeFormatter(logging.Formatter):
    """A logging formatter whose lines carry no terminal controls (log messages quote remote strings)."""

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(term(part) for part in super().format(record).split("\n"))
