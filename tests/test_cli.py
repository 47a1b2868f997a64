"""End to end through the real CLI on the bundled sample talks (real tiny.en, real MiniLM)."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from conftest import SAMPLES, ask_json, run_cli

from talkindex.home import default_embedders

TRUTH = json.loads((SAMPLES / "truth.json").read_text())
QUESTIONS = json.loads((SAMPLES / "questions.json").read_text())


def _episodes(home) -> list[dict]:
    return json.loads(run_cli("list", "--json", home=home, check=True).stdout)


def test_ingest_lists_every_sample_with_chunks(samples_home):
    eps = _episodes(samples_home)
    assert sorted(e["title"] for e in eps) == sorted(t["title"] for t in TRUTH.values())
    for e in eps:
        assert e["status"] == "indexed"
        assert e["chunks"] > 0
        assert e["show"] == "talkindex samples"
        stem = e["media_url"].rsplit("/", 1)[-1].removesuffix(".mp3")
        assert abs(e["duration"] - TRUTH[stem]["duration"]) < 0.5
        assert e["model"] == "tiny.en" and e["embedder"] == "+".join(default_embedders()[0])


def test_transcripts_hold_the_spoken_words_with_ordered_word_times(samples_home):
    for e in _episodes(samples_home):
        t = json.loads(run_cli("transcript", e["id"], "--format", "json", home=samples_home, check=True).stdout)
        stem = e["media_url"].rsplit("/", 1)[-1].removesuffix(".mp3")
        ref = " ".join(s["text"] for s in TRUTH[stem]["sentences"]).lower()
        hyp = " ".join(s["text"] for s in t["segments"]).lower()
        ref_words = set(re.findall(r"[a-z]{6,}", ref))
        found = sum(w in hyp for w in ref_words)
        assert found / len(ref_words) > 0.6, (found, len(ref_words))
        words = [w for s in t["segments"] for w in s["words"]]
        assert words, "word timestamps are kept"
        starts = [w["start"] for w in words]
        assert starts == sorted(starts)
        assert all(0 <= w["start"] <= w["end"] <= t["duration"] + 0.05 for w in words)
        assert t["params"]["model"] == "tiny.en" and "beam_size" in t["params"]
        seg = t["segments"][0]
        assert {"avg_logprob", "no_speech_prob", "compression_ratio"} <= set(seg)


def test_srt_and_vtt_are_well_formed(samples_home):
    eid = _episodes(samples_home)[0]["id"]
    srt = run_cli("transcript", eid, "--format", "srt", home=samples_home, check=True).stdout
    blocks = [b for b in srt.strip().split("\n\n") if b]
    for n, b in enumerate(blocks, 1):
        lines = b.split("\n")
        assert lines[0] == str(n)
        assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", lines[1])
        assert lines[2].strip()
    vtt = run_cli("transcript", eid, "--format", "vtt", home=samples_home, check=True).stdout
    assert vtt.startswith("WEBVTT\n\n")
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}", vtt)
    txt = run_cli("transcript", eid, home=samples_home, check=True).stdout
    assert len(txt.split()) > 100


def test_ask_finds_the_sample_answers(samples_home):
    found = 0
    for q in QUESTIONS:
        hits = ask_json(samples_home, q["query"], "-k", "5")
        sents = TRUTH[q["episode"]]["sentences"]
        i = q["answer_sentence_index"]
        lo, hi = sents[max(0, i - 1)]["start"], sents[min(len(sents) - 1, i + 1)]["end"]
        found += any(q["episode"] in h["source_url"] and h["start"] < hi and h["end"] > lo for h in hits)
    # measured 4/6 (tiny.en hears "feature drift" as "featured Rift"); 3 would mean a broken stage
    assert found >= 4, f"only {found}/{len(QUESTIONS)} sample questions answered in the top 5"


def test_ask_json_shape_order_and_links(samples_home):
    hits = ask_json(samples_home, "what is feature store drift", "-k", "4")
    assert 1 <= len(hits) <= 4
    keys = {"rank", "score", "episode_id", "title", "show", "start", "end", "text", "link", "source_url"}
    assert all(keys <= set(h) for h in hits)
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    top = hits[0]
    assert "feature" in top["title"].lower()
    assert isinstance(top["start"], float) and top["start"] < top["end"]
    assert top["link"] == f"file://{top['source_url'].removeprefix('file://')}#t={int(top['start'])}"


def test_ask_human_output_has_title_time_and_link(samples_home):
    p = run_cli("ask", "how do canary releases work", "-k", "2", home=samples_home, check=True)
    assert "Shipping Models Without Fear" in p.stdout
    assert re.search(r"\d\d:\d\d:\d\d", p.stdout)
    assert "file://" in p.stdout and "#t=" in p.stdout


def test_ask_filters(samples_home):
    eid = next(e["id"] for e in _episodes(samples_home) if "Reproducible" in e["title"])
    hits = ask_json(samples_home, "what is feature store drift", "--episode", eid)
    assert hits and all(h["episode_id"] == eid for h in hits)
    assert ask_json(samples_home, "drift", "--show", "TALKINDEX sam")
    p = run_cli("ask", "drift", "--show", "no such show", home=samples_home)
    assert p.returncode == 1 and "unknown show" in p.stderr
    p = run_cli("ask", "drift", "--episode", "nope", home=samples_home)
    assert p.returncode == 1 and "unknown episode" in p.stderr
    p = run_cli("ask", "drift", "--since", "yesterday", home=samples_home)
    assert p.returncode == 2 and "since 'yesterday' is not a date" in p.stderr


def test_ask_file_gives_one_json_line_per_question(samples_home, tmp_path):
    qs = [q["query"] for q in QUESTIONS]
    f = tmp_path / "questions.txt"
    f.write_text("# a comment\n" + "\n".join(qs) + "\n\n")
    p = run_cli("ask", "--file", str(f), "-k", "2", home=samples_home, check=True)
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert [x["query"] for x in lines] == qs
    assert all(1 <= len(x["hits"]) <= 2 for x in lines)


def test_modes(samples_home):
    for mode in ("dense", "keyword", "hybrid"):
        assert ask_json(samples_home, "canary release rollback", "--mode", mode)
    p = run_cli("ask", "x", "--mode", "psychic", home=samples_home)
    assert p.returncode == 2


def test_rerun_skips_and_is_idempotent(samples_home):
    before = _episodes(samples_home)
    p = run_cli("ingest", str(SAMPLES / "urls.txt"), "--json", home=samples_home, check=True)
    assert all(json.loads(x)["status"] == "skipped" for x in p.stdout.splitlines())
    assert "0 indexed, 3 already done, 0 failed" in p.stderr
    after = _episodes(samples_home)
    assert [(e["id"], e["chunks"]) for e in after] == [(e["id"], e["chunks"]) for e in before]


def test_empty_home_and_empty_question(tmp_path, samples_home):
    p = run_cli("ask", "anything", home=tmp_path / "empty")
    assert p.returncode == 1 and "empty" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("ask", "   ", home=samples_home)
    assert p.returncode == 2 and "empty question" in p.stderr
    p = run_cli("transcript", "nope", home=samples_home)
    assert p.returncode == 1 and "unknown episode" in p.stderr


def test_bad_inputs_are_named_and_the_batch_goes_on(tmp_path):
    """A dead local path and a malformed line fail with one line each; the good file is indexed."""
    src = SAMPLES / "experiment-tracking.mp3"
    shutil.copy(src, tmp_path / "talk.mp3")
    urls = tmp_path / "urls.txt"
    urls.write_text("talk.mp3\nmissing.mp3\nftp://example.org/x.mp3\ntalk.mp3\n")
    home = tmp_path / "home"
    p = run_cli("ingest", str(urls), home=home)
    assert p.returncode == 1
    errors = [ln for ln in p.stderr.splitlines() if "error:" in ln]
    assert any("missing.mp3" in ln for ln in errors)
    assert any("line 3" in ln and "ftp" in ln for ln in errors)
    assert "Traceback" not in p.stderr
    eps = _episodes(home)
    assert len(eps) == 1 and eps[0]["status"] == "indexed"


@pytest.mark.parametrize("cmd", [[], ["ingest"], ["list"], ["transcript"], ["ask"], ["eval"],
                                 ["eval", "retrieval"], ["eval", "asr"]])
def test_every_command_has_help(cmd):
    p = run_cli(*cmd, "--help", check=True)
    assert "Usage" in p.stdout and len(p.stdout) > 200


def test_python_m_and_usage_errors():
    p = run_cli("ingest")
    assert p.returncode == 2
    p = run_cli("ask")
    assert p.returncode == 2
