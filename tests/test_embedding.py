"""Ingest encodes passages through the machine's ONNX export (no torch) with the same vectors as torch."""

from __future__ import annotations

import numpy as np
from fast_home import fixture_transcripts

from talkindex.embed.onnx import export_query_encoder, load_query_encoder
from talkindex.embed.passages import Embedder, OnnxEmbedder, export_dir, onnx_embedder
from talkindex.transcripts import chunking


def test_onnx_passages_equal_torch(tmp_path):
    texts = []
    for _, t in fixture_transcripts():
        sents, chunks = chunking.chunk_transcript(t)
        texts += [c.text for c in chunks] + [s.text for s in sents[:5]]
    torch_emb = Embedder()
    out = export_query_encoder(torch_emb.model, tmp_path / "export")
    onnx = OnnxEmbedder(torch_emb.name, load_query_encoder(out))
    a, b = torch_emb.encode_passages(texts), onnx.encode_passages(texts)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert a.shape == b.shape and cos.min() >= 0.9999, cos.min()
    q = ["what is feature store drift"]
    assert float(torch_emb.encode_queries(q)[0] @ onnx.encode_queries(q)[0]) >= 0.9999


def test_export_dir_is_per_model(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKINDEX_CACHE", str(tmp_path))
    assert export_dir("all-MiniLM-L6-v2") != export_dir("all-mpnet-base-v2")
    assert export_dir("all-MiniLM-L6-v2").is_relative_to(tmp_path)
    assert onnx_embedder("all-MiniLM-L6-v2") is None  # nothing exported in this cache yet
