"""Filters are applied inside retrieval: a filtered ask finds an episode's moments even when more than
1000 chunks of other episodes rank above them (the old post-filter over the top 1000 missed them)."""

from __future__ import annotations

import dataclasses

import numpy as np
from fast_home import fixture_transcripts

from talkindex import Index
from talkindex.embed.passages import Embedder
from talkindex.home import DEFAULT_EMBEDDER
from talkindex.ingest.pipeline import Pipeline, Transcribed
from talkindex.requests import IngestOptions

COPIES = 175  # × 6 chunks of the drift talk = 1050 chunks that outrank everything else for the query


class MemoEmbedder(Embedder):
    """The real bundled embedder, encoding each distinct text once (the copies share their texts)."""

    def __init__(self):
        super().__init__()
        self.memo: dict[str, np.ndarray] = {}

    def encode_passages(self, texts):
        todo = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if todo:
            self.memo.update(zip(todo, super().encode_passages(todo)))
        return np.stack([self.memo[t] for t in texts]) if texts else super().encode_passages(texts)


def test_filtered_ask_is_exact_beyond_the_top_1000(tmp_path):
    pairs = fixture_transcripts()
    drift = next(p for p in pairs if p[0].title.startswith("Feature Stores"))
    other = next(p for p in pairs if p[0].title.startswith("Shipping"))
    jobs = [Transcribed(*other)]
    for c in range(2):  # two long episodes, each the drift talk said COPIES / 2 times over
        ep = dataclasses.replace(drift[0], id=f"copy-{c}", title=f"Copy {c}", show="Copies")
        t, segs = drift[1], []
        for i in range(COPIES // 2 + 1):
            off = i * (t.duration + 5)
            segs += [dataclasses.replace(s, start=s.start + off, end=s.end + off, words=[
                dataclasses.replace(w, start=w.start + off, end=w.end + off) for w in s.words]) for s in t.segments]
        jobs.append(Transcribed(ep, dataclasses.replace(t, episode_id=ep.id, segments=segs,
                                                        duration=(COPIES // 2 + 1) * (t.duration + 5))))
    by_id = {j.episode.id: j for j in jobs}
    pipe = Pipeline(tmp_path, IngestOptions(embedder=DEFAULT_EMBEDDER), embedder=MemoEmbedder())  # MiniLM alone
    report = pipe.ingest(list(by_id), resolve=lambda s: [by_id[s].episode],
                         run=lambda todo, rep: [pipe.write(by_id[e.id], rep) for e in todo])
    assert report.ok
    idx = Index(tmp_path)
    assert idx.stats()["chunks"] >= 1000 + 6
    q = "what is feature store drift"
    assert all(h.episode_id.startswith("copy-") for h in idx.ask(q, k=10, mode="dense"))
    for mode in ("dense", "keyword", "hybrid"):
        hits = idx.ask(q, k=3, mode=mode, episode=other[0].id)
        assert hits and {h.episode_id for h in hits} == {other[0].id}, mode
    hits = idx.ask(q, k=3, show="talkindex samples")
    assert hits and {h.episode_id for h in hits} == {other[0].id}
