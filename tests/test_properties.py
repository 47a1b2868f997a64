"""Property-based tests (hypothesis): urls.txt parsing, chunking invariants, rank fusion."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from talkindex.errors import SourceError
from talkindex.records import Segment, Transcript, Word
from talkindex.search.ranking import RRF_K, _rrf
from talkindex.sources.resolve import MAX_LINE, read_urls_file
from talkindex.transcripts import chunking

pytestmark = pytest.mark.fast

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# ---------------------------------------------------------------------------------------------
# urls.txt

host = st.from_regex(r"[a-z][a-z0-9-]{0,12}(\.[a-z]{2,6}){1,2}", fullmatch=True)
path = st.from_regex(r"(/[A-Za-z0-9._~%-]{1,12}){0,3}", fullmatch=True)
url = st.builds(lambda s, h, p: f"{s}://{h}{p}", st.sampled_from(["http", "https", "HTTPS"]), host, path)
noise = st.sampled_from(["", "   ", "# a comment", "  # indented comment", "\t"])


@SETTINGS
@given(items=st.lists(st.tuples(url, noise, st.sampled_from(["", "  # trailing note", "   "]),
                                st.sampled_from(["\n", "\r\n"])), max_size=12))
def test_urls_file_keeps_urls_in_order(tmp_path, items):
    text = "".join(f"{n}{nl}{u}{c}{nl}" for u, n, c, nl in items)
    f = tmp_path / "urls.txt"
    f.write_bytes(text.encode())
    inputs, errors = read_urls_file(f)
    expected = list(dict.fromkeys(u for u, *_ in items))  # deduplicated, first occurrence wins
    assert errors == []
    assert inputs == expected


@SETTINGS
@given(data=st.binary(max_size=600) | st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")),
       long=st.booleans())
def test_urls_file_any_bytes(tmp_path, data, long):
    """Any content: never crashes; each bad line is one SourceError naming the file and its line."""
    if long:
        data += b"\nhttps://example.com/" + b"a" * MAX_LINE
    f = tmp_path / "urls.txt"
    f.write_bytes(data)
    inputs, errors = read_urls_file(f)
    n_lines = data.count(b"\n") + 1
    assert len(inputs) + len(errors) <= n_lines
    assert len(set(inputs)) == len(inputs)
    for e in errors:
        assert isinstance(e, SourceError) and e.input == str(f)
        assert e.reason.startswith("line ") and "\n" not in str(e)
        assert 1 <= int(e.reason.split()[1].rstrip(":")) <= n_lines
    for i in inputs:
        assert i.strip() == i and i and "\n" not in i and "\x00" not in i
    if long:
        assert any("line too long" in e.reason for e in errors)


# ---------------------------------------------------------------------------------------------
# chunking

token = st.sampled_from(["model", "data", "drift", "the", "a", "feature", "store", "latency", "GPU"])
punct = st.sampled_from(["", "", "", ",", ".", "?", "!", "…"])


@st.composite
def transcripts(draw):
    """Segments of words with increasing, non-overlapping times inside [0, duration]."""
    t = 0.0
    segs = []
    for _ in range(draw(st.integers(0, 8))):
        words = []
        t += draw(st.floats(0, 3))
        seg_start = t
        for _ in range(draw(st.integers(0, 30))):
            d = draw(st.floats(0.05, 1.5))
            words.append(Word(round(t, 3), round(t + d, 3), " " + draw(token) + draw(punct)))
            t += d + draw(st.floats(0, 0.5))
        text = "".join(w.text for w in words).strip()
        no_words = draw(st.booleans()) and words  # some segments lack word timestamps
        segs.append(Segment(round(seg_start, 3), round(max(t, seg_start + 0.01), 3), text,
                            avg_logprob=draw(st.floats(-2, 0)), no_speech_prob=draw(st.floats(0, 1)),
                            compression_ratio=draw(st.floats(0.5, 3)), words=[] if no_words else words))
    duration = round(t + draw(st.floats(0, 5)) + 0.01, 3)
    return Transcript("ep", "en", duration, segs, "tiny.en")


options = st.builds(chunking.ChunkOptions, max_words=st.integers(1, 80), max_seconds=st.floats(1, 60),
                    overlap_sentences=st.integers(0, 3), max_sentence_words=st.integers(1, 50))


@SETTINGS
@given(t=transcripts(), opts=options)
def test_chunks_cover_transcript_in_order(t, opts):
    sents, chunks = chunking.chunk_transcript(t, opts)
    words = [w for s in t.segments for w in (s.words or chunking._pseudo_words(s))]
    # sentences: every word once, in order, inside the audio
    assert " ".join(s.text for s in sents).split() == [w.text.strip() for w in words if w.text.strip()]
    assert [s.idx for s in sents] == list(range(len(sents)))
    for a, b in zip(sents, sents[1:]):
        assert a.start <= b.start and a.end <= b.start + 1e-6
    for s in sents:
        assert 0 <= s.start <= s.end <= t.duration and 0 <= s.quality <= 1
        assert s.n_words <= opts.max_sentence_words
    # chunks: whole sentences, in order, covering every sentence, overlapping by at most `overlap`
    if not sents:
        assert chunks == []
        return
    assert [c.idx for c in chunks] == list(range(len(chunks)))
    assert chunks[0].first_sentence == 0 and chunks[-1].last_sentence == len(sents) - 1
    covered = set()
    for c in chunks:
        part = sents[c.first_sentence: c.last_sentence + 1]
        assert part and c.text == " ".join(s.text for s in part)
        assert (c.start, c.end) == (part[0].start, part[-1].end)
        assert 0 <= c.start <= c.end <= t.duration
        assert c.quality == min(s.quality for s in part)
        covered.update(range(c.first_sentence, c.last_sentence + 1))
    assert covered == set(range(len(sents)))
    for a, b in zip(chunks, chunks[1:]):
        assert a.first_sentence < b.first_sentence <= a.last_sentence + 1
        # never goes back; NOTE chunking may emit a window that only repeats the previous window's
        # overlap sentence (b ⊂ a) when one sentence alone exceeds max_seconds — reported, not fixed here
        assert a.last_sentence <= b.last_sentence
        assert a.last_sentence - b.first_sentence + 1 <= max(opts.overlap_sentences, 0)
        assert a.start <= b.start


# ---------------------------------------------------------------------------------------------
# reciprocal rank fusion

scores = st.dictionaries(st.integers(1, 40), st.floats(-10, 10, allow_nan=False), max_size=25)


@SETTINGS
@given(ranked=st.lists(scores, min_size=1, max_size=3), weights=st.lists(st.floats(0.01, 2), min_size=3,
                                                                          max_size=3))
def test_rrf_properties(ranked, weights):
    weights = weights[: len(ranked)]
    fused = _rrf(ranked, weights)
    assert set(fused) == set().union(*ranked)
    assert all(0 < v <= sum(weights) / (RRF_K + 1) + 1e-12 for v in fused.values())
    # order of the retrievers does not matter
    assert _rrf(ranked[::-1], weights[::-1]) == fused or all(
        abs(_rrf(ranked[::-1], weights[::-1])[k] - v) < 1e-12 for k, v in fused.items())
    # one retriever: fusion keeps its order (ties keep some order, so compare distinct scores only)
    one = _rrf(ranked[:1], weights[:1])
    for a in ranked[0]:
        for b in ranked[0]:
            if ranked[0][a] > ranked[0][b]:
                assert one[a] > one[b]
    # an id that is first everywhere it appears, and appears everywhere, wins
    tops = {max(r, key=r.get) for r in ranked if r}
    if len(tops) == 1 and all(r for r in ranked):
        top = tops.pop()
        if all(sorted(r, key=r.get, reverse=True)[0] == top for r in ranked):
            assert fused[top] == max(fused.values())


@SETTINGS
@given(base=scores.filter(bool), other=scores, pick=st.integers(0, 1000))
def test_rrf_agreement_never_hurts(base, other, pick):
    """Being found by a second retriever can only raise an id's fused score."""
    boost = sorted(base)[pick % len(base)]
    alone = _rrf([base, {k: v for k, v in other.items() if k != boost}], [1.0, 0.5])
    found = _rrf([base, {**other, boost: max(other.values(), default=0) + 1}], [1.0, 0.5])
    assert found[boost] > alone[boost]
