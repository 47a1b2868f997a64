"""`talkindex eval`: the scoring rule, retrieval eval on a feed folder, ASR WER on real speech."""

from __future__ import annotations

import json
import shutil

from conftest import SAMPLES, run_cli, shared

from talkindex.eval.evaluate import (
    bootstrap_ci,
    compare,
    normalize,
    paired,
    question_row,
    score,
    sign_test_p,
    summarize,
    wer_breakdown,
    wer_counts,
)

TRUTH = {"e1": {"sentences": [{"i": i, "start": 10.0 * i, "end": 10.0 * i + 8} for i in range(6)]}}
QS = [{"qid": "q1", "episode": "e1", "answer_sentence_index": 3, "kind": "paraphrase"}]


def test_scoring_rule_counts_overlap_with_answer_plus_minus_one_sentence():
    hit = {"episode_id": "x", "start": 21.0, "end": 25.0}  # inside sentence 2 = answer - 1
    r = score(QS, TRUTH, [[hit]], {"x": "e1"})["overall"]
    assert r["r@1"] == 1 and r["mrr@10"] == 1 and r["start_error_median"] == 9.0 and r["within_10s"] == 1
    miss = {"episode_id": "x", "start": 50.0, "end": 59.0}  # sentence 5: outside ±1
    other = {"episode_id": "y", "start": 30.0, "end": 38.0}  # right time, wrong episode
    r = score(QS, TRUTH, [[miss, other, hit]], {"x": "e1", "y": "e2"})["overall"]
    assert r["r@1"] == 0 and r["r@5"] == 1 and abs(r["mrr@10"] - 1 / 3) < 1e-3


def test_intervals_and_paired_comparison():
    qs = [{"qid": f"q{i}", "kind": "k"} for i in range(20)]
    a = [question_row(q, 1 if i < 10 else None, 1.0 if i < 10 else None) for i, q in enumerate(qs)]
    b = [question_row(q, 1 if i < 16 else None, 1.0 if i < 16 else None) for i, q in enumerate(qs)]
    o = summarize(b)["overall"]
    lo, hi = o["ci95"]["r@5"]
    assert o["r@5"] == 0.8 and lo < 0.8 < hi and 0.5 < lo and hi <= 1.0
    assert bootstrap_ci(b) == bootstrap_ci(b)  # fixed seed: reproducible reports
    c = paired(a, b, "hit5")
    assert (c["wins"], c["losses"], c["ties"]) == (6, 0, 14) and c["p"] == sign_test_p(6, 0) == 0.0312
    assert compare(b, a)["rr"]["losses"] == 6
    # pooled sets: the same qid in two sets are two questions
    a2 = [{**r, "set": "s2"} for r in a]
    assert paired(a + a2, b + [{**r, "set": "s2"} for r in b], "hit5")["wins"] == 12
    assert sign_test_p(5, 5) == 1.0 and sign_test_p(0, 0) == 1.0 and sign_test_p(10, 2) < 0.05


def test_wer_breakdown_uses_standard_normalisation():
    b = wer_breakdown("Hello, World! It's me.", "hello word its me too")
    assert (b["words"], b["errors"]) == (4, 2)
    if b["substitutions"] is not None:  # jiwer installed
        assert (b["substitutions"], b["deletions"], b["insertions"]) == (1, 0, 1)


def test_wer():
    assert wer_counts(normalize("Hello, World!"), normalize("hello world")) == 0
    assert wer_counts(["a", "b", "c"], ["a", "x", "c", "d"]) == 2


