"""VectorIndex: segments, compaction and the size-chosen index type, checked against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from talkindex.index import vectors
from talkindex.index.vectors import VectorIndex, choose_factory

pytestmark = pytest.mark.fast


def _unit(rng, n, d=32):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute(vecs, ids, q, k):
    s = vecs @ q
    o = np.argsort(-s)[:k]
    return ids[o]


def test_add_compact_search_match_brute_force(tmp_path):
    rng = np.random.default_rng(0)
    vi = VectorIndex(tmp_path / "v")
    all_v, all_i = [], []
    for seg in range(vectors.MAX_SEGMENTS + 3):  # more segments than MAX_SEGMENTS: compaction merges
        v = _unit(rng, 50 + seg)
        i = np.arange(1000 * seg, 1000 * seg + len(v), dtype=np.int64)
        vi.add(i, v, "e")
        all_v.append(v)
        all_i.append(i)
    all_vecs, all_ids = np.concatenate(all_v), np.concatenate(all_i)
    q = _unit(rng, 5)
    for qq in q:
        assert vi.search(qq, 10)[1][0].tolist() == _brute(all_vecs, all_ids, qq, 10).tolist()
    assert vi.compact()
    assert len(vi.manifest()["segments"]) <= vectors.MAX_SEGMENTS
    assert vi.ntotal == len(all_ids)
    scores, got = vi.search(q, 10)  # many rows at once (multi-threaded path)
    assert got.tolist() == [_brute(all_vecs, all_ids, qq, 10).tolist() for qq in q]
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    live = set(all_ids[::2].tolist())
    assert vi.compact(live_ids=live)
    assert set(vi.ids().tolist()) == live
    assert set(vi.search(q[0], 20)[1][0].tolist()) <= live


def test_index_type_is_chosen_by_size(tmp_path, monkeypatch):
    assert choose_factory(10) == "Flat"
    assert choose_factory(vectors.HALF_MIN - 1) == "Flat"
    assert choose_factory(vectors.EXACT_MAX - 1) == "SQfp16"
    assert choose_factory(vectors.EXACT_MAX).startswith("IVF")
    assert choose_factory(10**6, "HNSW32,Flat") == "HNSW32,Flat"
    monkeypatch.setattr(vectors, "EXACT_MAX", 1500)
    rng = np.random.default_rng(1)
    centers = _unit(rng, 40)
    v = centers[rng.integers(0, 40, 4000)] + 0.3 * _unit(rng, 4000)
    v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    ids = np.arange(1, 4001, dtype=np.int64)
    vi = VectorIndex(tmp_path / "v")
    vi.add(ids, v, "e")
    seg = vi.manifest()["segments"][0]
    assert seg["factory"].startswith("IVF") and seg["factory"].endswith("SQfp16")
    base = (tmp_path / "v" / seg["file"]).stat()
    # adding a small episode writes one small Flat segment and leaves the large base untouched
    extra = _unit(rng, 30)
    vi.add(np.arange(5000, 5030, dtype=np.int64), extra, "e")
    assert [s["factory"] for s in vi.manifest()["segments"]] == [seg["factory"], "Flat"]
    assert not vi.compact()
    after = (tmp_path / "v" / seg["file"]).stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (base.st_ino, base.st_mtime_ns, base.st_size)
    all_vecs, all_ids = np.concatenate([v, extra]), np.concatenate([ids, np.arange(5000, 5030)])
    q = _unit(rng, 20)
    recall = np.mean([len(set(vi.search(qq, 10)[1][0]) & set(_brute(all_vecs, all_ids, qq, 10))) / 10 for qq in q])
    assert recall >= 0.8
    assert vi.search(extra[3], 1)[1][0][0] == 5003  # the new episode is searchable at once
    # a fresh reader (mmap) gets the same answers
    assert VectorIndex(tmp_path / "v").search(q[0], 10)[1].tolist() == vi.search(q[0], 10)[1].tolist()
    # a full compaction reads the IVF base back (direct map) and rebuilds one IVF segment
    assert vi.compact(full=True)
    assert [s["factory"] for s in vi.manifest()["segments"]] == [choose_factory(4030)]
    assert sorted(vi.ids().tolist()) == sorted(all_ids.tolist())
    assert vi.search(extra[3], 1)[1][0][0] == 5003


@pytest.mark.parametrize("factory", ["Flat", "HNSW16,Flat"])
def test_explicit_factory(tmp_path, factory):
    rng = np.random.default_rng(2)
    v = _unit(rng, 300)
    vi = VectorIndex(tmp_path / "v", factory=factory)
    vi.add(np.arange(300, dtype=np.int64), v, "e")
    assert vi.compact(full=True)
    assert vi.manifest()["segments"][0]["factory"] == factory
    assert vi.search(v[7], 1)[1][0][0] == 7


@pytest.mark.parametrize("factory", ["Flat", "IVF64,SQ8"])
def test_search_with_allowed_ids_filters_inside(tmp_path, factory):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.arange(1, 6001, dtype=np.int64)
    vi = VectorIndex(tmp_path / "v", factory=factory)
    vi.add(ids[:3000], x[:3000], "e")
    vi.add(ids[3000:], x[3000:], "e")
    q = x[10]
    allowed = ids[ids % 97 == 0]  # 61 chunks, most of them far from the query
    sc, got = vi.search(q, 20, allowed=allowed)
    got = got[0][got[0] >= 0]
    assert set(got.tolist()) <= set(allowed.tolist()) and len(got) > 0
    if factory == "Flat":  # exact: the 20 best allowed ones
        want = allowed[np.argsort(-(x[allowed - 1] @ q))[:20]]
        assert got.tolist() == want.tolist()
