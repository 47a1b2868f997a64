"""Existing transcripts (VTT/SRT/P2.0 JSON/captions) → Transcript; chapters; language checks; yt-dlp refs."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import pytest
import srt
from conftest import shared
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from talkindex.errors import SourceError
from talkindex.records import Chapter, Episode, Transcript, TranscriptRef
from talkindex.transcripts import chunking
from talkindex.transcripts.chapters import chapter_at, chapters_from_info, fetch_chapters, parse_chapters
from talkindex.transcripts.existing import (
    TranscriptUnusable,
    caption_refs,
    detect_format,
    fetch_existing,
    parse_transcript,
)
from talkindex.transcripts.language import guess_language, language_mismatch, primary

pytestmark = pytest.mark.fast

ENGLISH = ["jfk_inaugural_11s", "librispeech_dev_2412-153948-0000_12s", "librivox_shakespeare_sonnet01_53s",
           "mfa_spontaneous_monologue_sick_26s", "nasa_apollo11_radio_89s"]


def speech(name: str) -> str:
    return shared("speech", f"{name}.txt").read_text(encoding="utf-8")


def ts(t: float, sep: str = ".") -> str:
    ms = round(t * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def cue_texts(text: str, n: int = 8) -> list[str]:
    words = text.split()
    return [" ".join(words[i:i + n]) for i in range(0, len(words), n)]


def make_vtt(cues: list[tuple[float, float, str]]) -> bytes:
    blocks = [f"{ts(a)} --> {ts(b)}\n{text}" for a, b, text in cues]
    return ("WEBVTT\n\n" + "\n\n".join(blocks) + "\n").encode()


def timed(texts: list[str], step: float = 2.5, gap: float = 0.0) -> list[tuple[float, float, str]]:
    return [(i * step, (i + 1) * step - gap, t) for i, t in enumerate(texts)]


def norm(words) -> list[str]:
    return [re.sub(r"[^\w']", "", w.lower()) for w in words if re.sub(r"[^\w']", "", w)]


def assert_monotonic(t: Transcript) -> None:
    """Words never go backwards inside a segment (cues, and so segments, may overlap: crosstalk is legal)."""
    for seg in t.segments:
        prev = seg.start
        for w in seg.words:
            assert w.start >= prev - 1e-9 and w.end >= w.start, (w, prev)
            assert w.text.startswith(" ")
            prev = w.end
        assert seg.end == pytest.approx(prev) and 0 <= seg.start <= seg.end <= t.duration + 1e-6


# ------------------------------------------------------------------------------------------------ WebVTT


@pytest.mark.parametrize("name", ENGLISH)
def test_vtt_from_reference_text_keeps_every_word_inside_its_cue(name):
    cues = timed(cue_texts(speech(name)), gap=0.2)
    t = parse_transcript(make_vtt(cues), "text/vtt", url="https://example.org/ep.vtt", source="publisher")
    assert (t.source, t.word_timing, t.model, t.source_url) == ("publisher", "estimated", t.source_url,
                                                                "https://example.org/ep.vtt")
    assert norm(w.text for w in t.words) == norm(speech(name).split())
    assert len(t.segments) == len(cues)
    for seg, (a, b, _) in zip(t.segments, cues):
        assert seg.start == pytest.approx(a) and seg.end == pytest.approx(b)
        assert all(a - 1e-6 <= w.start <= w.end <= b + 1e-6 for w in seg.words)
    assert t.duration == pytest.approx(cues[-1][1])
    assert_monotonic(t)


def test_voice_tags_become_speakers_and_other_tags_are_stripped():
    text = speech("ami_meeting_4speakers_60s")
    turns = re.findall(r"\[([^\]]+)\]\s*([^\[]+)", text)
    assert len(turns) >= 4
    cues = []
    for i, (who, said) in enumerate(turns):
        body = " ".join(said.split()[:12])
        body = body.replace(" ", " <c.yellow>", 1).replace(" ", "</c> ", 2) if i % 2 else f"<i>{body}</i>"
        cues.append((i * 4.0, i * 4.0 + 3.5, f"<v.loud {who}>{body}</v>"))
    t = parse_transcript(make_vtt(cues), "text/vtt")
    assert [s.speaker for s in t.segments] == [who for who, _ in turns]
    assert not any("<" in s.text or ">" in s.text for s in t.segments)
    assert norm(t.segments[0].text.split()) == norm(turns[0][1].split()[:12])


def test_two_voices_in_one_cue_split_into_two_segments():
    left, right = re.findall(r"\] (.+)", speech("librispeech_stereo_two_speakers_5s"))
    t = parse_transcript(make_vtt([(0.0, 6.0, f"<v Left>{left}\n<v Right>{right}")]), "text/vtt")
    assert [s.speaker for s in t.segments] == ["Left", "Right"]
    assert t.segments[0].end == t.segments[1].start and t.segments[1].end == 6.0


def test_malformed_vtt_is_unusable_with_a_reason():
    with pytest.raises(TranscriptUnusable, match="no WEBVTT header"):
        parse_transcript(b"00:00:01.000 --> 00:00:02.000\nno header\n", "text/vtt")
    with pytest.raises(TranscriptUnusable, match="no WEBVTT header"):
        parse_transcript(b"<html><title>404</title></html>", "text/vtt")  # a soft 404
    with pytest.raises(TranscriptUnusable, match="TTML captions are not supported"):
        parse_transcript(b'<?xml version="1.0"?>\n<tt xmlns="http://www.w3.org/ns/ttml"></tt>', "")
    with pytest.raises(TranscriptUnusable, match="no timed text"):
        parse_transcript(b"WEBVTT\n\n00:00:01.000 --> soon\nbad timing\n", "text/vtt")
    with pytest.raises(TranscriptUnusable, match="empty"):
        parse_transcript(b"  \n", "text/vtt")
    with pytest.raises(TranscriptUnusable, match="not timed finely enough"):
        parse_transcript(make_vtt([(0, 3600, speech("nasa_apollo11_radio_89s"))]), "text/vtt")


def youtube_rolling_vtt(lines: list[str], step: float = 3.0) -> bytes:
    """YouTube auto-captions: each cue shows the previous line again plus the new one with <ts><c> tags."""
    out, prev = ["WEBVTT\nKind: captions\nLanguage: en\n"], " "
    for i, line in enumerate(lines):
        a, b = i * step, (i + 1) * step
        words = line.split()
        per = step / len(words)
        tagged = words[0] + "".join(f"<{ts(a + k * per)}><c> {w}</c>" for k, w in enumerate(words) if k)
        out.append(f"{ts(a)} --> {ts(b)} align:start position:0%\n{prev}\n{tagged}\n")
        out.append(f"{ts(b)} --> {ts(b + 0.01)} align:start position:0%\n{line}\n \n")
        prev = line
    return "\n".join(out).encode()


def test_youtube_rolling_auto_captions_are_deduplicated_and_use_inline_times():
    ref = speech("jfk_inaugural_11s") + " " + speech("librispeech_dev_2412-153948-0000_12s").lower()
    lines = cue_texts(ref, 6)
    t = parse_transcript(youtube_rolling_vtt(lines), "text/vtt", source="auto-captions")
    assert norm(w.text for w in t.words) == norm(ref.split())
    assert_monotonic(t)
    first = [w.start for w in t.words[:6]]
    assert first == pytest.approx([k * 0.5 for k in range(6)])  # the inline <00:00:00.500> tags
    assert any("rolling captions" in n for n in t.notes)


def test_roll_up_captions_that_grow_a_line_are_deduplicated():
    words = speech("jfk_inaugural_11s").split()
    cues = [(i * 1.0, (i + 1) * 1.0, " ".join(words[max(0, i + 1 - 7):i + 1])) for i in range(len(words))]
    t = parse_transcript(make_vtt(cues), "text/vtt")
    assert norm(w.text for w in t.words) == norm(words)
    assert_monotonic(t)


def test_overlapping_cues_keep_their_own_times():
    texts = cue_texts(speech("librivox_shakespeare_sonnet02_53s"), 5)
    cues = [(i * 2.0, i * 2.0 + 3.5, text) for i, text in enumerate(texts)]  # each overlaps the next by 1.5 s
    t = parse_transcript(make_vtt(cues[::-1]), "text/vtt")  # and out of order
    assert norm(w.text for w in t.words) == norm(" ".join(texts).split())
    assert [(s.start, s.end) for s in t.segments] == [(a, b) for a, b, _ in cues]
    assert_monotonic(t)
    # a long cue that starts with a longer one: each keeps its own span (was clamped to 84.0-84.0 s)
    t = parse_transcript(make_vtt([(0, 84, "the host talks over everything"), (0, 44, "while the guest answers")]),
                         "text/vtt")
    assert sorted((s.start, s.end, s.text.strip()) for s in t.segments) == [
        (0.0, 44.0, "while the guest answers"), (0.0, 84.0, "the host talks over everything")]
    # a sentence that starts late in a long cue and ends in an overlapping short one never ends before it starts
    t = parse_transcript(make_vtt([(0, 10, "Some opening words are said here. And then"), (1, 3, "it ends.")]),
                         "text/vtt")
    sents, chunks = chunking.chunk_transcript(t)
    assert [s.text for s in sents] == ["Some opening words are said here.", "And then it ends."]
    assert all(x.start <= x.end for x in sents + chunks) and sents[1].start > 3


def test_chunking_sentences_start_at_the_cue_times():
    words = re.sub(r"[.?!…]", "", speech("mfa_spontaneous_monologue_fast_slow_27s")).split()
    sents = [s + "." for s in cue_texts(" ".join(words), 7)]  # one sentence per cue
    cues = [(1.5 + i * 4.0, 1.5 + i * 4.0 + 3.0, s) for i, s in enumerate(sents)]
    t = parse_transcript(make_vtt(cues), "text/vtt")
    got, chunks = chunking.chunk_transcript(t)
    assert [s.start for s in got] == pytest.approx([a for a, _, _ in cues])
    assert [s.end for s in got] == pytest.approx([b for _, b, _ in cues])
    assert chunks and chunks[0].start == pytest.approx(1.5)


# ---------------------------------------------------------------------------------------- SRT and JSON


def test_srt_parses_through_the_srt_package_and_leaves_name_prefixes_alone():
    texts = cue_texts(speech("librivox_shakespeare_sonnet03_52s"))
    subs = [srt.Subtitle(i + 1, timedelta(seconds=i * 3), timedelta(seconds=i * 3 + 2.5), text)
            for i, text in enumerate(texts)]
    subs[0].content = "<i>NARRATOR:</i> {\\an8}" + subs[0].content
    t = parse_transcript(srt.compose(subs).encode(), "application/x-subrip", source="captions")
    assert t.params["format"] == "srt" and t.source == "captions"
    assert t.segments[0].text.startswith(" NARRATOR: ") and t.segments[0].speaker == ""
    assert norm(w.text for w in t.words)[1:] == norm(" ".join(texts).split())
    assert_monotonic(t)


def p20_json(words: list[str], speaker: str = "Kennedy", step: float = 0.4) -> bytes:
    segs = [{"speaker": speaker, "startTime": round(1 + i * step, 3), "endTime": round(1 + i * step + 0.3, 3),
             "body": w} for i, w in enumerate(words)]
    return json.dumps({"version": "1.0.0", "segments": segs}).encode()


def test_podcasting20_json_single_words_merge_into_sentences():
    words = (speech("jfk_inaugural_11s") + " " + speech("mfa_spontaneous_monologue_sick_26s")).split()
    t = parse_transcript(p20_json(words), "application/json")
    assert len(t.segments) < len(words) / 3
    assert all(s.speaker == "Kennedy" for s in t.segments)
    assert t.segments[0].text.strip().endswith(".")
    assert [w.start for w in t.words] == pytest.approx([1 + i * 0.4 for i in range(len(words))])
    assert [w.end for w in t.words] == pytest.approx([1.3 + i * 0.4 for i in range(len(words))])


def test_podcasting20_json_sentence_segments_stay_as_they_are_with_speakers():
    turns = re.findall(r"\[(left|right)\] (.+)", speech("librispeech_stereo_two_speakers_5s"))
    segs = [{"speaker": who, "startTime": i * 3.0, "endTime": i * 3.0 + 2.5, "body": said}
            for i, (who, said) in enumerate(turns)]
    t = parse_transcript(json.dumps({"version": "1.0.0", "segments": segs}).encode(), "application/json")
    assert [(s.speaker, s.text.strip()) for s in t.segments] == [(w, s) for w, s in turns]


def test_youtube_json3_is_read_with_its_word_offsets():
    ev = {"events": [{"tStartMs": 1000, "dDurationMs": 3000,
                      "segs": [{"utf8": "ask"}, {"utf8": " not", "tOffsetMs": 500},
                               {"utf8": " what", "tOffsetMs": 900}]},
                     {"tStartMs": 4000, "dDurationMs": 10, "aAppend": 1, "segs": [{"utf8": "\n"}]}]}
    t = parse_transcript(json.dumps(ev).encode(), "application/json")
    assert [(w.text, w.start) for w in t.words] == [(" ask", 1.0), (" not", 1.5), (" what", 1.9)]


@pytest.mark.parametrize("body,declared,fmt", [
    (make_vtt([(0, 2, "Hello.")]), "text/plain", "vtt"),
    (make_vtt([(0, 2, "Hello.")]), "", "vtt"),
    (srt.compose([srt.Subtitle(1, timedelta(0), timedelta(seconds=2), "Hello.")]).encode(), "application/octet-stream",
     "srt"),
    (p20_json(["Hello."]), "text/html", "json"),
])
def test_content_is_sniffed_when_the_declared_type_is_wrong(body, declared, fmt):
    assert detect_format(body.decode(), declared) == fmt
    assert parse_transcript(body, declared).params["format"] == fmt


def feed_transcript_ref() -> TranscriptRef:
    """The <podcast:transcript> tag of podcastparser's test feed, as the feed stage would record it."""
    rss = shared("feeds", "podcastparser_episode_podcast_transcript.rss").read_text()
    m = re.search(r'<podcast:transcript type="([^"]+)" url="([^"]+)"', rss)
    return TranscriptRef(url=m.group(2), type=m.group(1))