def test_eval_retrieval_on_a_feed_folder(tmp_path):
    """A mini set in the devset layout, made from the bundled samples, scored end to end."""
    d = tmp_path / "set"
    d.mkdir()
    items = []
    for stem, t in json.loads((SAMPLES / "truth.json").read_text()).items():
        shutil.copy(SAMPLES / f"{stem}.mp3", d / f"{stem}.mp3")
        items.append(f"<item><title>{t['title']}</title><guid>{stem}</guid><pubDate>Mon, 03 Feb 2025 09:00:00 +0000"
                     f"</pubDate><enclosure url=\"http://127.0.0.1:PORT/{stem}.mp3\" type=\"audio/mpeg\" length=\"1\"/>"
                     "</item>")
    (d / "feed.xml").write_text(f"<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Samples</title>"
                                f"{''.join(items)}</channel></rss>")
    shutil.copy(SAMPLES / "truth.json", d / "truth.json")
    shutil.copy(SAMPLES / "questions.json", d / "questions.json")
    p = run_cli("eval", "retrieval", str(d), "--json", "--mode", "hybrid", "--mode", "dense", check=True)
    res = json.loads(p.stdout)
    for mode in ("hybrid", "dense"):
        r = res["modes"][mode]["overall"]
        assert r["n"] == 6 and r["r@5"] >= 0.5 and r["mrr@10"] >= 0.3  # measured 0.67 / 0.6
        assert set(res["modes"][mode]["by_kind"]) >= {"paraphrase", "keyword"}
    p = run_cli("eval", "retrieval", str(tmp_path))
    assert p.returncode == 2 and "not an eval set" in p.stderr


def test_eval_asr_on_real_speech(tmp_path):
    speech = shared("speech")
    clips = [c for c in json.loads((speech.parent / "speech_manifest.json").read_text())
             if c["file"].startswith(("speech/jfk", "speech/librispeech_dev"))]
    (tmp_path / "speech").symlink_to(speech)
    (tmp_path / "m.json").write_text(json.dumps(clips))
    res = json.loads(run_cli("eval", "asr", str(tmp_path / "m.json"), "--json", check=True).stdout)
    assert len(res["clips"]) == 2 and res["words"] > 40
    assert res["wer"] < 0.3 and 0 < res["rtf"] < 1


def test_ranking_core_that_the_benchmark_shares_with_search():
    """search.rank_candidates is pure: the retrieval benchmark tunes exactly what `ask` runs."""
    import numpy as np

    from talkindex.search.ranking import normalize_numbers, rank_candidates, start_sentence
    from talkindex.search.searcher import SearchOptions

    rows = {i: {"episode_id": ep, "start": 10.0 * i, "end": 10.0 * i + 12, "quality": 1.0, "first_sentence": 2 * i,
                "last_sentence": 2 * i + 1, "text": "t"} for i, ep in enumerate(["a", "a", "b", "b"])}
    rows[1]["start"], rows[1]["end"] = 100.0, 110.0  # a's windows do not overlap; b's two do
    dense = {0: 0.50, 1: 0.10, 2: 0.48, 3: 0.47}
    opts = SearchOptions(k=3, sentence_weight=0.0, episode_weight=0.0, dedupe=False)
    assert [r.chunk_id for r in rank_candidates("q", dense, None, rows, lambda r: None, opts)] == [0, 2, 3]
    # episode b matches twice, a once: b's best window now outranks a's single lucky one
    opts.episode_weight = 1.0
    assert rank_candidates("q", dense, None, rows, lambda r: None, opts)[0].chunk_id == 2
    # dedupe drops window 3 (overlaps the better window 2 of the same episode)
    opts.dedupe, opts.k = True, 4
    assert [r.chunk_id for r in rank_candidates("q", dense, None, rows, lambda r: None, opts)] == [2, 0, 1]
    sims = np.array([0.1, 0.9], np.float32)
    assert start_sentence(rows[1], sims, "best") == 3 and start_sentence(rows[1], sims, "before") == 2
    assert start_sentence(rows[1], sims, "chunk") is None
    assert normalize_numbers("three hundred and forty two stores, not seven and eight") == "342 stores, not 7 and 8"
    assert normalize_numbers("one of them took 70%") == "one of them took 70 percent"
