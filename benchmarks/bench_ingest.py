"""Ingest wall time vs the raw work: faster-whisper transcribing the same files plus the embedders'
own encoding of the same chunks and sentences (issue 23 goal 1: ingest <= 1.10x raw ASR + raw encoding).

Baseline (a new process): WhisperModel("tiny.en", int8, cpu_threads=2) loaded, then
model.transcribe(f, beam_size=1, vad_filter=True) over every file, segments consumed: the fastest
sequential raw faster-whisper settings. Candidate (a new process): `talkindex ingest` of the devset
RSS feed served on loopback into a fresh home: download, model loads, transcription, chunking,
embedding, DuckDB + fts, FAISS and the ONNX query-encoder export all included. Runs are
interleaved; medians and ratios printed (goal <= 1.10x). Usage:

    PYTHONPATH=src python benchmarks/bench_ingest.py [--reps 3] [--variant "--batch-size 8" ...]

Each --variant is extra `ingest` arguments, measured as one more interleaved candidate ("" = defaults).
Raw encoding (a new process): sentence-transformers loads each of the home's embedders and encodes the
home's chunk and sentence texts at batch 32 (texts taken from the first ingested home, so both sides
encode exactly the same strings). Seconds per audio hour are printed for each stage.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

from _synth import median  # noqa: E402

DEVSET = ROOT.parent / "shared" / "fixtures" / "devset"

RAW = """
import sys
from faster_whisper import WhisperModel
from talkindex.transcripts.asr import resolve_model
m = WhisperModel(resolve_model("tiny.en"), device="cpu", compute_type="int8", cpu_threads=2)
for f in sys.argv[1:]:
    segs, info = m.transcribe(f, beam_size=1, vad_filter=True)
    for s in segs:
        pass
"""


RAW_ENCODE = """
import json, sys
from sentence_transformers import SentenceTransformer
from talkindex.embed.passages import resolve_embedder
texts = json.load(open(sys.argv[1]))
for name in sys.argv[2:]:
    m = SentenceTransformer(resolve_embedder(name), device="cpu")
    m.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
"""


def home_texts(home: Path, out: Path) -> tuple[list[str], float]:
    """The chunk + sentence texts the home indexed (what ingest encoded), its embedders, audio seconds."""
    import duckdb

    from talkindex.home import Layout

    con = duckdb.connect(str(home / "talkindex.duckdb"), read_only=True)
    texts = [r[0] for r in con.execute("SELECT text FROM chunks UNION ALL SELECT text FROM sentences").fetchall()]
    audio = float(con.execute("SELECT sum(duration) FROM episodes").fetchone()[0] or 0.0)
    con.close()
    out.write_text(__import__("json").dumps(texts))
    return Layout(home).load_config().embedders, audio


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{shlex.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--set", type=Path, default=DEVSET, help="a directory with feed.xml and its media")
    ap.add_argument("--variant", action="append", default=None)
    a = ap.parse_args()
    variants = a.variant or [""]
    from talkindex.serve.files import serve_directory

    files = sorted(str(p) for p in a.set.glob("*.mp3"))
    print(f"{len(files)} files from {a.set}; {a.reps} interleaved rounds")
    times: dict[str, list[float]] = {"raw asr": [], "raw encode": [], **{v: [] for v in variants}}
    embedders, audio = [], 0.0
    with serve_directory(a.set) as base, tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        urls = Path(tmp) / "urls.txt"
        urls.write_text(f"{base}/feed.xml\n")
        texts = Path(tmp) / "texts.json"
        for r in range(a.reps):
            times["raw asr"].append(run([sys.executable, "-c", RAW, *files]))
            for v in variants:
                home = Path(tmp) / "home"
                shutil.rmtree(home, ignore_errors=True)
                times[v].append(run([sys.executable, "-m", "talkindex", "ingest", str(urls), "--home", str(home),
                                     *shlex.split(v)]))
                if not embedders:
                    embedders, audio = home_texts(home, texts)
            times["raw encode"].append(run([sys.executable, "-c", RAW_ENCODE, str(texts), *embedders]))
            print(f"  round {r + 1}: " + "  ".join(f"{k or 'default'} {t[-1]:.1f} s" for k, t in times.items()),
                  flush=True)
    asr, enc = median(times["raw asr"]), median(times["raw encode"])
    b = asr + enc
    per_h = 3600 / audio if audio else 0.0
    print(f"audio: {audio / 60:.1f} min; embedders: {' + '.join(embedders)}")
    print(f"raw faster-whisper (tiny.en int8, 2 threads, beam 1, VAD): median {asr:.1f} s "
          f"= {asr * per_h:.0f} s/audio h")
    print(f"raw encoding (sentence-transformers, batch 32, model loads included): median {enc:.1f} s "
          f"= {enc * per_h:.0f} s/audio h")
    for v in variants:
        m = median(times[v])
        print(f"talkindex ingest {v or '(defaults)'}: median {m:.1f} s = {m * per_h:.0f} s/audio h   "
              f"ratio {m / b:.2f}x raw ASR + raw encoding   (goal <= 1.10x)")


if __name__ == "__main__":
    main()
