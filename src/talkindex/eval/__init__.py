"""Evaluation: retrieval and ASR quality."""
