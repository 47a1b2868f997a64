"""Words → sentences → overlapping, time-aligned passage windows.

Windows respect sentence boundaries so a hit never starts mid-sentence; sentences are kept too, so
search can point a hit at the exact sentence that answers the question.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..home import ChunkOptions
from ..records import Chunk, Segment, Transcript

_END = (".", "?", "!", "…")


@dataclass
class Sentence:
    idx: int
    start: float
    end: float
    text: str
    n_words: int
    quality: float
    speaker: str = ""  # of the segment the sentence starts in (VTT voices, JSON speakers)


def segment_quality(s: Segment) -> float:
    """1.0 for normal speech; lower for what Whisper itself flags as likely hallucination."""
    q = 1.0
    if s.no_speech_prob > 0.6 and s.avg_logprob < -1.0:
        q *= 0.3
    if s.compression_ratio > 2.4:  # repetitive loops
        q *= 0.5
    if s.avg_logprob < -1.2:
        q *= 0.7
    return q


def sentences(transcript: Transcript, opts: ChunkOptions | None = None) -> list[Sentence]:
    """Split the word stream at sentence punctuation (and at a word cap for run-on speech)."""
    opts = opts or ChunkOptions()
    out: list[Sentence] = []
    buf: list[tuple[float, float, str]] = []
    qual: list[float] = []

    speaker = [""]

    def flush() -> None:
        if buf:
            text = "".join(t for _, _, t in buf).strip()
            if text:
                q = min(qual) if qual else 1.0
                end = max(buf[-1][1], buf[0][0])  # overlapping cues (crosstalk): never before the start
                out.append(Sentence(len(out), buf[0][0], end, text, len(buf), q, speaker[0]))
            buf.clear()
            qual.clear()

    for seg in transcript.segments:
        if seg.speaker != speaker[0]:  # a new speaker starts a new sentence
            flush()
            speaker[0] = seg.speaker
        q = segment_quality(seg)
        words = seg.words or _pseudo_words(seg)
        for w in words:
            buf.append((w.start, w.end, w.text if w.text.startswith(" ") else " " + w.text))
            qual.append(q)
            if w.text.rstrip().rstrip("\"')]").endswith(_END) or len(buf) >= opts.max_sentence_words:
                flush()
    flush()
    return out


def _pseudo_words(seg: Segment) -> list:
    """Segments without word timestamps: spread words evenly over the segment."""
    from ..records import Word

    toks = seg.text.split()
    if not toks:
        return []
    step = (seg.end - seg.start) / len(toks)
    return [Word(seg.start + i * step, seg.start + (i + 1) * step, " " + t) for i, t in enumerate(toks)]


def windows(sents: list[Sentence], episode_id: str, opts: ChunkOptions | None = None,
            chapter_starts: list[float] | None = None) -> list[Chunk]:
    """Greedy windows of whole sentences, each overlapping the previous by `overlap_sentences`.

    With `chapter_starts` (and `opts.chapter_bounded`), no window straddles a chapter boundary: a hit
    then belongs to one chapter, and a chapter's opening sentence leads a window of its own topic."""
    opts = opts or ChunkOptions()
    chunks: list[Chunk] = []
    for part in _sections(sents, chapter_starts if opts.chapter_bounded else None):
        _windows_of(part, episode_id, opts, chunks)
    return chunks


def _sections(sents: list[Sentence], chapter_starts: list[float] | None) -> list[list[Sentence]]:
    """Runs of consecutive sentences, split where a sentence starts at or after a chapter's start."""
    if not chapter_starts:
        return [sents]
    starts = sorted(chapter_starts)
    out: list[list[Sentence]] = []
    k = 0
    for s in sents:
        opened = False
        while k < len(starts) and s.start >= starts[k] - 0.05:
            k, opened = k + 1, True
        if opened or not out:
            out.append([])
        out[-1].append(s)
    return [p for p in out if p]


def _windows_of(sents: list[Sentence], episode_id: str, opts: ChunkOptions, chunks: list[Chunk]) -> None:
    i = 0
    n = len(sents)
    while i < n:
        j = i
        words = 0
        while j < n:
            words += sents[j].n_words
            j += 1
            if words >= opts.max_words or sents[j - 1].end - sents[i].start >= opts.max_seconds:
                break
        part = sents[i:j]
        chunks.append(
            Chunk(
                episode_id=episode_id, idx=len(chunks), start=part[0].start, end=max(s.end for s in part),
                text=" ".join(s.text for s in part), quality=min(s.quality for s in part),
                first_sentence=part[0].idx, last_sentence=part[-1].idx,
            )
        )
        if j >= n:
            break
        i = max(i + 1, j - opts.overlap_sentences)


def chunk_transcript(transcript: Transcript, opts: ChunkOptions | None = None) -> tuple[list[Sentence], list[Chunk]]:
    sents = sentences(transcript, opts)
    return sents, windows(sents, transcript.episode_id, opts, [c.start for c in transcript.chapters])
