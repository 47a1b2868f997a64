"""The segmented BM25 index equals one big BM25 (brute force), across adds, merges and deletions."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from talkindex.index.bm25 import K1, B, KeywordIndex, terms_of

pytestmark = pytest.mark.fast
WORDS = ["feature", "store", "drift", "canary", "rollback", "latency", "embedding", "vector", "shadow", "deploy",
         "training", "serving", "skew", "model", "data"]


def brute(docs: dict[int, str], query: str, tokenizer: str = "chargram-4-6") -> dict[int, float]:
    bags = {i: Counter(terms_of(t, tokenizer)) for i, t in docs.items()}
    n = len(bags)
    avgdl = sum(sum(b.values()) for b in bags.values()) / n
    out = {}
    for i, b in bags.items():
        dl = sum(b.values())
        s = 0.0
        for q in set(terms_of(query, tokenizer)):
            df = sum(q in bb for bb in bags.values())
            if q in b:
                idf = math.log((n - df + 0.5) / (df + 0.5) + 1)
                s += idf * b[q] * (K1 + 1) / (b[q] + K1 * (1 - B + B * dl / avgdl))
        if s > 0:
            out[i] = s
    return out


def corpus(rng, n: int) -> dict[int, str]:
    return {100 + i: " ".join(rng.choice(WORDS, size=rng.integers(3, 30))) for i in range(n)}


def test_segments_equal_one_index(tmp_path):
    rng = np.random.default_rng(0)
    docs = corpus(rng, 60)
    ki = KeywordIndex(tmp_path / "kw")
    items = list(docs.items())
    for j in range(0, 60, 7):  # one segment per "episode"
        part = items[j:j + 7]
        ki.add([i for i, _ in part], [t for _, t in part])
    assert len(ki.manifest()["segments"]) <= 9
    for query in ("feature store drift", "canary rollback", "featured rift", "zzz"):
        want = brute(docs, query)
        got = dict(ki.search(query, k=100))
        assert set(got) == set(want)
        for i in want:
            assert got[i] == pytest.approx(want[i], rel=1e-4)
    ki.compact(full=True)
    assert len(ki.manifest()["segments"]) == 1
    assert dict(ki.search("feature store", 100)) == pytest.approx(dict(brute(docs, "feature store")), rel=1e-4)


def test_filter_is_exact_and_deletions_compact(tmp_path):
    rng = np.random.default_rng(1)
    docs = corpus(rng, 200)
    ki = KeywordIndex(tmp_path / "kw")
    ki.add(list(docs), list(docs.values()))
    allowed = {101, 150, 299}
    got = ki.search("drift", k=5, allowed=allowed)
    assert {i for i, _ in got} == {i for i in allowed if "drift" in docs[i]}
    live = set(list(docs)[:50])
    ki.compact(live_ids=live)
    assert set(ki.ids().tolist()) == live
    kept = {i: docs[i] for i in live}
    assert dict(ki.search("model data", 100)) == pytest.approx(brute(kept, "model data"), rel=1e-4)


def test_rebuild_and_damage(tmp_path):
    ki = KeywordIndex(tmp_path / "kw")
    assert ki.search("anything", 5) == [] and not ki.exists()
    ki.rebuild([1, 2], ["feature store drift", "canary deploy"])
    assert ki.search("canary", 5)[0][0] == 2
    (tmp_path / "kw" / "manifest.json").write_text("garbage")
    assert ki.damaged()
    ki.rebuild([1], ["feature store drift"])
    assert not ki.damaged() and ki.search("drift", 5)[0][0] == 1


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12), min_size=1, max_size=25),
       st.lists(st.sampled_from(WORDS), min_size=1, max_size=4), st.integers(1, 5))
def test_property_matches_brute_force(tmp_path_factory, texts, query, parts):
    docs = {i + 1: " ".join(t) for i, t in enumerate(texts)}
    ki = KeywordIndex(tmp_path_factory.mktemp("kw"))
    items = list(docs.items())
    step = max(1, len(items) // parts)
    for j in range(0, len(items), step):
        ki.add([i for i, _ in items[j:j + step]], [t for _, t in items[j:j + step]])
    q = " ".join(query)
    assert dict(ki.search(q, 1000)) == pytest.approx(brute(docs, q), rel=1e-4)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.sampled_from([1, 5, 50]))
def test_pruned_top_k_equals_brute_force(tmp_path_factory, seed, k):
    """Above PRUNE_MIN postings the top k comes from MaxScore pruning: same documents and scores as
    brute force (common words make long posting lists, rare ones short)."""
    rng = np.random.default_rng(seed)
    rare = ["quantile", "bayesian", "kubernetes", "sharding", "backfill", "lineage"]
    docs = {}
    for i in range(400):
        words = list(rng.choice(WORDS[:4], size=rng.integers(5, 25)))
        words += list(rng.choice(rare, size=rng.integers(0, 3)))
        docs[1000 + i] = " ".join(rng.permutation(words))
    ki = KeywordIndex(tmp_path_factory.mktemp("kw") / "kw", prune_min=50, check_min=5)
    items = list(docs.items())
    for j in range(0, 400, 150):
        ki.add([i for i, _ in items[j:j + 150]], [t for _, t in items[j:j + 150]])
    query = " ".join(rng.choice(WORDS[:4] + rare, size=rng.integers(1, 6)))
    want = sorted(brute(docs, query).items(), key=lambda x: -x[1])
    got = ki.search(query, k=k)
    assert len(got) == min(k, len(want))
    kth = want[min(k, len(want)) - 1][1] if want else 0
    wanted = dict(want)
    for cid, score in got:
        assert score == pytest.approx(wanted[cid], rel=1e-4)
        assert score >= kth * (1 - 1e-4)  # ties at the k-th score may be either document
