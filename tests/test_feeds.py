"""talkindex.sources.feeds: feedparser-based feed parsing and the project's rules (fast: no network, no models)."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from talkindex.errors import SourceError
from talkindex.records import Chapter, TranscriptRef
from talkindex.sources import feeds
from talkindex.sources.feeds import feed_episodes, looks_like_feed, parse_date, parse_duration

pytestmark = pytest.mark.fast

FEEDS = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "feeds"
BASE = "https://feeds.example.com/"
PODCAST_NS = 'xmlns:podcast="https://podcastindex.org/namespace/1.0"'


def fixture(name: str) -> bytes:
    path = FEEDS / name
    if not path.exists():
        pytest.skip(f"shared fixtures not available: {path} is missing")
    return path.read_bytes()


def digest(lines) -> str:
    return hashlib.sha1("\n".join(lines).encode()).hexdigest()[:16]


def rid(feed_url: str, key: str) -> str:
    return "rss-" + hashlib.sha1(f"{feed_url}\n{key}".encode()).hexdigest()[:12]


@functools.cache
def real(name: str) -> tuple:
    """A real fixture feed parsed once for the module (giantbomb takes about a second)."""
    return tuple(parse(fixture(name), BASE + name))


def rss(items: str, channel: str = "<title>T</title>", ns: str = "") -> bytes:
    return f'<?xml version="1.0"?><rss version="2.0" {ns}><channel>{channel}{items}</channel></rss>'.encode()


def parse(data: bytes, final: str = BASE + "feed.xml", feed_url: str | None = None, **kw):
    return feed_episodes(data, feed_url or final, final, "src", **kw)


# ---------------------------------------------------------------------------------------------
# real feeds: same episodes, ids and fields as the hand-written parser this replaced

# (count, digest of the ids, digest of title|media_url|webpage_url|published|duration), recorded with
# the previous SAX parser for feed URL BASE + name: existing homes keep their episode ids.
REAL = {
    "giantbomb-podcast.rss": (730, "71e4ff62e2d1f552", "0c2d9da1ba3b421d"),
    # 131 items; two share guid and enclosure (geekistry-2.mp3, same media): kept once, as before
    "taverncast-podcast.rss": (130, "6fb09eaabbd08bf1", "df1823a2482478bf"),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_feeds_unchanged(name):
    count, ids, fields = REAL[name]
    eps = real(name)
    assert len(eps) == count == len({e.id for e in eps})
    assert digest(e.id for e in eps) == ids
    assert digest(f"{e.title}|{e.media_url}|{e.webpage_url}|{e.published}|{e.duration}" for e in eps) == fields
    assert {e.language for e in eps} == {"en-us"} and all(e.extractor == "rss" for e in eps)


def test_giantbomb_fields():
    url = BASE + "giantbomb-podcast.rss"
    eps = real("giantbomb-podcast.rss")
    first, last = eps[0], eps[-1]
    assert first.id == rid(url, "1600-2823")  # guid isPermaLink="false"
    assert (first.title, first.show, first.published, first.duration) == (
        "Giant Bombcast 603: Call of Tuesday", "Giant Bombcast", "2019-10-01", 10475.0)
    assert first.media_url == ("https://dts.podtrac.com/redirect.mp3/www.giantbomb.com/podcasts/download/2823/"
                               "603__Call_of_Tuesday-10-01-2019-6277737276.mp3")
    assert first.webpage_url == "https://www.giantbomb.com/shows/603-call-of-tuesday/2970-19653/free-podcast"
    assert (last.title, last.published, last.duration) == (
        "Giant Bombcast Arrow Pointing Down Podcast Beta", "2008-02-18", 5283.0)
    assert sum(e.duration is not None for e in eps) == 696


def test_taverncast_blank_line_and_odd_namespace():
    data = fixture("taverncast-podcast.rss")
    assert data.startswith(b"\n") and data.count(b"<item>") == 131
    eps = real("taverncast-podcast.rss")
    assert (eps[0].title, eps[0].published, eps[0].duration) == ("Taverncast 62 - Temporal Anomaly", "2015-11-07",
                                                                  4190.0)
    dup = [e for e in eps if e.media_url.endswith("/geekistry-2.mp3")]
    assert [e.title for e in dup] == ["Geekistry: You Can See the Strings"]  # first of the two copies
    assert all(e.duration is not None and e.published for e in eps)


@pytest.mark.parametrize(("name", "types"), [
    ("giantbomb-podcast.rss", ("text/xml",)),  # what http.server sends (RFC 3023 says us-ascii: overridden)
    ("taverncast-podcast.rss", ("text/xml", "application/rss+xml", "text/html; charset=UTF-8"))])
def test_content_type_does_not_change_real_feeds(name, types):
    for ct in types:
        assert tuple(parse(fixture(name), BASE + name, content_type=ct)) == real(name)


# ---------------------------------------------------------------------------------------------
# podcastparser's test feeds and their expected parses


def test_podcastparser_transcript_feed():
    expected = json.loads(fixture("podcastparser_episode_podcast_transcript.expected.json"))
    url = BASE + "transcript.rss"
    [ep] = parse(fixture("podcastparser_episode_podcast_transcript.rss"), url)  # unbound prefixes: loose parse
    [want] = expected["episodes"]
    assert (ep.show, ep.title, ep.media_url) == (expected["title"], want["title"], want["enclosures"][0]["url"])
    assert ep.id == rid(url, want["guid"])  # no guid: the enclosure URL
    assert ep.transcripts == [TranscriptRef(url=want["transcript_url"], type="text/plain")]


def test_podcastparser_chapters_feed():
    expected = json.loads(fixture("podcastparser_chapters.expected.json"))
    data = fixture("podcastparser_chapters.rss")
    with pytest.raises(SourceError, match="feed has no audio or video items"):
        parse(data)  # its one item has no enclosure
    [ep] = parse(data.replace(b"<guid>", b'<enclosure url="ep.mp3" type="audio/mpeg"/><guid>'))
    [want] = expected["episodes"]
    assert (ep.show, ep.title, ep.duration) == (expected["title"], want["title"], want["total_time"])
    assert ep.media_url == BASE + "ep.mp3"
    assert [(c.start, c.title, c.url) for c in ep.chapters] == [
        (pytest.approx(c["start"], abs=0.5), c["title"], c.get("href", "")) for c in want["chapters"]]


# ---------------------------------------------------------------------------------------------
# charsets


def test_http_charset_is_honoured():
    text = ('<rss version="2.0"><channel><title>Подкаст</title><item><title>Привет, мир</title>'
            '<enclosure url="a.mp3" type="audio/mpeg"/></item></channel></rss>')
    data = text.encode("windows-1251")  # no XML declaration: only the header names the charset
    [ep] = parse(data, content_type="application/rss+xml; charset=windows-1251")
    assert (ep.show, ep.title) == ("Подкаст", "Привет, мир")
    [guessed] = parse(data)
    assert guessed.title != "Привет, мир"  # without the header the bytes cannot be known to be cp1251


def test_latin1_feed_without_declaration():
    data = ('<rss version="2.0"><channel><title>Café</title><item><title>Épisode à la plage</title>'
            '<enclosure url="a.mp3" type="audio/mpeg"/></item></channel></rss>').encode("latin-1")
    for ct in ("text/xml; charset=ISO-8859-1", "application/rss+xml; charset=latin-1"):
        [ep] = parse(data, content_type=ct)
        assert (ep.show, ep.title) == ("Café", "Épisode à la plage")


def test_http_charset_wins_over_xml_declaration():
    data = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Ça</title><item>'
            '<title>Noël</title><enclosure url="a.mp3" type="audio/mpeg"/></item></channel></rss>').encode("latin-1")
    [ep] = parse(data, content_type="text/xml; charset=iso-8859-1")
    assert (ep.show, ep.title) == ("Ça", "Noël")


# ---------------------------------------------------------------------------------------------
# enclosures, schemes, ids


def test_relative_enclosure_resolved_against_final_url():
    data = rss('<item><title>a</title><enclosure url="../media/a.mp3?x=1&amp;y=2" type="audio/mpeg"/></item>'
               '<item><title>b</title><enclosure url="/b.mp3" type="audio/mpeg"/><link>ep/b</link></item>')
    a, b = parse(data, final="https://cdn.example.org/podcast/feed/rss.xml", feed_url="http://example.org/feed")
    assert a.media_url == "https://cdn.example.org/podcast/media/a.mp3?x=1&y=2"
    assert a.webpage_url == a.media_url  # no <link>: the enclosure
    assert (b.media_url, b.webpage_url) == ("https://cdn.example.org/b.mp3", "https://cdn.example.org/podcast/feed/ep/b")
    assert a.id == rid("http://example.org/feed", a.media_url)  # the feed URL typed, not the redirect target


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.mp3", "javascript:alert(1)",
                                 "data:audio/mpeg;base64,AAAA", "http://[not-ipv6/a.mp3"])
def test_non_http_enclosure_refused(url, caplog):
    with pytest.raises(SourceError, match=r"no playable items \(1 enclosure URLs .* refused\)"):
        parse(rss(f'<item><title>x</title><enclosure url="{url}" type="audio/mpeg"/></item>'))
    mixed = rss(f'<item><title>bad</title><enclosure url="{url}" type="audio/mpeg"/></item>'
                '<item><title>good &amp; fine</title><enclosure url="tone.mp3" type="audio/mpeg"/></item>')
    with caplog.at_level(logging.WARNING, logger="talkindex"):
        [ep] = parse(mixed)
    assert (ep.title, ep.media_url) == ("good & fine", BASE + "tone.mp3")
    assert any(url[:40] in r.getMessage() for r in caplog.records)


def test_enclosure_choice():
    data = rss('<item><title>a</title><enclosure url="https://e.x/cover.jpg" type="image/jpeg"/>'
               '<enclosure url="https://e.x/notes.pdf"/><enclosure url="https://e.x/a.m4a"/></item>'
               '<item><title>b</title><media:content url="https://e.x/b.webm" medium="video" duration="61"/></item>'
               '<item><title>c</title><enclosure url="https://e.x/c" type="application/octet-stream"/></item>'
               '<item><title>d</title><enclosure url="https://e.x/d.pdf" type="application/pdf"/></item>',
               ns='xmlns:media="http://search.yahoo.com/mrss/"')
    eps = parse(data)
    assert [(e.title, e.media_url) for e in eps] == [("a", "https://e.x/a.m4a"), ("b", "https://e.x/b.webm"),
                                                     ("c", "https://e.x/c")]
    assert eps[1].duration == 61.0


def test_ids_from_guid_or_enclosure_never_title_and_deduplicated():
    item = '<item><title>{t}</title>{g}<enclosure url="https://e.x/{u}.mp3" type="audio/mpeg"/></item>'
    data = rss(item.format(t="one", g="<guid>  g-1  </guid>", u="1") + item.format(t="two", g="", u="2")
               + item.format(t="one again", g="<guid>g-1</guid>", u="1") + item.format(t="two", g="", u="3"))
    eps = parse(data, feed_url="https://f.x/feed")
    assert [e.id for e in eps] == [rid("https://f.x/feed", "g-1"), rid("https://f.x/feed", "https://e.x/2.mp3"),
                                   rid("https://f.x/feed", "https://e.x/3.mp3")]


def test_ids_survive_a_feed_turning_bozo():
    guids = ["https://e.x/?p=1&amp;ep=2", "a &lt;b&gt; &quot;c&quot;", "x&#38;y", "urn:uuid:42", "tag:e.x,2024:1",
             "caf&#233;", "&amp;amp;"]
    items = "".join(f'<item><title>{i}</title><guid isPermaLink="false">{g}</guid>'
                    f'<enclosure url="https://e.x/{i}.mp3" type="audio/mpeg"/></item>' for i, g in enumerate(guids))
    strict = parse(rss(items))
    for extra in ("<item><title>new &nbsp; one</title></item>", "<item><x:y/></item>"):  # HTML entity; unbound prefix
        assert [e.id for e in parse(rss(items + extra))] == [e.id for e in strict], extra
    assert [e.id for e in strict[:3]] == [rid(BASE + "feed.xml", g) for g in ("https://e.x/?p=1&ep=2", 'a <b> "c"',
                                                                                "x&y")]


@pytest.mark.parametrize("extra", ["", "<x:y/>"])  # broken XML, alone or with an unbound prefix (loose parse)
def test_bare_ampersands_and_html_entities_read_as_typed(extra):
    items = [("https://e.x/?a=1&b=2", "Q&A"), ("&foo;", "AT&T &amp; R&D"),
             ("a&copy=2", "&nbsp;Caf&eacute; &foo; &copy"), ("g4", "<![CDATA[Tom & Jerry &amp; co]]>")]
    data = rss("".join(f"<item><title>{t}</title><guid>{g}</guid>{extra}<enclosure url='https://e.x/{i}.mp3'/></item>"
                       for i, (g, t) in enumerate(items)))
    eps = parse(data)
    assert [e.title for e in eps] == ["Q&A", "AT&T & R&D", "Café &foo; &copy", "Tom & Jerry &amp; co"]
    assert [e.id for e in eps] == [rid(BASE + "feed.xml", g) for g in ("https://e.x/?a=1&b=2", "&foo;", "a&copy=2",
                                                                        "g4")]


def test_titles_links_dates_durations():
    data = rss('<item><title>  Spaced\n  out  </title><itunes:title>alt</itunes:title><guid>1</guid>'
               '<pubDate>Sat, 07 Nov 2015 23:30:00 -0500</pubDate><itunes:duration>1:02:03.5</itunes:duration>'
               '<link>javascript:alert(1)</link><enclosure url="https://e.x/1.mp3"/></item>'
               '<item><title></title><itunes:title>From iTunes</itunes:title><guid>2</guid>'
               '<dc:date>2024-05-06T10:00:00+09:00</dc:date><itunes:duration>-5</itunes:duration>'
               '<enclosure url="https://e.x/2.mp3"/></item>'
               '<item><guid>3</guid><pubDate>2024/05/06</pubDate><enclosure url="https://e.x/My%20Show.mp3"/></item>',
               channel="<title>T</title><language>EN_us</language>",
               ns='xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" xmlns:dc="http://purl.org/dc/elements/1.1/"')
    a, b, c = parse(data)
    assert (a.title, a.published, a.duration, a.webpage_url) == ("Spaced out", "2015-11-07", 3723.5, a.media_url)
    assert (b.title, b.published, b.duration) == ("From iTunes", "2024-05-06", None)
    assert (c.title, c.published) == ("My Show.mp3", "2024-05-06")
    assert {a.language, b.language, c.language} == {"en-us"}


def test_atom_feed_with_enclosure_links():
    data = (b'\n\n<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" xml:lang="fr-FR">'
            b'<title>A &nbsp;show</title><author><name>Someone</name></author>'
            b'<entry><title>Q&amp;A</title><id>urn:1</id><published>2024-05-06T10:00:00Z</published>'
            b'<link rel="alternate" href="https://example.com/ep1"/>'
            b'<link rel="enclosure" type="audio/ogg" href="https://example.com/ep1.ogg?a=1&amp;b=2"/></entry>'
            b'<entry><title>Two</title><id>urn:2</id><updated>2024-05-07T10:00:00Z</updated>'
            b'<link rel="enclosure" type="video/mp4" href="media/ep2.mp4"/>'
            b'<link rel="enclosure" type="audio/mpeg" href="file:///etc/passwd"/></entry></feed>')
    one, two = parse(data, final="https://example.com/feeds/atom.xml")
    assert (one.title, one.show, one.published, one.language) == ("Q&A", "A show", "2024-05-06", "fr-fr")
    assert (one.webpage_url, one.media_url) == ("https://example.com/ep1", "https://example.com/ep1.ogg?a=1&b=2")
    assert one.id == rid("https://example.com/feeds/atom.xml", "urn:1")
    assert (two.published, two.media_url) == ("2024-05-07", "https://example.com/feeds/media/ep2.mp4")


def test_rss1_rdf_feed():
    data = (b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            b'xmlns="http://purl.org/rss/1.0/" xmlns:enc="http://purl.oclc.org/net/rss_2.0/enc#" '
            b'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel rdf:about="https://e.x/"><title>RDF show</title>'
            b'</channel><item rdf:about="https://e.x/1"><title>First</title><link>https://e.x/1</link>'
            b'<dc:date>2024-05-06T10:00:00Z</dc:date>'
            b'<enc:enclosure rdf:resource="https://e.x/1.mp3" enc:type="audio/mpeg"/></item></rdf:RDF>')
    assert looks_like_feed(data)
    [ep] = parse(data, feed_url="https://f.x/rdf")
    assert (ep.show, ep.title, ep.media_url, ep.webpage_url, ep.published) == (
        "RDF show", "First", "https://e.x/1.mp3", "https://e.x/1", "2024-05-06")
    assert ep.id == rid("https://f.x/rdf", "https://e.x/1.mp3")  # rdf:about is not a guid (ids as before)


# ---------------------------------------------------------------------------------------------
# Podcasting 2.0 transcripts and chapters


def test_transcripts_timed_first_and_chapters():
    item = ('<item><title>a</title><guid>g</guid><enclosure url="https://e.x/a.mp3" type="audio/mpeg"/>'
            '<podcast:transcript url="t/a.html" type="text/html"/>'
            '<podcast:transcript url="https://e.x/a.txt" type="text/plain" language="de"/>'
            '<podcast:transcript url="https://e.x/a.json" type="application/json"/>'
            '<podcast:transcript url="https://e.x/a.srt" type="application/x-subrip" rel="captions"/>'
            '<podcast:transcript url="file:///etc/passwd" type="text/vtt"/>'
            '<podcast:transcript url="https://e.x/a.vtt" type="text/vtt; charset=utf-8"/>'
            '<podcast:transcript url="https://e.x/a.vtt" type="text/vtt"/>'
            '<podcast:transcript url="https://e.x/noext" />'
            '<podcast:chapters url="chapters.json" type="application/json+chapters"/></item>'
            '<item><title>b</title><enclosure url="https://e.x/b.mp3" type="audio/mpeg"/></item>')
    channel = "<title>T</title><language>en</language>"
    expected = [("https://e.x/a.vtt", "text/vtt", "en", ""), ("https://e.x/a.srt", "application/x-subrip", "en",
                                                             "captions"),
                ("https://e.x/a.json", "application/json", "en", ""), (BASE + "t/a.html", "text/html", "en", ""),
                ("https://e.x/a.txt", "text/plain", "de", ""), ("https://e.x/noext", "", "en", "")]
    for ns in (PODCAST_NS, 'xmlns:podcast="https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/1.0.md"',
               'xmlns:pod="https://podcastindex.org/namespace/1.0"', ""):  # "" = unbound prefix: loose parse
        data = rss(item if "pod=" not in ns else item.replace("podcast:", "pod:"), channel, ns)
        a, b = parse(data)
        assert [(t.url, t.type, t.language, t.rel) for t in a.transcripts] == expected, ns
        assert all(t.source == "publisher" for t in a.transcripts)
        assert a.chapters_url == BASE + "chapters.json"
        assert (b.transcripts, b.chapters_url) == ([], "")


def test_channel_level_podcast_tags_are_not_episode_tags():
    data = rss('<item><title>a</title><enclosure url="https://e.x/a.mp3"/></item>',
               '<title>T</title><podcast:transcript url="https://e.x/show.vtt" type="text/vtt"/>', PODCAST_NS)
    [ep] = parse(data)
    assert ep.transcripts == []


# ---------------------------------------------------------------------------------------------
# hostile and broken input


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "cannot parse feed"),
    (b"garbage", "cannot parse feed"),
    (b"/etc/passwd", "cannot parse feed"),  # bytes that name a file are never opened
    (b"<!doctype html><html><body><p>No media here.</p></body></html>", "cannot parse feed"),
    (b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</tit<<item>>&&</rss', "cannot parse feed"),
    (rss(""), "feed has no items"),
    (b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title></feed>', "feed has no items"),
    (rss("<item><title>Words only</title><link>https://e.x/1</link></item><item><title>Also none</title></item>"),
     "no audio or video items"),
    (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
     b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
     b'<rss><channel><title>&d;&d;&d;&d;</title></channel></rss>', None),
    (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rss><channel><title>t</title>'
     b'<item><title>&x;</title><enclosure url="https://e.x/a.mp3"/></item></channel></rss>', None),
])
def test_broken_and_hostile_feeds(data, reason):
    if reason is None:  # entity bombs / external entities: an error or a harmless parse, never /etc/passwd
        try:
            eps = parse(data)
        except SourceError:
            return
        assert all("root:" not in e.title and len(e.title) < 10_000 for e in eps)
        return
    with pytest.raises(SourceError, match=reason) as err:
        parse(data)
    assert err.value.input == "src"


def test_truncated_feed_keeps_items_before_the_break():
    items = "".join(f'<item><title>{i}</title><enclosure url="https://e.x/{i}.mp3"/></item>' for i in range(3))
    data = rss(items)
    data = data[: data.rindex(b"</item>") + 4]  # the old parser kept only the items closed before the break
    assert [e.title for e in parse(data)] == ["0", "1", "2"]


def test_too_many_items(monkeypatch):
    monkeypatch.setattr(feeds, "MAX_ITEMS", 3)
    items = "".join(f'<item><enclosure url="https://e.x/{i}.mp3"/></item>' for i in range(4))
    with pytest.raises(SourceError, match="more than 3 items"):
        parse(rss(items))


FRAGMENTS = st.sampled_from([
    b"<rss>", b"<channel>", b"<item>", b"</item>", b"<enclosure url='", b"http://[", b"a.mp3", b"'/>", b"<guid>",
    b"</guid>", b"&", b"&amp;", b"&nbsp;", b"<![CDATA[", b"]]>", b"<podcast:transcript url='", b"<psc:chapter start='",
    b"<title>", b"\x00", b"\xff", b"<!DOCTYPE x [<!ENTITY a 'b'>]>", b"<?xml version='1.0' encoding='utf-16'?>",
    b"<feed xmlns='http://www.w3.org/2005/Atom'>", b"<link rel='enclosure' href='", b"<itunes:duration>", b"99:99:99",
    b"<pubDate>", b"<media:content url='", b"x", b"file:///etc/passwd"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=2000),
                 st.binary(max_size=500).map(lambda b: b'<rss version="2.0"><channel><item>' + b),
                 st.lists(FRAGMENTS, max_size=40).map(b"".join)),
       st.sampled_from([None, "text/xml", "text/html; charset=utf-16", "application/rss+xml; charset=bogus"]))
def test_arbitrary_bytes_never_raise_anything_but_source_error(data, content_type):
    try:
        eps = feed_episodes(data, "https://f.x/feed", "https://f.x/feed", "src", content_type=content_type)
    except SourceError:
        return
    assert isinstance(eps, list) and eps
    assert all(e.media_url.startswith(("http://", "https://")) and e.id.startswith("rss-") for e in eps)
    assert all(t.url.startswith(("http://", "https://")) for e in eps for t in e.transcripts)


# ---------------------------------------------------------------------------------------------
# small helpers sources/resolve.py imports


def test_looks_like_feed():
    assert looks_like_feed(b"\xef\xbb\xbf\n  <?xml version='1.0'?><rss version='2.0'>")
    assert looks_like_feed(b'<feed xmlns="http://www.w3.org/2005/Atom">')
    assert looks_like_feed(b"<rdf:RDF xmlns:rdf='x'>")
    assert not looks_like_feed(b"<!DOCTYPE html><html><head><link type='application/rss+xml'>")
    assert not looks_like_feed(b"ID3\x03\x00 binary")


@pytest.mark.parametrize(("text", "seconds"), [
    ("3600", 3600.0), ("59:25", 3565.0), ("1:02:03", 3723.0), ("00:00:01.5", 1.5), ("0", None), ("", None),
    (None, None), ("1:2:3:4", None), ("abc", None), ("-5", None), ("nan", None), ("inf", None), ("999999999", None)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "date"), [
    ("Tue, 01 Oct 2019 07:00:00 PDT", "2019-10-01"), ("Sat, 07 Nov 2015 23:30:00 -0500", "2015-11-07"),
    ("2024-05-06T23:00:00-08:00", "2024-05-06"), ("2024/05/06", "2024-05-06"), ("20240506T1000Z", "2024-05-06"),
    ("6 May 2024", "2024-05-06"), ("Wed, 27 July 2011 01:30:00 EST", "2011-07-27"), ("2024-02-30", None),
    ("Tue, 31 Feb 2024", None), ("202405061", None), ("yesterday", None), (None, None)])
def test_parse_date(text, date):
    assert parse_date(text) == date


def test_psc_chapter_records():
    data = rss('<item><title>a</title><enclosure url="https://e.x/a.mp3"/><psc:chapters version="1.2">'
               '<psc:chapter start="00:01:00" title="Two" href="javascript:x"/>'
               '<psc:chapter start="0" title="One" href="https://e.x/1"/><psc:chapter start="bad" title="?"/>'
               '</psc:chapters></item>', ns='xmlns:psc="http://podlove.org/simple-chapters"')
    [ep] = parse(data)
    assert ep.chapters == [Chapter(start=0.0, title="One", url="https://e.x/1"), Chapter(start=60.0, title="Two")]
