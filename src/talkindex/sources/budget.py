"""A failure budget per input and host: after HOST_FAILURE_LIMIT consecutive failed fetches from one host
among the episodes of one input (a feed, playlist or channel), the rest of them in this batch are not
tried (one summary line instead of one error each).

Why: a feed of 2,000 items whose enclosures all answer 404 (or a platform answering 429) otherwise costs
2,000 requests, minutes, and 2,000 identical error lines. Untried episodes stay pending: a rerun tries them.
Why per input: URLs the user typed one by one are each named on their own line, whatever their host.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..records import Episode
from ..textsafe import clip

HOST_FAILURE_LIMIT = 5


def host_of(ep: Episode) -> tuple[str, str] | None:
    """(the input the episode came from, the host its media comes from); None for a local file or a URL
    typed as an input of its own: never budgeted."""
    if ep.local or ep.source.strip() in (ep.media_url, ep.webpage_url):
        return None
    try:
        host = (urlsplit(ep.media_url or ep.webpage_url or "").hostname or "").lower()
    except ValueError:
        return None
    return (clip(ep.source.strip(), 300), host) if host else None


@dataclass
class HostBudget:
    limit: int = HOST_FAILURE_LIMIT
    streak: Counter = field(default_factory=Counter)  # (input, host) → consecutive failures
    last: dict = field(default_factory=dict)  # (input, host) → the last failure's reason
    skipped: Counter = field(default_factory=Counter)  # (input, host) → episodes not tried

    def exhausted(self, ep: Episode) -> bool:
        host = host_of(ep)
        return bool(host) and self.streak[host] >= self.limit

    def failed(self, ep: Episode, reason: str) -> None:
        host = host_of(ep)
        if host:
            self.streak[host] += 1
            self.last[host] = reason

    def succeeded(self, ep: Episode) -> None:
        self.streak.pop(host_of(ep), None)

    def skip(self, ep: Episode) -> None:
        self.skipped[host_of(ep)] += 1

    def summary(self) -> list[str]:
        """One line per input and host whose episodes were left untried, naming the input as typed."""
        return [f"{key[0]}: {n} more episode(s) not tried after {self.limit} consecutive failures from "
                f"{key[1]} (last: {self.last.get(key, '?')}); they stay pending, rerun to try them"
                for key, n in self.skipped.items()]
