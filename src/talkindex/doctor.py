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

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .pipeline import IngestOptions, Layout, Pipeline, WriterLock, transcript_from_json, transcript_to_json
from .records import Episode, Segment, Transcript, Word
from .store import EPISODE_COLS, Store

log = logging.getLogger("talkindex")

TRUSTED = ("transcribed", "indexed")
STATUSES = ("pending", "transcribed", "indexed", "failed")


@dataclass
class Problem:
    kind: str  # short stable code, e.g. "orphan-vectors"
    detail: str
    episode_id: str | None = None
    repairable: bool = True  # False: needs a new transcription (`talkindex ingest` retries it)

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
        self.store = Store(self.layout.db)
        with self.store.connect(read_only=True) as con:
            cols = ["id", "status", "n_chunks", "embedder", "transcript_path"]
            self.episodes = {r[0]: dict(zip(cols, r, strict=True))
                             for r in con.execute("SELECT id, status, n_chunks, embedder, transcript_path "
                                                  "FROM episodes").fetchall()}
            self.chunks: dict[str, list[int]] = {}
            for eid, cid in con.execute("SELECT episode_id, id FROM chunks ORDER BY episode_id, idx").fetchall():
                self.chunks.setdefault(eid, []).append(int(cid))
            self.n_segments = dict(con.execute("SELECT episode_id, count(*) FROM segments GROUP BY 1").fetchall())
            row = con.execute("SELECT value FROM meta WHERE key = 'embedder'").fetchone()
            self.embedder = row[0] if row else None
            row = con.execute("SELECT value FROM meta WHERE key = 'next_chunk_id'").fetchone()
            self.next_chunk_id = int(row[0]) if row and str(row[0]).isdigit() else None
            has_fts = con.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = 'fts_main_chunks' "
                "AND table_name = 'docs'").fetchone()
            self.fts_docs = con.execute("SELECT count(*) FROM fts_main_chunks.docs").fetchone()[0] if has_fts else None
        self.live = {c for ids in self.chunks.values() for c in ids}


def check(home: str | Path) -> list[Problem]:
    """Every inconsistency found in `home` (empty when clean). Reads only."""
    layout = Layout(Path(home).expanduser())
    if not layout.db.exists():
        if layout.vectors.exists() or (layout.home / "episodes").exists():
            return [Problem("missing-database", f"{layout.db} is missing but index files exist", repairable=False)]
        return [Problem("no-index", f"{layout.home}: no index here (run `talkindex ingest urls.txt`)",
                        repairable=False)]
    st = _State(layout.home)
    out: list[Problem] = []
    out += _check_vectors(st)
    out += _check_episodes(st)
    out += _check_files(st)
    return out


def _faiss_ids(st: _State, out: list[Problem]) -> np.ndarray | None:
    """All ids in the FAISS segments, or None when the manifest/segments cannot be read."""
    import faiss

    vdir = st.layout.vectors
    try:
        m = json.loads((vdir / "manifest.json").read_text())
    except FileNotFoundError:
        return np.zeros(0, np.int64)
    except (OSError, ValueError) as e:
        out.append(Problem("manifest-unreadable", f"{vdir / 'manifest.json'}: {e}"))
        return None
    ok = True
    ids = []
    if st.embedder and m.get("embedder") not in (None, st.embedder):
        out.append(Problem("embedder-mismatch", f"FAISS holds {m.get('embedder')} vectors, "
                                                f"the database says {st.embedder}"))
    for s in m.get("segments", []):
        path = vdir / s["file"]
        if not path.is_file():
            out.append(Problem("segment-missing", f"{path} is named in the manifest but missing"))
            ok = False
            continue
        try:
            idx = faiss.read_index(str(path))
        except RuntimeError as e:
            out.append(Problem("segment-unreadable", f"{path}: {str(e).splitlines()[0][:200]}"))
            ok = False
            continue
        seg_ids = faiss.vector_to_array(idx.id_map).astype(np.int64)
        if len(seg_ids) != s.get("n") or (m.get("dim") and idx.d != m["dim"]):
            out.append(Problem("segment-mismatch", f"{path}: holds {len(seg_ids)} vectors of dim {idx.d}, "
                                                   f"manifest says {s.get('n')} of dim {m.get('dim')}"))
        ids.append(seg_ids)
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
                transcript_from_json(tpath.read_text(encoding="utf-8"))
            except FileNotFoundError:
                out.append(Problem("missing-transcript", f"episode {eid}: {tpath} is missing", eid,
                                   repairable=eid in st.n_segments or not cids))
            except (OSError, ValueError, KeyError, TypeError) as e:
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
    if st.live and st.fts_docs is None:
        out.append(Problem("keyword-index-missing", "the BM25 keyword index has not been built"))
    elif st.fts_docs is not None and st.fts_docs != len(st.live):
        out.append(Problem("keyword-index-stale", f"the BM25 index holds {st.fts_docs} chunk(s), "
                                                  f"DuckDB {len(st.live)}"))
    return out


