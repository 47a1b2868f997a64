"""Immutable segments plus a manifest: how both the vectors (vectors.py) and the keyword index
(bm25.py) are stored.

A write adds a segment under a never-used name (`<prefix>-<seq>`, written to a hidden `.tmp` name
first and renamed), then rewrites the manifest atomically: the manifest rename is the commit point,
so a crash leaves at worst files the manifest does not name, which `unnamed()` finds for cleanup.
Compaction merges segments LSM style (`segments_to_merge`). What a segment holds is the caller's.
"""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST = "manifest.json"


class SegmentDir:
    """One folder of segments named `<prefix>-NNNNNN<suffix>` and its manifest."""

    def __init__(self, directory: Path, prefix: str, suffix: str = ""):
        self.dir = Path(directory)
        self.prefix = prefix
        self.suffix = suffix

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST

    def read_manifest(self) -> dict:
        """The manifest's JSON object: FileNotFoundError when absent, ValueError when unreadable or not an
        object with a `segments` list (each index checks its own entries)."""
        try:
            m = json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            raise
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"unreadable ({e})") from None
        if not isinstance(m, dict) or not isinstance(m.get("segments"), list):
            raise ValueError("not a manifest")
        return m

    def write_manifest(self, m: dict) -> None:
        """Commit `m` (atomic rename)."""
        from ..fsutil import atomic_write_text

        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.manifest_path, json.dumps(m, indent=1))

    def max_seq(self) -> int:
        """The largest sequence number any segment on disk uses (named or not)."""
        seq = 0
        for p in self.dir.glob(f"{self.prefix}-*"):
            try:
                seq = max(seq, int(p.name.split("-")[1].split(".")[0]))
            except (IndexError, ValueError):
                pass
        return seq

    def new_name(self, m: dict) -> str:
        """A segment name never used in this folder; advances `m["seq"]`."""
        m["seq"] = max(int(m.get("seq") or 0), self.max_seq()) + 1
        return f"{self.prefix}-{m['seq']:06d}{self.suffix}"

    def tmp(self, name: str) -> Path:
        """Where segment `name` is written before its rename."""
        return self.dir / f".{name}.tmp"

    def temporaries(self) -> list[Path]:
        """Segments an interrupted write left under their temporary names."""
        return list(self.dir.glob(f".{self.prefix}-*.tmp"))

    def unnamed(self, named: set[str]) -> list[Path]:
        """Segments on disk that `named` (the manifest's names) does not list."""
        return [p for p in self.dir.glob(f"{self.prefix}-*{self.suffix}") if p.name not in named]


MAX_SEGMENTS = 8  # segments an index keeps before a compaction merges the small ones (vectors and keywords)


def segments_to_merge(segs: list[dict], everything: bool, max_segments: int = MAX_SEGMENTS) -> list[dict]:
    """Which segments one compaction merges (LSM style): all of them when asked, none while there are
    few, else the small ones — a base much larger than them stays."""
    if not segs or (not everything and len(segs) <= max_segments):
        return []
    segs_sorted = sorted(segs, key=lambda s: s["n"])
    if everything:
        return segs_sorted
    merge, total = [], 0
    for s in segs_sorted:
        if merge and s["n"] > 4 * total and len(segs) - len(merge) < max_segments:
            break
        merge.append(s)
        total += s["n"]
    return merge
