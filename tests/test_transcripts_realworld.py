"""Real transcript files no one here wrote, through talkindex's own transcript parsing and the real CLI.

tests/fixtures/realworld/SOURCES.md names each file's repository, path, commit and licence, and which
of that project's published expectations (their tests' cue texts and times) is asserted here.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
import srt
import webvtt
from conftest import run_cli
from httpserver import serve
from test_server import request
from test_server import serve as serve_home

from talkindex.transcripts.existing import TranscriptUnusable, parse_transcript
from talkindex.transcripts.formats import render

REAL = Path(__file__).parent / "fixtures" / "realworld"


def real(name: str) -> bytes:
    return (REAL / name).read_bytes()


def texts(t) -> list[str]:
    return [s.text.strip() for s in t.segments]


def spans(t) -> list[tuple[float, float]]:
    return [(s.start, s.end) for s in t.segments]


# ------------------------------------------------------------------------- item 1: speech is not roll-up


@pytest.mark.fast
def test_netflix_subtitles_keep_every_cue_and_the_echoed_line():
    t = parse_transcript(real("webvtt-py_netflix_chicas_del_cable.vtt"), "text/vtt")
    assert not any("rolling" in n for n in t.notes)
    assert len(t.segments) == 865  # every cue of the file (webvtt-py reads 865 captions)
    # webvtt-py's test_empty_lines_are_not_included_in_result
    assert (t.segments[0].start, t.segments[0].end, texts(t)[0]) == (7.96, 9.48, "[Alba] En 1928,")
    assert texts(t)[-2] == "Diez años no son suficientes para olvidarte..."
    # the echo: "… pero mucho menos si eras mujer." then "Si eras mujer, en 1928" 1.6 s later is dialogue
    i = texts(t).index("para nadie, pero mucho menos si eras mujer.")
    assert (texts(t)[i + 1], t.segments[i + 1].start) == ("Si eras mujer, en 1928", 29.32)


@pytest.mark.fast
def test_youtube_roll_up_captions_are_still_merged():
    t = parse_transcript(real("webvtt-py_youtube_dl.vtt"), "text/vtt", source="auto-captions")
    # webvtt-py's test_can_parse_youtube_dl_files: the third cue is "this will happen is I'm telling"
    assert texts(t) == ["yeah", "what", "this will happen is I'm telling"]
    assert [w.start for w in t.segments[2].words[:3]] == [304.08, 304.199, 304.379]  # inline <00:05:04.199>
    assert t.notes == ["dropped 7 repeated caption words (rolling captions)"]


@pytest.mark.fast
def test_two_speakers_saying_the_same_word_are_two_turns():
    turns = b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<v Host>Yeah.\n\n00:00:02.000 --> 00:00:03.000\n<v Guest>Yeah.\n"
    t = parse_transcript(turns, "text/vtt")
    assert [(s.speaker, s.text.strip(), s.start) for s in t.segments] == [("Host", "Yeah.", 1.0),
                                                                            ("Guest", "Yeah.", 2.0)]
    one_cue = b"WEBVTT\n\n00:00:01.000 --> 00:00:03.000\n<v Host>Yeah.\n<v Guest>Yeah.\n"
    assert [(s.speaker, s.text.strip()) for s in parse_transcript(one_cue, "text/vtt").segments] == [
        ("Host", "Yeah."), ("Guest", "Yeah.")]
    # a pause between repeats is speech too, even from one speaker
    again = b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nNo.\n\n00:00:03.000 --> 00:00:04.000\nNo.\n"
    assert texts(parse_transcript(again, "text/vtt")) == ["No.", "No."]


@pytest.mark.fast
def test_subtitle_conventions_that_look_like_roll_up_are_speech():
    """Patterns of pysrt's French film subtitles and capability tester (GPL-3.0, so not copied here)."""
    said_twice = ("1\n00:01:20,342 --> 00:01:22,276\nTo the van!\n\n"
                  "2\n00:01:22,311 --> 00:01:25,007\nTo the van!\n\n"  # 35 ms later: shouted twice
                  "3\n00:01:25,007 --> 00:01:26,000\nTo the van!\n")  # even back to back: a cue all repeat
    assert texts(parse_transcript(said_twice.encode(), "application/x-subrip")) == ["To the van!"] * 3
    one_ms = ("4\n00:00:04,501 --> 00:00:07,500\nThis text should be normal\nThis text should be big\n\n"
              "5\n00:00:07,501 --> 00:00:11,500\nThis should be an E with an accent\n"
              "This text should be big and brown\n")  # the x,500 / x,501 convention, not roll-up
    t = parse_transcript(one_ms.encode(), "application/x-subrip")
    assert texts(t)[1] == "This should be an E with an accent This text should be big and brown"
    roll_up = ("WEBVTT\n\n00:00:01.000 --> 00:00:03.000\nTHE COUNCIL MET\n\n"
               "00:00:03.000 --> 00:00:05.000\nTHE COUNCIL MET\nON TUESDAY NIGHT\n")  # 608 roll-up, converted
    assert texts(parse_transcript(roll_up.encode(), "text/vtt")) == ["THE COUNCIL MET", "ON TUESDAY NIGHT"]