def test_untimed_html_and_plain_text_are_refused():
    ref = feed_transcript_ref()
    with pytest.raises(TranscriptUnusable, match="plain text transcript has no timings"):
        parse_transcript(speech("jfk_inaugural_11s").encode(), ref.type, url=ref.url)
    with pytest.raises(TranscriptUnusable, match="HTML transcript has no timings"):
        parse_transcript(b"<html><body><p>Ask not.</p></body></html>", "text/html")


# ------------------------------------------------------------------------------------------- language


def test_language_guess_on_real_texts():
    for name in ENGLISH:
        assert guess_language(speech(name)) == "en", name
    assert guess_language(speech("librivox_german_simplicissimus_68s")) == "de"
    assert guess_language(speech("librivox_spanish_letter_70s")) == "es"
    assert guess_language("Hello there.") == ""  # too short to tell
    assert primary("en-US") == primary("EN_gb") == primary("eng") == primary("en-orig") == "en"


def test_language_mismatch_refuses_a_german_transcript_for_an_english_episode():
    de, en = speech("librivox_german_simplicissimus_68s"), speech("nasa_apollo11_radio_89s")
    assert language_mismatch(de, "", "en-US") == "transcript is in German (de), the episode is English (en)"
    assert language_mismatch(de, "en", "en") == "transcript is in German (de), the episode is English (en)"
    assert language_mismatch(en, "en-GB", "en-us") is None
    assert language_mismatch(en, "de", "en") is None  # the text wins over a wrong tag
    assert language_mismatch("Ja.", "de", "en") == "transcript is declared German (de), the episode is English (en)"
    assert language_mismatch(de, "de", "") is None  # episode language unknown
    assert "Latin script" in language_mismatch("これは日本語の字幕です。" * 10, "", "en")


