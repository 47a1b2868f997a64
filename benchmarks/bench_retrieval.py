"""Retrieval quality × latency table on a devset-format folder (issue: retrieval quality).

Ingests the set once (tiny.en, the real pipeline), then for each chunking configuration re-chunks and
re-embeds the *stored* transcripts (no re-transcription) and scores several search configurations:
R@1, R@5, MRR@10, share of questions whose first correct hit starts within 10 s of the answer, the
median |start error|, and warm ask latency per question.

    python benchmarks/bench_retrieval.py ../shared/fixtures/devset [--home DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from talkindex.api import Index  # noqa: E402
from talkindex.chunking import ChunkOptions  # noqa: E402
from talkindex.evaluate import score  # noqa: E402
from talkindex.pipeline import IngestOptions, Pipeline, WriterLock  # noqa: E402
from talkindex.serve import serve_directory  # noqa: E402

CHUNKINGS = {
    "30w/1s overlap": ChunkOptions(max_words=30, overlap_sentences=1),
    "45w/1s overlap (default)": ChunkOptions(max_words=45, overlap_sentences=1),
    "60w/1s overlap": ChunkOptions(max_words=60, overlap_sentences=1),
}
SEARCHES = {
    "dense, chunk start": dict(mode="dense", sentence_weight=0.0, precise=False),
    "dense, window only": dict(mode="dense", sentence_weight=0.0),
    "dense + sentence (multi-granularity)": dict(mode="dense"),
    "keyword BM25 words": dict(mode="keyword", keyword_field="text"),
    "keyword BM25 char-grams": dict(mode="keyword"),
    "hybrid words BM25": dict(keyword_field="text"),
    "hybrid char-gram BM25 (default)": dict(),
    "hybrid default, no dedupe": dict(dedupe=False),
}


def rechunk(src: Path, dst: Path, chunk: ChunkOptions) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("vectors", "media"))
    p = Pipeline(dst, IngestOptions(chunk=chunk))
    with p.store.connect() as con:
        con.execute("UPDATE episodes SET status = 'transcribed' WHERE status = 'indexed'")
    with WriterLock(p.layout.lock):
        p.reconcile()
        p._finish()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("devset", type=Path)
    ap.add_argument("--home", type=Path, help="an already ingested home of this set (skips the ingest)")
    args = ap.parse_args()
    import json

    qs = json.loads((args.devset / "questions.json").read_text())
    truth = json.loads((args.devset / "truth.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="bench-retrieval-"))
    base = args.home
    if base is None:
        base = work / "base"
        with serve_directory(args.devset) as url:
            Index(base).ingest([f"{url}/feed.xml"])
    print(f"{'chunking':<26} {'search':<38} {'R@1':>5} {'R@5':>5} {'MRR':>6} {'≤10s':>5} {'med|Δ|':>7} {'ask ms':>7}")
    for cname, chunk in CHUNKINGS.items():
        home = work / "c"
        rechunk(base, home, chunk)
        idx = Index(home)
        ep = {e["id"]: PurePosixPath(urlsplit(e["media_url"]).path).stem for e in idx.episodes()}
        for sname, kw in SEARCHES.items():
            idx.ask_many([qs[0]["query"]], k=10, **kw)  # warm
            t0 = time.perf_counter()
            res = [idx.ask(q["query"], k=10, **kw) for q in qs]
            ms = (time.perf_counter() - t0) * 1000 / len(qs)
            r = score(qs, truth, [[asdict(h) for h in hs] for hs in res], ep)["overall"]
            print(f"{cname:<26} {sname:<38} {r['r@1']:>5.2f} {r['r@5']:>5.2f} {r['mrr@10']:>6.3f} "
                  f"{r['within_10s']:>5.2f} {r['start_error_median'] or 0:>7.2f} {ms:>7.1f}", flush=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
