"""Is this transcript in the episode's language? Declared tags plus a cheap stop-word guess.

Feeds and platforms mislabel languages, and a German transcript attached to an English episode
would index text nobody asked about. Function words are the most frequent tokens of any text and
differ between languages, so counting them separates the common Latin-script languages reliably
from a few dozen words up, with no model. Other scripts are only told apart from Latin script.
"""

from __future__ import annotations

import re
import unicodedata

NAMES = {
    "en": "English", "de": "German", "es": "Spanish", "fr": "French", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "sv": "Swedish", "da": "Danish", "no": "Norwegian", "pl": "Polish", "cs": "Czech",
    "ru": "Russian", "uk": "Ukrainian", "ja": "Japanese", "zh": "Chinese", "ko": "Korean", "ar": "Arabic",
    "hi": "Hindi", "tr": "Turkish", "el": "Greek", "he": "Hebrew", "fi": "Finnish", "hu": "Hungarian",
}
_ISO3 = {"eng": "en", "deu": "de", "ger": "de", "spa": "es", "fra": "fr", "fre": "fr", "ita": "it", "por": "pt",
         "nld": "nl", "dut": "nl", "jpn": "ja", "zho": "zh", "chi": "zh", "rus": "ru", "kor": "ko"}

STOPWORDS = {
    "en": "the and of to is that it you was for with this have are not but what they be we he his i my on at as "
          "so do can from your there all will just would about me our were been has had which when who",
    "de": "der die das und ist nicht ich sie er es ein eine zu den mit sich auf dem des von wie was auch aber wir "
          "wird noch nur bei dass daß wenn hat im oder mir mich kein sind einen einem war wo nach",
    "es": "el la los las que de y en un una es por con para no se lo su del al como pero mi más muy me ya yo tu "
          "hay este esta fue ser sus está le les porque cuando",
    "fr": "le la les de des et est un une que qui dans pour pas ne je il elle nous vous sur au aux du ce cette "
          "avec mais ou sont très son sa ses leur été était on",
    "it": "il lo la gli le di che e è un una per non con del della sono ma si mi ho ha anche come questo questa "
          "nel nella perché più io lui lei loro sei era",
    "pt": "o a os as de que e é um uma não com para do da dos das em no na por se mais mas como eu ele ela você "
          "isso muito foi são está tem ao",
    "nl": "de het een en van is dat niet ik je we zijn op te met voor er maar ook als aan hij zij wat dit die deze "
          "naar nog wel geen heb bij om door was",
}
_SETS = {lang: frozenset(words.split()) for lang, words in STOPWORDS.items()}
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
MIN_WORDS = 20


def primary(tag: str | None) -> str:
    """Primary language subtag: "en-US" → "en", "pt_BR" → "pt", "eng" → "en", "en-orig" → "en"."""
    p = re.split(r"[-_.]", (tag or "").strip().lower(), maxsplit=1)[0]
    return _ISO3.get(p, p) if re.fullmatch(r"[a-z]{2,3}", p) else ""


def name(code: str) -> str:
    return NAMES.get(code, code)


def guess_language(text: str) -> str:
    """The text's language among STOPWORDS' languages, or "" when the text is too short or unclear."""
    words = [w.lower().replace("’", "'") for w in _WORD.findall(text)][:5000]
    if len(words) < MIN_WORDS:
        return ""
    scores = sorted(((sum(w in s for w in words) / len(words), lang) for lang, s in _SETS.items()), reverse=True)
    (best, lang), (second, _) = scores[0], scores[1]
    return lang if best >= 0.12 and best >= 1.3 * second else ""


def _latin_share(text: str) -> float | None:
    letters = [c for c in text[:20000] if c.isalpha()]
    if len(letters) < 40:
        return None
    return sum("LATIN" in unicodedata.name(c, "") for c in letters) / len(letters)


def language_mismatch(transcript_text: str, declared: str, episode_language: str) -> str | None:
    """Why a transcript in another language than the episode's must be refused, or None to accept.

    The text's guessed language wins over the transcript's declared tag (tags are often copied from
    feed defaults); the tag decides only when the text gives no clear guess. Unknown episode
    language → accept.
    """
    ep, dec = primary(episode_language), primary(declared)
    if not ep:
        return None
    guess = guess_language(transcript_text)
    if guess:
        return None if guess == ep else f"transcript is in {name(guess)} ({guess}), the episode is {name(ep)} ({ep})"
    latin = _latin_share(transcript_text)
    if ep in _SETS and latin is not None and latin < 0.5:
        return f"transcript is not in Latin script, the episode is {name(ep)} ({ep})"
    if dec and dec != ep:
        return f"transcript is declared {name(dec)} ({dec}), the episode is {name(ep)} ({ep})"
    return None