# -------------------------------------------------------------------------------------- fetch_existing


class FakeWeb:
    def __init__(self, pages: dict[str, tuple[bytes, str] | int]):
        self.pages, self.asked = pages, []

    def __call__(self, url: str) -> tuple[bytes, str]:
        self.asked.append(url)
        page = self.pages.get(url, 404)
        if isinstance(page, int):
            raise SourceError(url, f"HTTP {page}")
        return page


def episode(refs: list[TranscriptRef], language: str = "en") -> Episode:
    return Episode(id="ep1", title="Ep", source="feed", media_url="https://example.org/ep.mp3",
                   language=language, transcripts=refs)


def test_fetch_existing_takes_the_first_usable_timed_transcript():
    vtt = make_vtt(timed(cue_texts(speech("jfk_inaugural_11s"))))
    ref_txt = feed_transcript_ref()
    refs = [ref_txt, TranscriptRef("https://example.com/1/gone.vtt", "text/vtt"),
            TranscriptRef("https://example.com/1/ep.vtt", "text/vtt", language="en-US")]
    web = FakeWeb({ref_txt.url: (speech("jfk_inaugural_11s").encode(), "text/plain"),
                   "https://example.com/1/ep.vtt": (vtt, "text/vtt; charset=utf-8")})
    t, warnings = fetch_existing(episode(refs), "prefer", web)
    assert t is not None and t.episode_id == "ep1" and t.source == "publisher" and t.language == "en"
    assert t.chapters == [] and t.duration == pytest.approx(7.5)
    assert web.asked == ["https://example.com/1/gone.vtt", "https://example.com/1/ep.vtt"]  # text/plain last
    assert warnings == [
        "transcript https://example.com/1/gone.vtt: HTTP 404; used https://example.com/1/ep.vtt instead"]


