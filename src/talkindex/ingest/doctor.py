"""`talkindex doctor`: check that DuckDB, FAISS and the files under a home agree, and repair.

`check(home)` only reads. `repair(home)` takes the ingest lock (so it never races an ingest) and
fixes what it can without re-transcribing:

- FAISS is rebuilt from `episodes/<id>/embeddings.npz` (chunk ids + float16 vectors, re-normalised)
  when segments are missing, unreadable, duplicated or disagree with DuckDB;
- episodes whose vectors cannot be recovered are re-embedded from their stored transcript
  (`Pipeline.reconcile`), and a lost `transcript.json` is rewritten from the DuckDB rows;
- stale vectors, stray temporary files and half-finished downloads are removed, counters fixed and
  the keyword index rebuilt.

What needs a new transcription (an episode interrupted before its transcript was stored) is left to
the next `talkindex ingest`, which retries it; doctor names it and exits 1 until then.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..home import Layout, WriterLock
from ..index.bm25 import KeywordIndex
from ..index.store import Store
from ..index.vectors import VectorIndex
from ..records import TRUSTED, Status, Transcript
from .housekeeping import stored_embeddings
from .pipeline import IngestOptions, Pipeline

log = logging.getLogger("talkindex")

STATUSES = tuple(s.value for s in Status)


@dataclass
class Problem:
    kind: str  # short stable code, e.g. "orphan-vectors"
    detail: str
    episode_id: str | None = None
    repairable: bool = True  # False: needs a new transcription (`talkindex ingest` retries it)
    path: str | None = None  # the file or folder under the home that a repair removes (stray, orphan)

    def __str__(self) -> str:
        hint = "" if self.repairable or not self.episode_id else " (rerun `talkindex ingest`)"
        return f"{self.kind}: {self.detail}{hint}"

    def to_dict(self) -> dict:
        return asdict(self)


def _sample(ids, n: int = 5) -> str:
    ids = sorted(ids)
    return ", ".join(map(str, ids[:n])) + (f", … ({len(ids)} in all)" if len(ids) > n else "")


class _State:
    """One consistent-enough snapshot of a home (DuckDB first, then FAISS)."""

    def __init__(self, home: Path):
        self.layout = Layout(Path(home))
        self.store = Store(self.layout)
        snap = self.store.snapshot()
        self.episodes = snap["episodes"]
        self.chunks: dict[str, list[int]] = snap["chunks"]
        self.n_segments = snap["n_segments"]
        self.embedder = snap["embedder"]
        self.next_chunk_id = snap["next_chunk_id"]
        self.keyword_ids = KeywordIndex(self.layout.keywords).ids().tolist() if self.layout.keywords.exists() \
            else None
        self.live = {c for ids in self.chunks.values() for c in ids}


def check(home: str | Path) -> list[Problem]:
    """Every inconsistency found in `home` (empty when clean). Reads only."""
    layout = Layout(Path(home).expanduser())
    if not layout.db.exists():
        if layout.vectors.exists() or layout.episodes_root.exists():
            return [Problem("missing-database", f"{layout.db} is missing but index files exist", repairable=False)]
        return [Problem("no-index", f"{layout.home}: no index here (run `talkindex ingest urls.txt`)",
                        repairable=False)]
    st = _State(layout.home)
    out: list[Problem] = []
    out += _check_vectors(st)
    out += _check_episodes(st)
    out += _check_files(st)
    out += _check_snapshot(layout)
    return out


def _check_snapshot(layout: Layout) -> list[Problem]:
    """The readers' snapshot (index/catalog.py): absent, stale or incomplete sends `ask` to DuckDB, where
    it waits whenever a writer holds the file. Repaired by republishing (rows files from the chunks table)."""
    from ..home import ingest_running
    from ..index import catalog

    cat = catalog.load(layout)
    if cat is None:
        why = f"{layout.catalog} is missing or unreadable"
    elif not cat.complete:
        why = f"{layout.catalog}: some indexed episodes have no rows.npz"
    elif cat.db_key != catalog.file_key(layout.db) and not ingest_running(layout):
        why = f"{layout.catalog} is older than the database (a writer stopped before publishing it)"
    else:
        return []
    return [Problem("reader-snapshot", why + "; questions read DuckDB and wait while a writer holds it")]


def _faiss_ids(st: _State, out: list[Problem]) -> np.ndarray | None:
    """All ids in the FAISS segments, or None when the manifest/segments cannot be read."""
    bad, segs = VectorIndex(st.layout.vectors).inspect()
    if bad:
        out.append(Problem("manifest-unreadable", bad))
        return None
    ok, ids = True, []
    if segs and st.embedder and segs[0]["embedder"] not in (None, st.embedder):
        out.append(Problem("embedder-mismatch", f"FAISS holds {segs[0]['embedder']} vectors, "
                                                f"the database says {st.embedder}"))
    for s in segs:
        if s["error"] == "missing":
            out.append(Problem("segment-missing", f"{s['path']} is named in the manifest but missing"))
            ok = False
        elif s["error"]:
            out.append(Problem("segment-unreadable", f"{s['path']}: {s['error']}"))
            ok = False
        else:
            if len(s["ids"]) != s["n"] or (s["manifest_dim"] and s["dim"] != s["manifest_dim"]):
                out.append(Problem("segment-mismatch", f"{s['path']}: holds {len(s['ids'])} vectors of dim "
                                                       f"{s['dim']}, manifest says {s['n']} of dim "
                                                       f"{s['manifest_dim']}"))
            ids.append(s["ids"])
    if not ok:
        return None
    return np.concatenate(ids) if ids else np.zeros(0, np.int64)


def _check_vectors(st: _State) -> list[Problem]:
    out: list[Problem] = []
    ids = _faiss_ids(st, out)
    if ids is None:
        return out
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        out.append(Problem("duplicate-vectors", f"chunk ids stored more than once in FAISS: "
                                                f"{_sample(uniq[counts > 1].tolist())}"))
    in_faiss = set(uniq.tolist())
    orphans = in_faiss - st.live
    if orphans:
        out.append(Problem("orphan-vectors", f"FAISS ids with no chunk in DuckDB: {_sample(orphans)}"))
    for eid, ep in st.episodes.items():
        if ep["status"] != "indexed":
            continue
        missing = [c for c in st.chunks.get(eid, []) if c not in in_faiss]
        if missing:
            out.append(Problem("missing-vectors", f"episode {eid}: {len(missing)} chunk(s) not in FAISS "
                                                  f"({_sample(missing)})", eid))
    return out


def _check_episodes(st: _State) -> list[Problem]:
    out: list[Problem] = []
    for eid, ep in st.episodes.items():
        status, cids = ep["status"], st.chunks.get(eid, [])
        if status not in STATUSES:
            out.append(Problem("unknown-status", f"episode {eid}: status {status!r}", eid))
            continue
        if status == "transcribed":
            out.append(Problem("unfinished-episode", f"episode {eid} was interrupted after transcription "
                                                     "(not searchable yet)", eid))
        elif status == "pending":
            out.append(Problem("not-transcribed", f"episode {eid} was never transcribed (an ingest was "
                                                  "interrupted or is running)", eid, repairable=False))
        if status not in TRUSTED and cids:
            out.append(Problem("untrusted-chunks", f"episode {eid} is {status} but has {len(cids)} chunk(s)", eid))
        if status in TRUSTED:
            tpath = st.layout.transcript(eid)
            try:
                Transcript.from_json(tpath.read_text(encoding="utf-8"))
            except FileNotFoundError:
                out.append(Problem("missing-transcript", f"episode {eid}: {tpath} is missing", eid,
                                   repairable=eid in st.n_segments or not cids))
            except (OSError, ValueError) as e:
                out.append(Problem("bad-transcript", f"episode {eid}: {tpath}: {type(e).__name__}", eid,
                                   repairable=eid in st.n_segments or not cids))
        if status == "indexed":
            if (ep["n_chunks"] or 0) != len(cids):
                out.append(Problem("chunk-count", f"episode {eid}: n_chunks says {ep['n_chunks']}, "
                                                  f"{len(cids)} chunk rows", eid))
            if cids:
                why = _embeddings_problem(st, eid, cids)
                if why:
                    out.append(Problem("stale-embeddings", f"episode {eid}: {why}", eid))
    if st.live and st.next_chunk_id is not None and max(st.live) >= st.next_chunk_id:
        out.append(Problem("chunk-id-counter", f"next_chunk_id {st.next_chunk_id} ≤ largest chunk id {max(st.live)} "
                                               "(ids could be reused)"))
    if st.live and st.keyword_ids is None:
        out.append(Problem("keyword-index-missing", "the BM25 keyword index has not been built"))
    elif st.keyword_ids is not None and set(st.keyword_ids) != {c for e, c in _trusted_chunks(st)}:
        out.append(Problem("keyword-index-stale", f"the BM25 index holds {len(set(st.keyword_ids))} chunk(s), "
                                                  f"DuckDB {len(set(_trusted_chunks(st)))} searchable ones"))
    return out


def _trusted_chunks(st: _State) -> list[tuple[str, int]]:
    return [(e, c) for e, ep in st.episodes.items() if ep["status"] in TRUSTED for c in st.chunks.get(e, [])]


def _embeddings_problem(st: _State, eid: str, cids: list[int]) -> str | None:
    got = stored_embeddings(st.layout.embeddings(eid), cids, st.embedder)
    return got if isinstance(got, str) else None


def _check_files(st: _State) -> list[Problem]:
    out: list[Problem] = []
    stray = VectorIndex(st.layout.vectors).stray_files()
    ep_root = st.layout.episodes_root
    if ep_root.exists():
        for d in ep_root.iterdir():
            if d.is_dir() and d.name not in st.episodes:
                out.append(Problem("orphan-artifacts", f"{d} belongs to no episode in the database", path=str(d)))
            elif d.is_dir():
                stray += [p for p in d.iterdir() if ".tmp" in p.name]
    if st.layout.media.exists():
        stray += list(st.layout.media.glob(".dl-*"))
    for p in sorted(stray):
        out.append(Problem("stray-file", f"{p} (left by an interrupted write)", path=str(p)))
    return out


# ---------------------------------------------------------------------------------------------
# repair


def repair(home: str | Path) -> list[str]:
    """Fix what can be fixed without re-transcribing; returns what was done (one line each).

    Raises BusyError while an ingest runs on the same home."""
    layout = Layout(Path(home).expanduser())
    if not layout.db.exists():
        return []
    done: list[str] = []
    layout.check_usable(write=True)
    with WriterLock(layout):
        pipe = Pipeline(layout.home, IngestOptions())
        pipe.store.init()
        problems = check(layout.home)
        kinds = {p.kind for p in problems}
        done += _remove_stray(layout, problems)
        n = pipe.store.purge_untrusted_chunks()
        if n:
            done.append(f"removed {n} chunk(s) of failed or pending episodes")
        nxt = pipe.store.fix_next_chunk_id()
        if nxt:
            done.append(f"next_chunk_id set to {nxt}")
        done += _repair_transcripts(pipe, problems)
        if kinds & {"manifest-unreadable", "segment-missing", "segment-unreadable", "segment-mismatch",
                    "duplicate-vectors", "missing-vectors", "embedder-mismatch", "stale-embeddings"}:
            done.append(f"rebuilt FAISS from stored embeddings ({pipe.housekeeping.rebuild_vectors()} vectors)")
        n = pipe.housekeeping.derive_chapters()
        if n:
            done.append(f"detected the chapters of {n} episode(s) indexed before chapter detection")
        before = {e for e, ep in pipe.store.snapshot()["episodes"].items() if ep["status"] == "transcribed"}
        pipe.housekeeping.reconcile()  # drops orphan vectors; indexes 'transcribed' episodes from their transcripts
        if "reader-snapshot" in kinds:  # reconcile's last step republished it
            done.append("published the readers' snapshot (catalog.json and the episodes' rows.npz)")
        after = pipe.store.statuses()
        for eid in sorted(before):
            status = after.get(eid)
            done.append(f"episode {eid}: " + ("re-embedded from its stored transcript" if status == "indexed"
                                              else f"now {status} (will be transcribed by the next ingest)"))
        if "orphan-vectors" in kinds:
            done.append("dropped FAISS vectors whose chunks no longer exist")
        n = pipe.store.fix_chunk_counts()
        if n:
            done.append(f"fixed the chunk count of {n} episode(s)")
        if kinds & {"keyword-index-missing", "keyword-index-stale"} or pipe.keywords.damaged():
            done.append(f"rebuilt the keyword index ({pipe.housekeeping.rebuild_keywords()} chunks)")
        pipe.housekeeping.drop_orphans()
        pipe.keywords.compact()
        pipe.vectors.compact()
        if not layout.config.exists():
            layout.save_config(pipe.config)
    return done


def _remove_stray(layout: Layout, problems: list[Problem]) -> list[str]:
    done = []
    for p in problems:
        if not p.path:
            continue
        path = Path(p.path)
        if layout.home not in path.parents:  # never touch anything outside the home
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        done.append(f"removed {path}")
    return done


def _repair_transcripts(pipe: Pipeline, problems: list[Problem]) -> list[str]:
    """Rewrite a lost or corrupt transcript.json from the DuckDB segment and word rows."""
    from ..fsutil import atomic_write_text

    done = []
    for p in problems:
        if p.kind not in ("missing-transcript", "bad-transcript") or not p.episode_id:
            continue
        eid = p.episode_id
        t, ep = pipe.store.transcript_rows(eid)
        if t is None:
            pipe.store.drop_derived(eid, Status.PENDING, "transcript lost")
            done.append(f"episode {eid}: transcript lost; it will be transcribed by the next ingest")
            continue
        pipe.layout.episode_dir(eid).mkdir(parents=True, exist_ok=True)
        atomic_write_text(pipe.layout.transcript(eid), t.to_json(ep))
        done.append(f"episode {eid}: rewrote transcript.json from the database")
    return done