# ---------------------------------------------------------------------- item 2: overlapping cues' times


@pytest.mark.fast
def test_overlapping_cues_from_the_webvtt_examples_keep_their_times():
    # the positioning example of the WebVTT spec and MDN: three cues that overlap in time
    body = ("WEBVTT\n\n00:00:00.000 --> 00:00:04.000 position:10%,line-left align:left size:35%\nWhere did he go?\n\n"
            "00:00:03.000 --> 00:00:06.500 position:90% align:right size:35%\nI think he went down this lane.\n\n"
            "00:00:04.000 --> 00:00:06.500 position:45%,line-right align:center size:35%\nWhat are you waiting for?\n")
    t = parse_transcript(body.encode(), "text/vtt")
    assert spans(t) == [(0.0, 4.0), (3.0, 6.5), (4.0, 6.5)]
    assert t.segments[1].words[0].start == 3.0  # "I" is said at 3 s, not when the first cue ends
    assert texts(t) == ["Where did he go?", "I think he went down this lane.", "What are you waiting for?"]


# ------------------------------------------------------------------------------- item 3: charsets, BOMs


@pytest.mark.fast
def test_gb2312_srt_reads_with_the_declared_charset_or_a_reported_guess():
    raw = real("srt_gb2312.srt")
    expected = [s.content.replace("\n", " ") for s in srt.parse(raw.decode("gb2312"))]  # as srt_tools reads it
    assert expected[0] == "宇宙守护神  保护我们远离邪恶"
    t = parse_transcript(raw, "application/x-subrip; charset=gb2312")
    assert [" ".join(x.split()) for x in texts(t)] == [" ".join(x.split()) for x in expected]
    assert spans(t) == [(27.0, 30.73), (31.5, 34.1), (34.1, 36.57)] and t.notes == []
    netflix = real("webvtt-py_netflix_chicas_del_cable.vtt")  # UTF-8 mislabelled (a server default)
    assert texts(parse_transcript(netflix, "text/vtt; charset=iso-8859-1")) == texts(
        parse_transcript(netflix, "text/vtt"))
    guessed = parse_transcript(raw, "application/x-subrip")
    assert texts(guessed) == texts(t)
    assert guessed.notes == ["no charset declared; read as gb18030 (guessed)"]


@pytest.mark.fast
@pytest.mark.parametrize("encoding", ["utf-32", "utf-16", "utf-8-sig", "utf-16-le", "utf-32-be"])  # BOM-less too
def test_bom_files_and_nul_padding_read_as_the_utf8_file(encoding):
    plain = real("podcast-namespace_example.vtt")
    want = parse_transcript(plain, "text/vtt")
    assert encoding != "utf-32" or plain.decode().encode(encoding)[:4] == b"\xff\xfe\x00\x00"
    got = parse_transcript(plain.decode().encode(encoding), "text/vtt")
    assert texts(got) == texts(want) and spans(got) == spans(want)
    padded = plain.replace(b"Sarah>", b"Sarah>\x00").replace(b"WEBVTT", b"WEBVTT\x00", 1)
    assert texts(parse_transcript(padded, "text/vtt")) == texts(want)
    with pytest.raises(TranscriptUnusable, match="binary data"):
        parse_transcript(b"WEBVTT\n\n" + bytes(400), "text/vtt")


# --------------------------------------------------------------------------------- item 4: VTT export