def test_fetch_existing_reports_every_failure_and_falls_back_to_asr():
    de = make_vtt(timed(cue_texts(speech("librivox_german_simplicissimus_68s"))))
    ref_txt = feed_transcript_ref()
    refs = [TranscriptRef("https://example.com/de.vtt", "text/vtt", language="de"), ref_txt,
            TranscriptRef("https://example.com/auto.vtt", "text/vtt", source="auto-captions")]
    web = FakeWeb({"https://example.com/de.vtt": (de, "text/vtt"),
                   ref_txt.url: (speech("jfk_inaugural_11s").encode(), "text/plain"),
                   "https://example.com/auto.vtt": (make_vtt([(0, 2, "Hi.")]), "text/vtt")})
    t, warnings = fetch_existing(episode(refs), "prefer", web)
    assert t is None
    assert warnings == [
        "transcript https://example.com/de.vtt: transcript is in German (de), the episode is English (en); "
        "transcribing instead",
        f"transcript {ref_txt.url}: plain text transcript has no timings (not timed enough for moments); "
        "transcribing instead",
    ]
    assert "https://example.com/auto.vtt" not in web.asked  # auto-captions only with policy "any"
    t, _ = fetch_existing(episode(refs), "any", web)
    assert t is not None and t.source == "auto-captions"
    web.asked.clear()
    assert fetch_existing(episode(refs), "never", web) == (None, []) and web.asked == []


