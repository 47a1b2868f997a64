"""Quality guard for the speed work: WER of the pipeline's transcriber vs raw faster-whisper.

Same model and settings (tiny.en, int8, cpu_threads=2, beam 1, VAD) on the English fixture clips
with exact human references (talkindex.eval.evaluate's selection and normalisation). Rows:
  raw         WhisperModel.transcribe(f, beam_size=1, vad_filter=True)  (the baseline)
  pipeline    talkindex.transcripts.asr.Transcriber defaults (word timestamps, no conditioning)
  windowed    the same with window_s=20 s (forces the long-episode path on these short clips)
  batched-N   BatchedInferencePipeline, batch_size N (`ingest --batch-size N`)
Usage:

    PYTHONPATH=src python benchmarks/bench_wer.py [--batch 8] [--reps 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
MANIFEST = ROOT.parent / "shared" / "fixtures" / "speech_manifest.json"


def clips() -> list[tuple[Path, str]]:
    from talkindex.eval.evaluate import _exact_reference

    out = []
    for c in json.loads(MANIFEST.read_text()):
        if c.get("language", "en") == "en" and _exact_reference(c):
            ref = c.get("transcript_text") or (MANIFEST.parent / c["transcript"]).read_text()
            out.append((MANIFEST.parent / c["file"], ref))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, action="append", default=None)
    a = ap.parse_args()
    from faster_whisper import WhisperModel

    from talkindex.eval.evaluate import normalize, wer_counts
    from talkindex.transcripts.asr import TranscribeOptions, Transcriber, resolve_model

    cs = clips()
    raw_model = WhisperModel(resolve_model("tiny.en"), device="cpu", compute_type="int8", cpu_threads=2)

    def raw(f: Path) -> str:
        segs, _ = raw_model.transcribe(str(f), beam_size=1, vad_filter=True)
        return " ".join(s.text for s in segs)

    def pipe(**kw):
        tr = Transcriber(TranscribeOptions(device="cpu", cpu_threads=2, **kw))
        tr.load()
        return lambda f: " ".join(s.text for s in tr("x", f).segments)

    systems = {"raw": raw, "pipeline": pipe(), "windowed": pipe(window_s=20.0)}
    for b in a.batch or [8]:
        systems[f"batched-{b}"] = pipe(batch_size=b)
    for f, _ in cs[:1]:
        for fn in systems.values():
            fn(f)  # warm-up
    res = {k: {"errors": 0, "words": 0, "seconds": 0.0} for k in systems}
    for f, ref_text in cs:  # interleaved per clip
        ref = normalize(ref_text)
        for name, fn in systems.items():
            t0 = time.perf_counter()
            hyp = fn(f)
            res[name]["seconds"] += time.perf_counter() - t0
            res[name]["errors"] += wer_counts(ref, normalize(hyp))
            res[name]["words"] += len(ref)
    print(f"{len(cs)} clips, {res['raw']['words']} words (tiny.en int8, beam 1, VAD, 2 threads)")
    for name, r in res.items():
        print(f"  {name:<12} WER {r['errors'] / r['words']:.3f}   time {r['seconds']:.1f} s"
              f"   ({r['seconds'] / res['raw']['seconds']:.2f}x raw)")


if __name__ == "__main__":
    main()
