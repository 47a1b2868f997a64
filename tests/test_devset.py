"""Retrieval on ../shared/fixtures/devset: the RSS feed over loopback, real models, the scoring rule."""

from __future__ import annotations

import json

from conftest import ask_json, run_cli

from talkindex.eval.evaluate import answer_span


def _load(devset):
    qs = json.loads((devset / "questions.json").read_text())
    truth = json.loads((devset / "truth.json").read_text())
    return qs, truth


def test_feed_ingest_keeps_metadata(devset_home):
    home, info = devset_home
    eps = json.loads(run_cli("list", "--json", home=home, check=True).stdout)
    assert len(eps) == 4 and all(e["status"] == "indexed" and e["chunks"] > 5 for e in eps)
    assert sorted(e["published"] for e in eps) == ["2025-02-03", "2025-02-10", "2025-02-17", "2025-02-24"]
    assert all(e["id"].startswith("rss-") for e in eps)


def test_most_questions_find_their_answer_in_the_top5(devset_home, tmp_path):
    home, info = devset_home
    qs, truth = _load(info["dir"])
    f = tmp_path / "q.txt"
    f.write_text("\n".join(q["query"] for q in qs))
    p = run_cli("ask", "--file", str(f), "-k", "5", home=home, check=True)
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert len(lines) == len(qs)
    found = 0
    for q, line in zip(qs, lines):
        hits = line["hits"]
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
        for h in hits:
            assert h["link"].endswith(f"#t={int(h['start'])}")
        s0, s1, _ = answer_span(truth, q["episode"], q["answer_sentence_index"])
        found += any(h["link"].split("#")[0].endswith(f"/{q['episode']}.mp3") and h["start"] < s1 and h["end"] > s0
                     for h in hits)
    # measured 17/20 with the defaults (issue 12: R@5 0.85); 12 catches a broken stage without flapping on ASR noise
    assert found >= 12, f"only {found}/20 devset questions answered in the top 5"


def test_filters_on_the_devset(devset_home):
    home, _ = devset_home
    hits = ask_json(home, "canary release", "--since", "2025-02-20", "-k", "10")
    assert hits and all(h["published"] >= "2025-02-20" for h in hits)
    assert ask_json(home, "canary release", "--since", "2030-01-01") == []
    hits = ask_json(home, "annotation", "--show", "development mlops", "-k", "3")
    assert len(hits) == 3