def test_fetch_existing_refuses_a_transcript_that_does_not_cover_the_episode():
    refs = [TranscriptRef("https://example.com/trailer.vtt", "text/vtt")]
    web = FakeWeb({"https://example.com/trailer.vtt": (make_vtt(timed(cue_texts(speech("jfk_inaugural_11s")))), "")})
    ep = episode(refs)
    ep.duration = 1800.0
    assert fetch_existing(ep, "prefer", web)[1] == [
        "transcript https://example.com/trailer.vtt: transcript covers only 8 s of the episode's 1800 s; "
        "transcribing instead"]
    ep.duration = 8.0
    assert fetch_existing(ep, "prefer", web)[0] is not None


# ---------------------------------------------------------------------------------------------- chapters


def test_podcasting20_chapters_get_ends_from_the_next_start():
    expected = json.loads(shared("feeds", "podcastparser_chapters.expected.json").read_text())["episodes"][0]
    doc = {"version": "1.2.0", "chapters": [{"startTime": c["start"], "title": c["title"], **(
        {"url": c["href"]} if "href" in c else {})} for c in expected["chapters"]]}
    doc["chapters"] = doc["chapters"][2:] + doc["chapters"][:2]  # unsorted; ties keep their order
    doc["chapters"].append({"startTime": 30, "title": "silent image change", "toc": False})
    chs = parse_chapters(json.dumps(doc).encode(), duration=expected["total_time"])
    assert [c.title for c in chs] == [c["title"] for c in expected["chapters"]]
    assert [c.end for c in chs] == [1, 62, 3723, 3723, None]  # the feed's duration (3600) ends before 3723
    assert chs[2].url == "http://example.com/"
    assert chapter_at(chs, 0.5) == "Introduction" and chapter_at(chs, 100) == "Chapter with Link"
    assert chapter_at(chs, 3723.5) == "Chapter with Everything"
    with pytest.raises(TranscriptUnusable, match="no chapters list"):
        parse_chapters(b'{"version": "1.2.0"}')


