"""The few exceptions a user can see. Each message is one line that names the input and what to do."""

from __future__ import annotations


class TalkindexError(Exception):
    """Base class: the CLI turns these into one line on stderr and exit status 1."""

    exit_code = 1


class UsageError(TalkindexError):
    """The user asked for something malformed (empty question, unknown option value)."""

    exit_code = 2


class SourceError(TalkindexError):
    """An input (urls.txt line, feed item, media URL) could not be resolved or downloaded."""

    def __init__(self, input: str, reason: str):
        self.input = input
        self.reason = reason
        super().__init__(f"{input}: {reason}")


class TranscriptionError(TalkindexError):
    """Media that decodes to nothing usable (corrupt, not audio)."""


class NotFoundError(TalkindexError):
    """An episode, show or index the user named does not exist in this home."""


class BusyError(TalkindexError):
    """Another writer holds the home (a second `ingest`)."""


class HomeError(TalkindexError):
    """The home cannot be used as it is (a file, unwritable, damaged config, newer schema)."""

    exit_code = 2


class ModelError(UsageError):
    """A --model / --embedder / --device / --compute-type that cannot be loaded (found before any work)."""
