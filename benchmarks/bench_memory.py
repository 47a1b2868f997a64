"""Goal 3: peak RSS of `talkindex ingest` does not grow with episode length (3 h episode <= 1.5 GB).

Makes a long episode by concatenating the fixture speech (the devset episodes, looped) with ffmpeg,
then measures in new processes, peak RSS from wait4():
  - baseline: what faster-whisper itself holds for the whole file before decoding a single token
    (decode_audio + log-mel features of the whole file, i.e. `WhisperModel.transcribe`'s first step);
  - the same work done the way talkindex.transcripts.asr does it for long media (300 s windows);
  - talkindex ingest of the file into a fresh home (every stage: models, windows, embedding, index).
`--raw` also runs raw faster-whisper transcription end to end (slow: ~as long as the ingest).
Usage:

    PYTHONPATH=src python benchmarks/bench_memory.py [--hours 3] [--also-hours 0.5] [--raw]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FIX = ROOT.parent / "shared" / "fixtures"
CACHE = HERE / ".cache"

FEATURES = """
import sys
from faster_whisper import decode_audio
from faster_whisper.feature_extractor import FeatureExtractor
a = decode_audio(sys.argv[1])
f = FeatureExtractor()(a)
print(len(a) / 16000, f.shape)
"""
WINDOWS = """
import sys
from pathlib import Path
from faster_whisper.feature_extractor import FeatureExtractor
from talkindex.transcripts.asr import iter_audio_windows
fe, n = FeatureExtractor(), 0
for off, a in iter_audio_windows(Path(sys.argv[1]), 300.0):
    f = fe(a)
    n += len(a)
print(n / 16000)
"""
RAW = """
import sys
from faster_whisper import WhisperModel
from talkindex.transcripts.asr import resolve_model
m = WhisperModel(resolve_model("tiny.en"), device="cpu", compute_type="int8", cpu_threads=2)
segs, info = m.transcribe(sys.argv[1], beam_size=1, vad_filter=True)
for s in segs:
    pass
"""


def long_episode(hours: float) -> Path:
    """An MP3 (mono 16 kHz, 48 kbps) of about `hours` of real speech, cached."""
    out = CACHE / f"speech_{hours:g}h.mp3"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    parts = sorted((FIX / "devset").glob("dev*.mp3"))
    one = CACHE / "speech_once.wav"  # the devset episodes back to back (~15 min)
    ins = [x for p in parts for x in ("-i", str(p))]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *ins, "-filter_complex", f"concat=n={len(parts)}:v=0:a=1",
                    "-ac", "1", "-ar", "16000", str(one)], check=True, stderr=subprocess.DEVNULL)
    tmp = out.with_suffix(".tmp.mp3")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(one), "-t", str(hours * 3600),
                    "-ac", "1", "-ar", "16000", "-b:a", "48k", str(tmp)], check=True, stderr=subprocess.DEVNULL)
    os.replace(tmp, out)
    return out


def peak(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of a child process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:4]} failed:\n{err[-3000:]}")
    return ru.ru_maxrss / 1024, dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--also-hours", type=float, action="append", default=[],
                    help="shorter episodes to show that the peak does not grow")
    ap.add_argument("--raw", action="store_true", help="also run raw faster-whisper transcription")
    ap.add_argument("--no-ingest", action="store_true", help="only the decode + features rows (fast)")
    a = ap.parse_args()
    for h in sorted([*a.also_hours, a.hours]):
        f = long_episode(h)
        print(f"{h:g} h episode: {f} ({f.stat().st_size / 1e6:.0f} MB)", flush=True)
        rss, dt = peak([sys.executable, "-c", FEATURES, str(f)])
        print(f"  baseline faster-whisper decode_audio + features of the whole file: peak {rss:.0f} MB ({dt:.0f} s)",
              flush=True)
        rss, dt = peak([sys.executable, "-c", WINDOWS, str(f)])
        print(f"  talkindex windowed decode + features (300 s windows, no model): peak {rss:.0f} MB ({dt:.0f} s)",
              flush=True)
        if a.no_ingest:
            continue
        if a.raw:
            rss, dt = peak([sys.executable, "-c", RAW, str(f)])
            print(f"  raw faster-whisper transcribe: peak {rss:.0f} MB, {dt:.0f} s", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
            urls = Path(tmp) / "urls.txt"
            urls.write_text(f"{f}\n")
            rss, dt = peak([sys.executable, "-m", "talkindex", "ingest", str(urls), "--home", str(Path(tmp) / "h")])
        print(f"  talkindex ingest: peak {rss:.0f} MB, {dt:.0f} s   (goal <= 1536 MB)", flush=True)


if __name__ == "__main__":
    main()