def test_chapters_from_ytdlp_info_and_fetch_chapters_fallback():
    info = {"duration": 300, "chapters": [{"start_time": 0, "end_time": 120, "title": "Intro"},
                                          {"start_time": 120, "title": "Main  part"}, {"title": "no start"}]}
    chs = chapters_from_info(info)
    assert chs == [Chapter(0, "Intro", 120), Chapter(120, "Main part", 300)]
    assert chapter_at(chs, 119.9) == "Intro" and chapter_at(chs, 301) == ""
    ep = Episode(id="e", title="t", source="s", media_url="m", chapters=chs, chapters_url="https://x/ch.json")
    got, warnings = fetch_chapters(ep, FakeWeb({}))
    assert got == chs
    assert warnings == ["chapters https://x/ch.json: HTTP 404; using the 2 chapters known from the source"]
    web = FakeWeb({"https://x/ch.json": (b'{"chapters": [{"startTime": 5, "title": "Only"}]}', "application/json")})
    assert fetch_chapters(ep, web) == ([Chapter(5, "Only", None)], [])


# ----------------------------------------------------------------------------------------- yt-dlp refs


def yt_info() -> dict:
    def fmts(lang, tlang=""):
        base = f"https://www.youtube.com/api/timedtext?v=x&lang={lang}{tlang}"
        return [{"ext": e, "url": f"{base}&fmt={e}", "name": lang} for e in ("json3", "srv3", "ttml", "srt", "vtt")]
    return {
        "subtitles": {"de": fmts("de"), "en-GB": fmts("en-GB"), "en": fmts("en"), "live_chat": [
            {"ext": "json", "url": "https://www.youtube.com/live_chat_replay"}]},
        "automatic_captions": {"af": fmts("en", "&tlang=af"), "de": fmts("en", "&tlang=de"), "en-orig": fmts("en"),
                               "en": fmts("en")},
    }


def test_caption_refs_prefer_the_episode_language_and_vtt():
    refs = caption_refs(yt_info(), "en-US", "prefer")
    assert [(r.language, r.source, r.type) for r in refs] == [("en", "captions", "text/vtt"),
                                                              ("en-GB", "captions", "text/vtt")]
    assert refs[0].url.endswith("lang=en&fmt=vtt")
    refs = caption_refs(yt_info(), "en", "any")
    assert [(r.language, r.source) for r in refs][-1] == ("en", "auto-captions")
    assert "tlang" not in refs[-1].url
    assert [r.source for r in caption_refs(yt_info(), "de", "any")] == ["captions"]  # no translated auto track
    assert caption_refs(yt_info(), None, "prefer")[0].language == "en"
    assert caption_refs(yt_info(), "en", "never") == []
    info = {"subtitles": {"fr": [{"ext": "ttml", "url": "https://x/fr.ttml"}, {"url": "https://x/fr.srt"},
                                 {"ext": "vtt"}]}}
    assert [(r.url, r.type) for r in caption_refs(info, "fr", "prefer")] == [("https://x/fr.srt",
                                                                              "application/x-subrip")]
    info = {"subtitles": {None: [{"url": "https://x/a.vtt"}], "English": [{"url": "https://x/b.vtt"}]}}
    assert [(r.url, r.language) for r in caption_refs(info, "en", "prefer")] == [("https://x/a.vtt", ""),
                                                                                  ("https://x/b.vtt", "English")]


