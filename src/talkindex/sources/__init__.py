"""Sources: resolving inputs (URLs, feeds, files) into episodes, fetching media politely."""
