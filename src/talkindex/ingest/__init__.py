"""Ingest: the pipeline from sources to an index, housekeeping, doctor."""
