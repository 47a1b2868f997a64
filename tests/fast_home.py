"""A tiny home built in seconds from committed transcripts (no ASR): the fast test layer's index.

It goes through the public batch-engine surface (`Pipeline.ingest(resolve=, run=)` + `write()`), with
the real bundled embedder, so the store, vectors, keyword index and search are the product's own.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SAMPLES = ROOT / "data" / "samples"


def fixture_transcripts():
    """(Episode, Transcript) pairs of the committed sample transcripts, media paths pointing into this clone."""
    from talkindex.records import Episode, Transcript

    out = []
    for f in sorted(FIXTURES.glob("*.transcript.json")):
        text = f.read_text(encoding="utf-8")
        t = Transcript.from_json(text)
        ep = Episode.from_dict(json.loads(text)["episode"])
        local = SAMPLES / Path(ep.media_url).name
        ep.media_url = ep.source = str(local)
        ep.webpage_url = "file://" + str(local)
        out.append((ep, t))
    return out


def build_tiny_home(home: Path, embedder=None) -> Path:
    from talkindex.ingest.pipeline import Pipeline, Transcribed

    pairs = {ep.id: (ep, t) for ep, t in fixture_transcripts()}
    pipe = Pipeline(home, embedder=embedder)

    def resolve(src: str):
        return [pairs[src][0]]

    def run(todo, report):
        for ep in todo:
            pipe.write(Transcribed(ep, pairs[ep.id][1]), report)

    report = pipe.ingest(list(pairs), resolve=resolve, run=run)
    assert report.ok, report
    return home
