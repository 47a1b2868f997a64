"""Transcripts: existing (VTT/SRT/JSON/captions), ASR, chapters, language, decoding, sentences and windows."""
