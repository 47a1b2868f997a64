"""The index on disk: DuckDB store, vector and BM25 segment sets, keywords."""
