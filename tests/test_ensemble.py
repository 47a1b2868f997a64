"""The two-model index (issue 19): config lists the embedders, vectors are their joined unit vectors
(dot = mean of the models' cosines), a home gains a model by re-embedding, never re-transcribing, and a
machine without mpnet falls back to MiniLM alone with one line saying what to run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli
from fast_home import fixture_transcripts

from talkindex.api import Index
from talkindex.embed.passages import Embedder, Ensemble, passage_embedder
from talkindex.home import DEFAULT_EMBEDDER, DEFAULT_EMBEDDERS, IndexConfig, Layout, split_embedders
from talkindex.ingest.pipeline import IngestOptions, Pipeline
from talkindex.models import installed_path

needs_mpnet = pytest.mark.skipif(installed_path("all-mpnet-base-v2") is None,
                                 reason="mpnet not assembled: `talkindex models install mpnet` (make install does it)")


@pytest.mark.fast
def test_split_and_config_round_trip(tmp_path):
    assert split_embedders("a+b") == ["a", "b"]
    assert split_embedders(["a", "b+a", " c "]) == ["a", "b", "c"]
    cfg = IndexConfig().with_options(embedder=["x", "y"])
    assert cfg.embedders == ["x", "y"] and cfg.embedder == "x+y"
    assert IndexConfig().diff(cfg) == {"embed"}
    lay = Layout(tmp_path)
    # a schema-2 config (one `embedder`) reads as a one-model ensemble and is saved as schema 3
    (tmp_path / "config.json").write_text(json.dumps({"embedder": DEFAULT_EMBEDDER, "schema_version": 2}))
    old = lay.load_config()
    assert old.embedders == [DEFAULT_EMBEDDER]
    lay.save_config(old)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["embedders"] == [DEFAULT_EMBEDDER] and saved["schema_version"] == 3
    (tmp_path / "config.json").write_text(json.dumps({"embedders": "not-a-list"}))
    with pytest.raises(Exception, match="unreadable index config"):
        lay.load_config()


@needs_mpnet
def test_ensemble_dot_is_the_mean_of_the_models_cosines():
    texts = [t.segments[0].text for _, t in fixture_transcripts()]
    q = ["what is feature store drift"]
    minilm, mpnet = Embedder(DEFAULT_EMBEDDERS[0]), Embedder(DEFAULT_EMBEDDERS[1])
    pair = Ensemble([minilm, mpnet])
    p, qv = pair.encode_passages(texts), pair.encode_queries(q)[0]
    assert p.shape == (len(texts), pair.dim) == (len(texts), 384 + 768)
    assert np.allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-5)
    want = 0.5 * (minilm.encode_passages(texts) @ minilm.encode_queries(q)[0]
                  + mpnet.encode_passages(texts) @ mpnet.encode_queries(q)[0])
    assert np.allclose(p @ qv, want, atol=1e-5)
    assert isinstance(passage_embedder([DEFAULT_EMBEDDER]), type(passage_embedder([DEFAULT_EMBEDDER])))
    assert not isinstance(passage_embedder([DEFAULT_EMBEDDER]), Ensemble)  # one model: no wrapper


class NoTranscriber:
    def load(self):
        raise AssertionError("re-embedding must never transcribe")

    def __getattr__(self, name):
        raise AssertionError("re-embedding must never transcribe")


@needs_mpnet
def test_a_one_model_home_gains_the_second_by_re_embedding(tmp_path):
    home = tmp_path / "home"
    pipe = Pipeline(home, IngestOptions(embedder=DEFAULT_EMBEDDER))
    assert pipe.config.embedders == [DEFAULT_EMBEDDER]
    _ingest_fixtures(pipe)
    before = Index(home).ask("what is feature store drift", k=3)
    transcripts = {p.name: p.read_bytes() for p in (home / "episodes").glob("*/transcript.json")}
    events = []
    pipe2 = Pipeline(home, IngestOptions(embedder=list(DEFAULT_EMBEDDERS)), lambda e, **d: events.append((e, d)),
                     transcriber=NoTranscriber())
    report = pipe2.ingest([])
    assert report.ok
    assert Layout(home).load_config().embedders == list(DEFAULT_EMBEDDERS)
    assert [d["done"] for e, d in events if e == "reindex"] == [0, 1, 2, 3]  # the progress bar's steps
    assert {p.name: p.read_bytes() for p in (home / "episodes").glob("*/transcript.json")} == transcripts
    for f in (home / "episodes").glob("*/embeddings.npz"):
        with np.load(f) as z:
            assert z["chunk_vecs"].shape[1] == z["sent_vecs"].shape[1] == 384 + 768
            assert str(z["embedder"]) == "+".join(DEFAULT_EMBEDDERS)
    after = Index(home).ask("what is feature store drift", k=3)
    assert after[0].title == before[0].title == "Feature Stores and the Drift You Cannot See"


def _ingest_fixtures(pipe: Pipeline) -> None:
    from talkindex.ingest.pipeline import Transcribed

    pairs = {ep.id: (ep, t) for ep, t in fixture_transcripts()}

    def run(todo, report):
        for ep in todo:
            pipe.write(Transcribed(ep, pairs[ep.id][1]), report)

    assert pipe.ingest(list(pairs), resolve=lambda s: [pairs[s][0]], run=run).ok


def test_without_mpnet_a_new_home_uses_minilm_and_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKINDEX_MODELS", str(tmp_path / "no-models"))
    home = tmp_path / "home"
    events = []
    pipe = Pipeline(home, progress=lambda e, **d: events.append((e, d)))
    assert pipe.config.embedders == [DEFAULT_EMBEDDER]
    pairs = {ep.id: (ep, t) for ep, t in fixture_transcripts()}
    from talkindex.ingest.pipeline import Transcribed

    def run(todo, report):
        for ep in todo:
            pipe.write(Transcribed(ep, pairs[ep.id][1]), report)

    report = pipe.ingest(list(pairs), resolve=lambda s: [pairs[s][0]], run=run)
    warns = [d["message"] for e, d in events if e == "warning"]
    assert len(warns) == 1 and "talkindex models install mpnet" in warns[0], warns
    assert report.ok and Layout(home).load_config().embedders == [DEFAULT_EMBEDDER]
    assert Index(home).ask("what is feature store drift", k=1)
    # the saved config decides from now on: no second notice for this home
    events.clear()
    assert Pipeline(home, progress=lambda e, **d: events.append((e, d))).ingest([]).ok
    assert not [e for e, _ in events if e == "warning"]


def test_repeated_embedder_option_is_one_ensemble_through_the_cli(tmp_path):
    """`--embedder a --embedder b` is checked name by name before any work (a bad second name: exit 2)."""
    urls = tmp_path / "urls.txt"
    urls.write_text("# nothing\n")
    p = run_cli("ingest", str(urls), "--embedder", DEFAULT_EMBEDDER, "--embedder", "./nowhere/emb",
                home=tmp_path / "h")
    assert p.returncode == 2 and "--embedder ./nowhere/emb" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