@pytest.mark.fast
def test_vtt_export_escapes_markup_so_players_keep_the_text(tmp_path):
    body = (REAL / "vtt.js_escape-characters-together.vtt").read_bytes()
    t = parse_transcript(body, "text/vtt")
    proc = json.loads(real("vtt.js_escape-characters-together-proc.json"))
    shown = proc[0]["childNodes"][0]["textContent"]  # what vtt.js renders for the cue
    assert texts(t) == [" ".join(shown.split())]
    t.segments[0].speaker = "Q&A <host>"
    out = tmp_path / "out.vtt"
    out.write_text(render(t, "vtt"), encoding="utf-8")
    assert "&lt; &amp;&gt;" in out.read_text() and "<v Q&amp;A &lt;host&gt;>" in out.read_text()
    back = webvtt.read(str(out)).captions
    assert [html.unescape(c.text) for c in back] == [" ".join(shown.split())]  # a real parser gets it back
    again = parse_transcript(out.read_bytes(), "text/vtt")
    assert texts(again) == texts(t) and again.segments[0].speaker == "Q&A <host>"


# ------------------------------------------------------------------ item 5: speakers, tags, ids, codes


@pytest.mark.fast
def test_podcasting20_example_srt_speakers_are_speakers():
    t = parse_transcript(real("podcast-namespace_example.srt"), "application/x-subrip")
    assert len(t.segments) == 222
    labels = re.findall(r"^([A-Z]\w+): ", real("podcast-namespace_example.srt").decode(), re.M)
    assert {s.speaker for s in t.segments} == set(labels) == {"Travis", "Sarah", "Gilon"}
    assert (t.segments[0].speaker, texts(t)[0]) == ("Travis", "When you first get started in podcasting, it's")
    assert t.segments[1].speaker == "Travis"  # the label holds until the speaker changes (transcripts.md)
    words = {w.text.strip() for w in t.words}
    assert not {"Travis:", "Sarah:", "Gilon:"} & words


@pytest.mark.fast
def test_podcasting20_example_vtt_and_json():
    t = parse_transcript(real("podcast-namespace_example.vtt"), "text/vtt")
    assert [s.speaker for s in t.segments] == ["Sarah"] * 5 + ["Gillian"] * 2
    assert "Welcome to Podcasting Q&A, where you learn" in texts(t)[2]
    j = parse_transcript(real("podcast-namespace_example.json"), "application/json")
    assert [(s.speaker, s.text.strip(), s.start, s.end) for s in j.segments] == [
        ("Darth Vader", "I am your father.", 0.5, 2.5), ("Luke", "Nooooo", 2.75, 3.0)]


@pytest.mark.fast
@pytest.mark.parametrize("name", ["vtt.js_voice-no-end-gt.vtt", "vtt.js_timestamp-no-end-gt.vtt"])
def test_unclosed_voice_and_timestamp_tags_are_not_words(name):
    with pytest.raises(TranscriptUnusable, match="no timed text"):  # vtt.js renders no text for them
        parse_transcript(real(name), "text/vtt")
    body = real(name) + b"\n00:00:02.000 --> 00:00:03.000\nsaid after\n"
    assert texts(parse_transcript(body, "text/vtt")) == ["said after"]


@pytest.mark.fast
def test_cue_ids_are_not_text_even_where_a_blank_line_is_missing():
    raw = real("webvtt-py_using_identifiers.vtt")
    want = [f"Caption text #{i}" for i in range(1, 7)]  # webvtt-py's test_parse_identifiers: 6 cues
    assert texts(parse_transcript(raw, "text/vtt")) == want
    squeezed = raw.replace(b"#3\n\n4\n", b"#3\n4\n")
    assert squeezed != raw
    assert texts(parse_transcript(squeezed, "text/vtt")) == want
    as_srt = b"1\n00:00:01,000 --> 00:00:02,000\nHello\n2\n00:00:02,000 --> 00:00:03,000\nWorld\n"
    assert texts(parse_transcript(as_srt, "application/x-subrip")) == ["Hello", "World"]


@pytest.mark.fast
def test_ssa_and_microdvd_codes_are_not_words():
    body = ("1\n00:00:01,000 --> 00:00:03,000\n{\\an8}{Y:i}Ask\\hnot\\Nwhat {\\i1}your{\\i0} country\n\n"
            "2\n00:00:03,000 --> 00:00:05,000\n{c:$0000ff}can do for you.\n")
    t = parse_transcript(body.encode(), "application/x-subrip")
    assert texts(t) == ["Ask not what your country", "can do for you."]


# ----------------------------------------------------------------------------------- through the CLI


