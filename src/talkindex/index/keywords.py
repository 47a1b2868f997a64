"""Keyword tokenising: the one place that turns text into BM25 terms (index side and query side).

Whisper's errors are often near-misses ("featured rift" for "feature drift"); matching on 4–6-character
pieces of words still finds them, where whole-word BM25 cannot. The tokeniser is named in the index
config (`IndexConfig.keywords`), so a home built with one is never queried with another.
"""

from __future__ import annotations

import functools
import re

TOKENIZERS = ("chargram-4-6", "words")
_WORD = re.compile(r"[a-z]+")


@functools.lru_cache(maxsize=1 << 18)
def _word_grams(w: str, lo: int, hi: int) -> tuple[str, ...]:
    """One word's grams, memoised: speech repeats the same words over and over."""
    if len(w) <= lo:
        return (w,)
    return tuple(w[i : i + n] for n in range(lo, min(hi, len(w)) + 1) for i in range(len(w) - n + 1))


def char_grams(text: str, lo: int = 4, hi: int = 6) -> str:
    """Words → their character n-grams, as space-separated tokens for BM25."""
    return " ".join(g for w in _WORD.findall(text.lower()) for g in _word_grams(w, lo, hi))


def keyword_units(text: str, tokenizer: str) -> list[str]:
    """The pieces of `text` whose tokens do not depend on their neighbours (words), so callers can
    memoise `unit_tokens` per piece."""
    if tokenizer.startswith("chargram-"):
        return _WORD.findall(text.lower())
    return keyword_text(text, tokenizer).lower().split()


def unit_tokens(unit: str, tokenizer: str) -> tuple[str, ...]:
    if tokenizer.startswith("chargram-"):
        lo, hi = (int(x) for x in tokenizer.split("-")[1:3])
        return _word_grams(unit, lo, hi)
    return (unit,)


def keyword_text(text: str, tokenizer: str = "chargram-4-6") -> str:
    """The text stored in the keyword field (and sent as the query) for `tokenizer`."""
    if tokenizer == "words":
        return text
    if tokenizer.startswith("chargram-"):
        lo, hi = (int(x) for x in tokenizer.split("-")[1:3])
        return char_grams(text, lo, hi)
    raise ValueError(f"unknown keyword tokeniser {tokenizer!r}: use one of {', '.join(TOKENIZERS)}")
