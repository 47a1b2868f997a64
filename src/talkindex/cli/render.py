"""Rich rendering of hits for people (the CLI's --json path never imports this)."""

from __future__ import annotations

import re

from rich.console import Console
from rich.text import Text

from ..records import Hit
from ..search.searcher import highlight_terms
from ..textsafe import line
from ..transcripts.formats import hms


def print_hits(hits: list[Hit], question: str, console: Console | None = None) -> None:
    """Hits for a terminal. Every remote string goes through textsafe.line: titles, shows, transcript text
    and links come from feeds and pages, and raw ESC/OSC/bidi characters would rewrite the terminal."""
    console = console or Console()
    terms = highlight_terms(question)
    pattern = re.compile(r"\b(" + "|".join(re.escape(t) for t in terms) + r")\w*", re.I) if terms else None
    for h in hits:
        head = Text()
        head.append(f"{h.rank}. ", style="bold")
        head.append(line(h.title or h.episode_id, 120), style="bold cyan")
        if h.show:
            head.append(f"  ·  {line(h.show, 60)}", style="dim")
        head.append(f"  ·  {hms(h.start)}", style="bold green")
        head.append(f"  (score {h.score:.4f})", style="dim")
        console.print(head)
        body = Text(line(h.text), style="default")
        if pattern:
            body.highlight_regex(pattern, style="bold yellow")
        console.print(body, soft_wrap=False)
        console.print(Text(line(h.link), style="underline blue"))
        console.print()