def test_real_transcripts_through_a_feed_and_the_cli(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    for name in ("srt_gb2312.srt", "podcast-namespace_example.srt", "webvtt-py_netflix_chicas_del_cable.vtt"):
        (site / name).write_bytes(real(name))
    (site / "undeclared.srt").write_bytes(real("srt_gb2312.srt"))
    (site / "utf32.vtt").write_bytes(real("podcast-namespace_example.vtt").decode().encode("utf-32") + b"\x00" * 4)
    (site / "turns.vtt").write_text("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<v Host>Yeah. Q&amp;A &lt;3\n\n"
                                    "00:00:02.000 --> 00:00:03.000\n<v Guest>Yeah.\n")
    types = {"srt_gb2312.srt": "application/x-subrip; charset=gb2312", "undeclared.srt": "application/x-subrip",
             "podcast-namespace_example.srt": "application/x-subrip", "utf32.vtt": "text/vtt",
             "webvtt-py_netflix_chicas_del_cable.vtt": "text/vtt", "turns.vtt": "text/vtt"}
    items = [("GB2312 declared", "srt_gb2312.srt"), ("GB2312 undeclared", "undeclared.srt"),
             ("P2.0 SRT", "podcast-namespace_example.srt"), ("UTF-32", "utf32.vtt"),
             ("Netflix", "webvtt-py_netflix_chicas_del_cable.vtt"), ("Turns", "turns.vtt")]
    feed = ('<?xml version="1.0"?><rss version="2.0" xmlns:podcast="https://podcastindex.org/namespace/1.0">'
            "<channel><title>Real transcripts</title>" + "".join(
                f"<item><title>{title}</title><guid>rw-{n}</guid>"
                f'<enclosure url="http://127.0.0.1:PORT/ep{n}.mp3" type="audio/mpeg" length="1"/>'
                f'<podcast:transcript url="http://127.0.0.1:PORT/{name}" type="{types[name].split(";")[0]}"/></item>'
                for n, (title, name) in enumerate(items)) + "</channel></rss>")
    (site / "feed.xml").write_text(feed)
    home = tmp_path / "home"
    with serve(site, types) as base:
        p = run_cli("ingest", f"{base}/feed.xml", "--json", home=home)
    assert p.returncode == 0, p.stderr
    assert {json.loads(x)["transcript_source"] for x in p.stdout.splitlines()} == {"publisher"}
    warnings = [ln for ln in p.stderr.splitlines() if ": warning: " in ln]
    assert warnings == [f"talkindex: warning: {base}/feed.xml: GB2312 undeclared: "
                        "no charset declared; read as gb18030 (guessed)"], p.stderr
    ids = {e["title"]: e["id"] for e in json.loads(run_cli("list", "--json", home=home, check=True).stdout)}

    def doc(title: str) -> dict:
        return json.loads(run_cli("transcript", ids[title], "--format", "json", home=home, check=True).stdout)

    assert doc("GB2312 declared")["segments"][0]["text"].split() == ["宇宙守护神", "保护我们远离邪恶"]
    assert doc("GB2312 undeclared")["segments"][0]["text"].split() == ["宇宙守护神", "保护我们远离邪恶"]
    assert {s["speaker"] for s in doc("P2.0 SRT")["segments"]} == {"Travis", "Sarah", "Gilon"}
    assert [s["speaker"] for s in doc("UTF-32")["segments"]] == ["Sarah"] * 5 + ["Gillian"] * 2
    netflix = doc("Netflix")["segments"]
    assert len(netflix) == 865 and any(s["text"].strip() == "Si eras mujer, en 1928" for s in netflix)
    turns = doc("Turns")["segments"]
    assert [(s["speaker"], s["text"].strip()) for s in turns] == [("Host", "Yeah. Q&A <3"), ("Guest", "Yeah.")]
    vtt = run_cli("transcript", ids["Turns"], "--format", "vtt", home=home, check=True).stdout
    assert "<v Host>Yeah. Q&amp;A &lt;3" in vtt
    out = tmp_path / "turns-out.vtt"
    out.write_text(vtt, encoding="utf-8")
    assert [html.unescape(c.text) for c in webvtt.read(str(out)).captions] == ["Yeah. Q&A <3", "Yeah."]
    with serve_home(home) as (url, _proc, _lines):  # the page's download is the same file
        status, headers, body = request(url, f"/api/episodes/{ids['Turns']}/transcript?format=vtt&download=1")
    assert status == 200 and "attachment" in headers["content-disposition"] and body.decode() == vtt
    hits = json.loads(run_cli("ask", "ser libre era algo que parecía inalcanzable", "--json", home=home,
                              check=True).stdout)
    assert hits and hits[0]["title"] == "Netflix"
