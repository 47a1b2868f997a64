"""Bytes of a fetched text document → str: BOMs, the declared charset, a validated guess, NULs removed.

Transcripts and chapters come from servers that mislabel encodings (a UTF-8 file served as
`charset=iso-8859-1`, a GB2312 SRT with no charset at all). The order below follows the Encoding
Standard's "BOM wins" and falls back to a guess only when the bytes are neither valid UTF-8 nor valid
in the declared charset; a guess is reported so the user can see the text may be wrong.
"""

from __future__ import annotations

import codecs
import re


class BinaryBody(ValueError):
    """The bytes are binary data (mostly NULs), not text."""


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))  # UTF-32 LE before UTF-16 LE
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.I)


def decode_text(body: bytes, content_type: str) -> str:
    return decode_body(body, content_type)[0]


def _codec(name: str) -> str | None:
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):
        return None


def decode_body(body: bytes, content_type: str) -> tuple[str, str | None]:
    """Bytes → text, and a note when the encoding had to be guessed.

    A BOM wins (UTF-8/16/32), then a declared UTF-16/32 charset, then UTF-8 when the bytes are valid
    UTF-8 (a server's default `charset=iso-8859-1` on a UTF-8 file is the usual mismatch), then the
    declared charset (HTTP `Content-Type`), then a guess by charset-normalizer that decodes cleanly,
    then cp1252 with replacement characters. NULs are removed (some tools pad with them).
    """
    m = _CHARSET.search(content_type or "")
    declared = _codec(m.group(1)) if m else None
    text, note = None, None
    for bom, enc in _BOMS:
        if body.startswith(bom):
            text = body.decode(enc, errors="replace")
            break
    if text is None and declared and declared.startswith(("utf-16", "utf-32")):
        text = body.decode(declared, errors="replace")
    if text is None:
        text = _without_bom_wide(body)
    if text is None:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if text is None and declared:
        try:
            text = body.decode(declared)
        except (UnicodeDecodeError, LookupError):
            note = f"the body is not valid {declared} as declared"
    if text is None:
        guess = _guess_encoding(body)
        if guess:
            text = body.decode(guess)
            note = f"{note}; read as {guess} (guessed)" if note else f"no charset declared; read as {guess} (guessed)"
        else:
            text = body.decode("cp1252", errors="replace")
            note = (note or "no charset declared") + "; read as cp1252 with unreadable bytes replaced"
    if text.count("\x00") > len(text) // 4:
        raise BinaryBody("binary data, not a transcript")
    return text.replace("\x00", ""), note


def _without_bom_wide(body: bytes) -> str | None:
    """UTF-32/UTF-16 without a BOM: ASCII-range text has NULs in the same byte lanes throughout."""
    for width, encs in ((4, ("utf-32-le", "utf-32-be")), (2, ("utf-16-le", "utf-16-be"))):
        if len(body) < 4 * width or len(body) % width:
            continue
        head = body[: 4096 - 4096 % width]
        n = len(head) // width
        lanes = [head[i::width].count(0) for i in range(width)]
        text_lane = {"utf-32-le": 0, "utf-32-be": 3, "utf-16-le": 0, "utf-16-be": 1}
        for enc in encs:
            t = text_lane[enc]
            if lanes[t] < 0.05 * n and all(z > 0.6 * n for i, z in enumerate(lanes) if i != t):
                try:
                    return body.decode(enc)
                except UnicodeDecodeError:
                    return None
    return None


def _guess_encoding(body: bytes) -> str | None:
    """charset-normalizer's best guess, kept only if it decodes the whole body without errors."""
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # optional: without it, cp1252 (the commonest legacy subtitle encoding) is assumed
        return None
    try:
        best = from_bytes(body).best()
    except Exception:  # noqa: BLE001 - a guesser's failure is "no guess"
        return None
    enc = _codec(best.encoding) if best is not None else None
    if not enc:
        return None
    try:
        body.decode(enc)
    except (UnicodeDecodeError, LookupError):
        return None
    return enc
