"""Micro-batched query encoding (`search.batching`): concurrent callers share ONNX runs, and each gets
exactly the vector its question gets alone; a real `serve` answers concurrent clients as it answers one."""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote_plus

import numpy as np
import pytest

from talkindex.api import Index
from talkindex.requests import AskRequest
from talkindex.search.batching import QueryBatcher

QUESTIONS = ["what is feature store drift", "how do you monitor a model in production", "why",
             "which database did the speaker recommend for time series data and why was it chosen",
             "training data", "what did they say about latency budgets", "embeddings", "retries and backoff"]


def fake_vec(text: str) -> np.ndarray:
    return np.array([len(text), sum(map(ord, text))], np.float32)


def together(fn, args):
    """`fn(a)` for each of `args`, each from its own thread, all released at once; results in order."""
    n = len(args)
    gate = threading.Barrier(n)

    def one(a):
        gate.wait()
        return fn(a)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, args))


@pytest.mark.fast
def test_concurrent_callers_share_runs_and_get_their_own_vectors():
    runs = []

    def encode(texts):
        runs.append(list(texts))
        time.sleep(0.05)  # an ONNX run: the others queue meanwhile
        return np.stack([fake_vec(t) for t in texts])

    b = QueryBatcher(encode)
    texts = [f"question {i}" * (i + 1) for i in range(12)]
    out = together(b, texts)
    assert all(np.array_equal(v, fake_vec(t)) for v, t in zip(out, texts, strict=True))
    assert sorted(t for r in runs for t in r) == sorted(texts)  # each encoded once
    assert len(runs) < len(texts) and max(map(len, runs)) > 1
    assert not b._busy and not b._queue
    runs.clear()
    assert np.array_equal(b("alone"), fake_vec("alone")) and runs == [["alone"]]  # a lone caller: no wait


@pytest.mark.fast
def test_batch_size_is_capped_and_errors_reach_every_caller_of_the_run():
    runs = []

    def encode(texts):
        runs.append(list(texts))
        time.sleep(0.05)
        if "bad" in texts:
            raise ValueError("encoder failed")
        return np.stack([fake_vec(t) for t in texts])

    def call(t):
        try:
            return b(t)
        except ValueError as e:
            return e

    b = QueryBatcher(encode, max_batch=3)
    texts = ["bad"] + [f"q{i}" for i in range(9)]
    res = together(call, texts)
    assert max(map(len, runs)) <= 3
    failed = {t for r in runs if "bad" in r for t in r}
    for t, r in zip(texts, res, strict=True):
        assert isinstance(r, ValueError) if t in failed else np.array_equal(r, fake_vec(t)), t
    assert np.array_equal(b("fine"), fake_vec("fine"))  # the batcher is usable after an error


@pytest.mark.fast
def test_real_encoders_batched_equal_alone(tiny_home):
    """The ensemble's ONNX sessions: padding in a batch must not move a question's vector."""
    idx = Index(tiny_home)
    searcher = idx.searcher
    searcher.encode(["warm up"])
    searcher.encode(["second question: the throughput sessions are built"])
    alone = np.stack([searcher.encode([q])[0] for q in QUESTIONS])
    batch = searcher.encode(QUESTIONS)
    assert np.abs(batch - alone).max() < 1e-5
    concurrent = np.stack(together(lambda q: idx.encode(AskRequest(q)), QUESTIONS))
    assert np.abs(concurrent - alone).max() < 1e-5
    assert max(idx._batcher.batches) > 1  # they did share runs


def get_json(base: str, path: str):
    host, port = base.removeprefix("http://").rsplit(":", 1)
    con = http.client.HTTPConnection(host, int(port), timeout=60)
    con.request("GET", path)
    r = con.getresponse()
    body = r.read()
    con.close()
    return r.status, json.loads(body)


def test_serve_answers_concurrent_clients_as_it_answers_one(tiny_home):
    from test_server import serve

    paths = [f"/api/ask?q={quote_plus(q)}&k=3" for q in QUESTIONS] + ["/api/ask?q=drift&mode=keyword",
                                                                      "/api/ask?q=&k=3", "/api/ask?q=x&k=0"]
    with serve(tiny_home) as (base, _proc, _lines):
        one = [get_json(base, p) for p in paths]
        many = together(lambda p: get_json(base, p), paths * 2)
    assert [s for s, _ in one] == [200] * len(QUESTIONS) + [200, 400, 400]
    for (s, body), (s2, body2) in zip(one * 2, many, strict=True):
        assert s == s2
        if s != 200:
            assert body2["status"] == s and body2["error"] == body["error"]
            continue
        assert [h["episode_id"] for h in body2] == [h["episode_id"] for h in body]
        assert [h["start"] for h in body2] == [h["start"] for h in body]
        assert np.allclose([h["score"] for h in body2], [h["score"] for h in body], atol=1e-5)
