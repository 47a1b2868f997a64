"""Keyword tokenising: the one place that turns text into BM25 terms (index side and query side).

Whisper's errors are often near-misses ("featured rift" for "feature drift"); matching on 4–6-character
pieces of words still finds them, where whole-word BM25 cannot. The tokeniser is named in the index
config (`IndexConfig.keywords`), so a home built with one is never queried with another.
"""

from __future__ import annotations

import re

TOKENIZERS = ("chargram-4-6", "words")
_WORD = re.compile(r"[a-z]+")


def char_grams(text: str, lo: int = 4, hi: int = 6) -> str:
    """Words → their character n-grams, as space-separated tokens for BM25."""
    out: list[str] = []
    for w in _WORD.findall(text.lower()):
        if len(w) <= lo:
            out.append(w)
            continue
        for n in range(lo, min(hi, len(w)) + 1):
            out.extend(w[i : i + n] for i in range(len(w) - n + 1))
    return " ".join(out)


def keyword_text(text: str, tokenizer: str = "chargram-4-6") -> str:
    """The text stored in the keyword field (and sent as the query) for `tokenizer`."""
    if tokenizer == "words":
        return text
    if tokenizer.startswith("chargram-"):
        lo, hi = (int(x) for x in tokenizer.split("-")[1:3])
        return char_grams(text, lo, hi)
    raise ValueError(f"unknown keyword tokeniser {tokenizer!r}: use one of {', '.join(TOKENIZERS)}")
