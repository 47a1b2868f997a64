"""A failure budget per host: after HOST_FAILURE_LIMIT consecutive failed fetches from one host, the rest of
that host's episodes in this batch are not tried (one summary line instead of one error each).

Why: a feed of 2,000 items whose enclosures all answer 404 (or a platform answering 429) otherwise costs
2,000 requests, minutes, and 2,000 identical error lines. Untried episodes stay pending: a rerun tries them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..records import Episode

HOST_FAILURE_LIMIT = 5


def host_of(ep: Episode) -> str:
    """The host an episode's media comes from ("" for a local file: never budgeted)."""
    if ep.local:
        return ""
    try:
        return (urlsplit(ep.media_url or ep.webpage_url or "").hostname or "").lower()
    except ValueError:
        return ""


@dataclass
class HostBudget:
    limit: int = HOST_FAILURE_LIMIT
    streak: Counter = field(default_factory=Counter)  # consecutive failures per host
    last: dict = field(default_factory=dict)  # host → the last failure's reason
    skipped: Counter = field(default_factory=Counter)  # host → episodes not tried

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
        """One line per host whose episodes were left untried."""
        return [f"{host}: {n} more episode(s) not tried after {self.limit} consecutive failures "
                f"(last: {self.last.get(host, '?')}); they stay pending, rerun to try them"
                for host, n in self.skipped.items()]
