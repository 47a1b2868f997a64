"""Embedding passages and questions (sentence-transformers, ONNX sessions)."""
