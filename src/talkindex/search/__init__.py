"""Search: hybrid retrieval over the index, row caching, deep links."""