def test_html5_track_captions_through_ytdlp_generic_extractor(tmp_path: Path):
    from talkindex.serve.files import serve_directory

    yt_dlp = pytest.importorskip("yt_dlp")
    (tmp_path / "talk.vtt").write_bytes(make_vtt(timed(cue_texts(speech("jfk_inaugural_11s")))))
    (tmp_path / "talk.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(2000))
    (tmp_path / "page.html").write_text(
        "<!DOCTYPE html><html><head><title>Talk</title></head><body><video controls>"
        '<source src="talk.mp4" type="video/mp4">'
        '<track kind="captions" src="talk.vtt" srclang="en" label="English">'
        '<track kind="chapters" src="chapters.vtt" srclang="en"></video></body></html>')
    with serve_directory(tmp_path) as base:
        opts = {"quiet": True, "no_warnings": True, "skip_download": True, "socket_timeout": 10}
        with yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(f"{base}/page.html", download=False)
        assert info["subtitles"] == {"en": [{"url": f"{base}/talk.vtt", "ext": "vtt"}]}
        refs = caption_refs(info, "en", "prefer")
        assert refs == [TranscriptRef(url=f"{base}/talk.vtt", type="text/vtt", language="en", rel="captions",
                                      source="captions")]
        import urllib.request

        def fetch(url):
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.read(), r.headers.get("Content-Type", "")

        t, warnings = fetch_existing(episode(refs), "prefer", fetch)
    assert warnings == [] and t.source == "captions" and norm(w.text for w in t.words) == norm(
        speech("jfk_inaugural_11s").split())


# ------------------------------------------------------------------------------------------------- fuzz

TYPES = st.sampled_from(["", "text/vtt", "application/x-subrip", "application/json", "text/html", "text/plain",
                         "application/octet-stream", "text/vtt; charset=latin-1"])
PREFIXES = st.sampled_from([b"", b"WEBVTT\n\n", b"1\n00:00:01,000 --> 00:00:02,000\n", b'{"segments": [',
                            b'{"events": [', b"\xef\xbb\xbfWEBVTT\n\n00:00:01.000 --> 00:00:0"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=PREFIXES, body=st.binary(max_size=400), ctype=TYPES)
def test_fuzz_arbitrary_bytes_give_a_transcript_or_a_reason(prefix, body, ctype):
    try:
        t = parse_transcript(prefix + body, ctype)
    except TranscriptUnusable as e:
        assert e.reason and "\n" not in e.reason
        return
    assert t.segments and t.word_timing == "estimated"
    assert_monotonic(t)


CUE = st.tuples(st.floats(0, 500), st.floats(0, 30),
                st.lists(st.sampled_from(["ask", "not.", "<v Ann>", "</v>", "<i>", "</i>", "&amp;", "what?",
                                          "<00:00:03.000>", "<c>", "</c>", "\n", "you", "-->", "<"]), max_size=12))


@settings(max_examples=200, deadline=None)
@given(cues=st.lists(CUE, max_size=15))
def test_fuzz_structured_vtt_words_never_go_backwards(cues):
    body = "WEBVTT\n\n" + "\n\n".join(f"{ts(a)} --> {ts(a + d)}\n" + " ".join(toks).replace("-->", "->")
                                      for a, d, toks in cues)
    try:
        t = parse_transcript(body.encode(), "text/vtt")
    except TranscriptUnusable:
        return
    assert_monotonic(t)


@settings(max_examples=150, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True) | st.text(max_size=5),
                    lambda x: st.lists(x, max_size=4) | st.dictionaries(
                        st.sampled_from(["chapters", "startTime", "endTime", "title", "toc", "url", "segments",
                                         "body", "speaker"]), x, max_size=5), max_leaves=20))
def test_fuzz_json_documents(doc):
    raw = json.dumps(doc).encode()
    for parse in (parse_chapters, lambda b: parse_transcript(b, "application/json")):
        try:
            parse(raw)
        except TranscriptUnusable:
            pass


def test_rss_fixture_tag_shape_is_what_the_refs_describe():
    """Guard the fixture assumption: the feed's transcript tag carries url and type."""
    root = ET.fromstring(shared("feeds", "podcastparser_episode_podcast_transcript.rss").read_text()
                         .replace("podcast:", "podcast_").replace("itunes:", "itunes_"))
    tag = root.find(".//podcast_transcript")
    assert feed_transcript_ref() == TranscriptRef(url=tag.get("url"), type=tag.get("type"))
