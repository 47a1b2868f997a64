"""Keeping a home consistent: the crash/damage repairs the pipeline runs before each batch and that
`doctor --repair` calls. The `Pipeline` builds one over its own store, vectors and keyword index and
hands it its writer path (`index_episode`), so every repair goes through the one writer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..home import Layout
from ..index.bm25 import KeywordIndex
from ..index.npzrows import NPZ_ERRORS
from ..index.store import Store
from ..index.vectors import VectorIndex
from ..records import Status, Transcript

log = logging.getLogger("talkindex")


@dataclass
class Housekeeping:
    """Repairs over one home's parts; `index_episode(id, transcript)` re-indexes an episode from its
    stored transcript (the pipeline's writer), `progress(event, **data)` reports warnings."""

    layout: Layout
    store: Store
    vectors: VectorIndex
    keywords: KeywordIndex
    index_episode: Callable[[str, Transcript], int]
    progress: Callable[..., None]

    def reconcile(self) -> None:
        """Bring DuckDB and FAISS into agreement after a crash or damage, without re-transcribing.

        - damaged vectors (a bad manifest or segment) are rebuilt from the stored embeddings;
        - vectors whose chunk no longer exists (a crash between re-chunking and indexing) are dropped;
        - 'transcribed' episodes whose chunks are all in FAISS are marked indexed;
        - other 'transcribed' episodes are (re)indexed from their stored transcript."""
        import shutil

        why = self.vectors.damaged()
        if why:
            n = self.rebuild_vectors()
            msg = f"{self.layout.home}: {why}; rebuilt the vector index from stored embeddings ({n} vectors)"
            log.warning("%s", msg)
            self.progress("warning", message=msg)
        why = self.keywords.damaged()
        if why or not self.keywords.exists():
            n = self.rebuild_keywords()
            if why:
                msg = f"{self.layout.home}: {why}; rebuilt it from the stored chunks ({n} chunks)"
                log.warning("%s", msg)
                self.progress("warning", message=msg)
        self.vectors.gc()
        self.keywords.gc()
        for stale in self.layout.media.glob(".dl-*"):  # partial downloads of a killed run (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        for stale in [*self.layout.home.glob("episodes/*/*"), *self.layout.home.glob(".*.tmp")]:
            if ".tmp" in stale.name and stale.is_file():  # temp files of a write cut short (a full disk)
                stale.unlink(missing_ok=True)
        self.drop_orphans()
        pending = self.store.transcribed_chunks()
        in_faiss = set(self.vectors.ids().tolist())
        in_keywords = set(self.keywords.ids().tolist())
        done, redo = [], []
        for eid, cids in pending.items():
            if cids and all(c in in_faiss for c in cids):
                missing = [c for c in cids if c not in in_keywords]
                if missing:  # a crash between the vectors and the keyword segment: add just that
                    ids, texts = self.store.chunk_texts([eid])
                    keep = set(missing)
                    self.keywords.add([i for i in ids if i in keep], [t for i, t in zip(ids, texts) if i in keep])
                done.append(eid)
            else:
                redo.append(eid)
        self.store.mark_indexed(done)
        for i, eid in enumerate(redo):
            self.progress("reindex", done=i, total=len(redo))
            try:
                t = Transcript.from_json(self.layout.transcript(eid).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self.store.drop_derived(eid, Status.PENDING)  # artifact lost: transcribe again
                continue
            self.index_episode(eid, t)
        if redo:
            self.progress("reindex", done=len(redo), total=len(redo))
            self.drop_orphans()  # re-indexing gave those episodes new chunk ids
        self.derive_chapters()
        self.store.prepare_readers()

    def derive_chapters(self) -> int:
        """Detect the chapters of indexed episodes that have none recorded (homes indexed before chapter
        detection) from their stored sentences and sentence vectors: nothing is transcribed or embedded
        again. Returns how many episodes got chapters."""
        from ..transcripts.detect import detect_chapters

        n = 0
        for eid in self.store.unchaptered():
            starts, texts, duration = self.store.sentence_rows(eid)
            try:
                with np.load(self.layout.embeddings(eid)) as z:
                    vecs = z["sent_vecs"].astype(np.float32)
            except NPZ_ERRORS:
                continue  # doctor names a damaged embeddings file; its re-embedding detects them
            if len(vecs) != len(texts):
                continue
            self.store.set_chapters(eid, detect_chapters(np.asarray(starts), texts, vecs, duration))
            n += 1
        return n

    def drop_orphans(self) -> None:
        """Drop vectors and keyword entries whose chunk no longer exists (replaced chunks, crashes)."""
        live = self.store.live_chunk_ids()
        if set(self.vectors.ids().tolist()) - live:
            self.vectors.compact(live_ids=live)
        if set(self.keywords.ids().tolist()) - live:
            self.keywords.compact(live_ids=live)

    def rebuild_vectors(self) -> int:
        """One FAISS segment from every indexed episode's stored embeddings; episodes without usable
        ones go back to 'transcribed' (reconcile re-embeds them). Returns the vectors written."""
        snap = self.store.snapshot()
        ids_l, vecs_l, redo = [], [], []
        for eid, ep in snap["episodes"].items():
            cids = snap["chunks"].get(eid, [])
            if ep["status"] != Status.INDEXED or not cids:
                continue
            got = self.stored_embeddings(eid, cids, snap["embedder"])
            if got is None:
                redo.append(eid)
                continue
            ids_l.append(got[0])
            vecs_l.append(got[1])
        ids = np.concatenate(ids_l) if ids_l else np.zeros(0, np.int64)
        vecs = np.concatenate(vecs_l).astype(np.float32) if vecs_l else np.zeros((0, 1), np.float32)
        self.vectors.rebuild(ids, vecs, snap["embedder"])
        self.store.requeue_indexed(redo)
        return int(len(ids))

    def rebuild_keywords(self) -> int:
        """The keyword index over every stored chunk (a home from before it existed, or damage)."""
        ids, texts = self.store.chunk_texts()
        self.keywords.rebuild(ids, texts)
        return len(ids)

    def stored_embeddings(self, eid: str, cids: list[int], embedder: str | None):
        """(chunk ids, vectors) from episodes/<id>/embeddings.npz when they match DuckDB, else None."""
        got = stored_embeddings(self.layout.embeddings(eid), cids, embedder)
        return None if isinstance(got, str) else got


def stored_embeddings(path: Path, cids: list[int], embedder: str | None) -> tuple[np.ndarray, np.ndarray] | str:
    """(chunk ids, vectors) of an episode's embeddings file when they match DuckDB's chunk ids `cids` and
    the index's `embedder`, else why not, in one line (doctor reports it; repairs re-embed)."""
    try:
        with np.load(path) as z:
            ids = z["chunk_ids"].astype(np.int64)
            vecs = z["chunk_vecs"]
            emb = str(z["embedder"]) if "embedder" in z else None
    except FileNotFoundError:
        return f"{path.name} is missing"
    except NPZ_ERRORS as e:
        return f"{path.name} is unreadable ({type(e).__name__})"
    if sorted(ids.tolist()) != sorted(cids) or len(vecs) != len(ids):
        return f"{path.name} holds other chunk ids than DuckDB"
    if embedder and emb and emb != embedder:
        return f"{path.name} holds {emb} vectors, the index uses {embedder}"
    return ids, vecs