def _embeddings_problem(st: _State, eid: str, cids: list[int]) -> str | None:
    path = st.layout.embeddings(eid)
    try:
        with np.load(path) as z:
            ids = z["chunk_ids"].astype(np.int64).tolist()
            n_vecs = len(z["chunk_vecs"])
            emb = str(z["embedder"]) if "embedder" in z else None
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (OSError, ValueError, KeyError) as e:
        return f"{path.name} is unreadable ({type(e).__name__})"
    if sorted(ids) != sorted(cids) or n_vecs != len(ids):
        return f"{path.name} holds other chunk ids than DuckDB"
    if st.embedder and emb and emb != st.embedder:
        return f"{path.name} holds {emb} vectors, the index uses {st.embedder}"
    return None


def _check_files(st: _State) -> list[Problem]:
    out: list[Problem] = []
    stray = list(st.layout.vectors.glob(".seg-*.tmp")) if st.layout.vectors.exists() else []
    try:
        named = {s["file"] for s in json.loads((st.layout.vectors / "manifest.json").read_text())["segments"]}
        stray += [p for p in st.layout.vectors.glob("seg-*.faiss") if p.name not in named]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    ep_root = st.layout.home / "episodes"
    if ep_root.exists():
        for d in ep_root.iterdir():
            if d.is_dir() and d.name not in st.episodes:
                out.append(Problem("orphan-artifacts", f"{d} belongs to no episode in the database"))
            elif d.is_dir():
                stray += [p for p in d.iterdir() if ".tmp" in p.name]
    if st.layout.media.exists():
        stray += list(st.layout.media.glob(".dl-*"))
    for p in sorted(stray):
        out.append(Problem("stray-file", f"{p} (left by an interrupted write)"))
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
    with WriterLock(layout.lock):
        embedder = Store(layout.db).get_meta("embedder")
        pipe = Pipeline(layout.home, IngestOptions(**({"embedder": embedder} if embedder else {})))
        pipe.store.init()
        problems = check(layout.home)
        kinds = {p.kind for p in problems}
        done += _remove_stray(layout, problems)
        with pipe.store.connect() as con:
            con.begin()
            # chunks of episodes nobody trusts can surface in keyword search: drop them
            n = con.execute("SELECT count(*) FROM chunks c JOIN episodes e ON e.id = c.episode_id "
                            "WHERE e.status NOT IN ('transcribed', 'indexed')").fetchone()[0]
            if n:
                for table in ("chunks", "sentences"):
                    con.execute(f"DELETE FROM {table} WHERE episode_id IN (SELECT id FROM episodes "
                                "WHERE status NOT IN ('transcribed', 'indexed'))")
                done.append(f"removed {n} chunk(s) of failed or pending episodes")
            top = con.execute("SELECT coalesce(max(id), 0) FROM chunks").fetchone()[0]
            nxt = con.execute("SELECT value FROM meta WHERE key = 'next_chunk_id'").fetchone()
            if top and (not nxt or not str(nxt[0]).isdigit() or int(nxt[0]) <= top):
                con.execute("INSERT OR REPLACE INTO meta VALUES ('next_chunk_id', ?)", [str(top + 1)])
                done.append(f"next_chunk_id set to {top + 1}")
            con.commit()
        done += _repair_transcripts(pipe, problems)
        if kinds & {"manifest-unreadable", "segment-missing", "segment-unreadable", "segment-mismatch",
                    "duplicate-vectors", "missing-vectors", "embedder-mismatch", "stale-embeddings"}:
            done += _rebuild_vectors(pipe)
        st = _State(layout.home)
        before = {e for e, ep in st.episodes.items() if ep["status"] == "transcribed"}
        pipe.reconcile()  # drops orphan vectors; indexes 'transcribed' episodes from their transcripts
        after = _State(layout.home)
        for eid in sorted(before):
            status = after.episodes.get(eid, {}).get("status")
            done.append(f"episode {eid}: " + ("re-embedded from its stored transcript" if status == "indexed"
                                              else f"now {status} (will be transcribed by the next ingest)"))
        if "orphan-vectors" in kinds:
            done.append("dropped FAISS vectors whose chunks no longer exist")
        with pipe.store.connect() as con:
            n = con.execute(
                "UPDATE episodes SET n_chunks = (SELECT count(*) FROM chunks c WHERE c.episode_id = episodes.id) "
                "WHERE status = 'indexed' AND n_chunks IS DISTINCT FROM "
                "(SELECT count(*) FROM chunks c WHERE c.episode_id = episodes.id)").fetchone()
            if n and n[0]:
                done.append(f"fixed the chunk count of {n[0]} episode(s)")
        if pipe.store.rebuild_fts() and kinds & {"keyword-index-missing", "keyword-index-stale"}:
            done.append("rebuilt the keyword index")
        pipe.vectors.compact()
    return done


def _remove_stray(layout: Layout, problems: list[Problem]) -> list[str]:
    done = []
    for p in problems:
        if p.kind not in ("stray-file", "orphan-artifacts"):
            continue
        path = Path(p.detail.split(" (left by", 1)[0].split(" belongs to", 1)[0])
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
    done = []
    for p in problems:
        if p.kind not in ("missing-transcript", "bad-transcript") or not p.episode_id:
            continue
        eid = p.episode_id
        t, ep = _transcript_from_db(pipe.store, eid)
        if t is None:
            pipe.store.set_status(eid, "pending", "transcript lost")
            with pipe.store.connect() as con:
                for table in ("chunks", "sentences"):
                    con.execute(f"DELETE FROM {table} WHERE episode_id = ?", [eid])
            done.append(f"episode {eid}: transcript lost; it will be transcribed by the next ingest")
            continue
        pipe.layout.episode_dir(eid).mkdir(parents=True, exist_ok=True)
        from .store import atomic_write_text

        atomic_write_text(pipe.layout.transcript(eid), transcript_to_json(t, ep))
        done.append(f"episode {eid}: rewrote transcript.json from the database")
    return done


def _transcript_from_db(store: Store, eid: str) -> tuple[Transcript | None, Episode | None]:
    with store.connect() as con:
        row = con.execute(f'SELECT {", ".join(chr(34) + c + chr(34) for c in EPISODE_COLS)}, language, model, '
                          "params, duration FROM episodes WHERE id = ?", [eid]).fetchone()
        if row is None:
            return None, None
        segs = con.execute('SELECT idx, start, "end", text, avg_logprob, no_speech_prob, compression_ratio '
                           "FROM segments WHERE episode_id = ? ORDER BY idx", [eid]).fetchall()
        words = con.execute('SELECT seg_idx, start, "end", text, probability FROM words WHERE episode_id = ? '
                            "ORDER BY seg_idx, idx", [eid]).fetchall()
        n_chunks = con.execute("SELECT count(*) FROM chunks WHERE episode_id = ?", [eid]).fetchone()[0]
    vals = dict(zip(EPISODE_COLS, row[: len(EPISODE_COLS)], strict=True))
    language, model, params, duration = row[len(EPISODE_COLS):]
    if not segs and n_chunks:  # chunks but no segments: the words are gone
        return None, None
    if not model:
        return None, None
    by_seg: dict[int, list[Word]] = {}
    for seg_idx, s, e, text, prob in words:
        by_seg.setdefault(seg_idx, []).append(Word(s, e, text, prob))
    segments = [Segment(s, e, text, lp, nsp, cr, by_seg.get(i, [])) for i, s, e, text, lp, nsp, cr in segs]
    if vals.get("published") is not None:
        vals["published"] = str(vals["published"])
    ep = Episode(**vals)
    return Transcript(eid, language or "en", float(duration or 0.0), segments, model,
                      json.loads(params) if params else {}), ep


def _rebuild_vectors(pipe: Pipeline) -> list[str]:
    """One new FAISS segment from the per-episode embeddings; episodes without usable ones are
    set back to 'transcribed' so that reconcile re-embeds them. The manifest rename commits."""
    from .vectors import build_index

    st = _State(pipe.layout.home)
    ids_l, vecs_l, redo = [], [], []
    for eid, ep in st.episodes.items():
        cids = st.chunks.get(eid, [])
        if ep["status"] != "indexed" or not cids:
            continue
        if _embeddings_problem(st, eid, cids):
            redo.append(eid)
            continue
        with np.load(pipe.layout.embeddings(eid)) as z:
            ids_l.append(z["chunk_ids"].astype(np.int64))
            vecs_l.append(z["chunk_vecs"].astype(np.float32))
    vi = pipe.vectors
    vi.dir.mkdir(parents=True, exist_ok=True)
    try:
        m = vi.manifest()
    except (OSError, ValueError):
        m = {}
    seq = int(m.get("seq") or 0) + 1
    for p in vi.dir.glob("seg-*.faiss"):  # a corrupt manifest: never reuse a file name
        try:
            seq = max(seq, int(p.stem.split("-")[1]) + 1)
        except (IndexError, ValueError):
            pass
    new = {"dim": None, "embedder": None, "segments": [], "seq": seq}
    n = 0
    if ids_l:
        import faiss

        ids = np.concatenate(ids_l)
        vecs = np.concatenate(vecs_l)
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)  # float16 round trip
        name = f"seg-{seq:06d}.faiss"
        tmp = vi.dir / f".{name}.tmp"
        faiss.write_index(build_index(vecs, ids, vi.factory), str(tmp))
        tmp.replace(vi.dir / name)
        new.update(dim=int(vecs.shape[1]), embedder=st.embedder,
                   segments=[{"file": name, "n": int(len(ids))}])
        n = len(ids)
    vi._write_manifest(new)
    vi._loaded.clear()
    vi._gc()
    done = [f"rebuilt FAISS from stored embeddings ({n} vectors)"]
    if redo:
        with pipe.store.connect() as con:
            con.execute("UPDATE episodes SET status = 'transcribed' WHERE list_contains(?, id)", [redo])
    return done
