#!/usr/bin/env python3
"""Generate the bundled sample talks for talkindex (offline `make demo`).

Outputs (next to this script, or --root DIR):
  feature-stores.mp3, model-deployment.mp3, experiment-tracking.mp3
      small mono MP3s (16 kHz, 40 kbps), spoken by espeak-ng, ID3v2.3 tags
  truth.json      exact start/end seconds of every sentence + talk metadata
  questions.json  6 questions (2 per talk) in the devset format

Technique (same as shared/fixtures/devset/synth.py):
  each sentence: espeak-ng -v VOICE -s SPEED -w raw.wav TEXT (22.05 kHz)
  -> trim espeak's leading/trailing digital silence (10 ms kept)
  -> ffmpeg resample to 16 kHz mono s16
  sentences are joined with GAP_S of digital silence; start/end = sample counts / 16000,
  then the WAV master is encoded once to MP3 with ffmpeg/libmp3lame.
  Times refer to the MP3 as decoded by ffmpeg (LAME gapless header, no offset).

Standard library only; espeak-ng, ffmpeg and ffprobe are called with argument lists (no shell).
All text here is original (CC0). Usage: python3 make_samples.py [--root DIR] [--no-verify]
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from array import array

SR = 16000
GAP_S = 0.40          # silence between sentences
LEAD_S = 0.0          # silence before the first sentence
TAIL_S = 0.50         # silence after the last sentence
PAD_S = 0.01          # espeak silence kept at each edge of a sentence clip
MP3_BITRATE = "40k"
SHOW = "talkindex samples"
ALBUM = "talkindex samples: MLOps basics"
YEAR = "2026"
MAX_TOTAL_BYTES = 1_500_000

HERE = os.path.dirname(os.path.abspath(__file__))

TALKS = [
    {
        "id": "feature-stores",
        "title": "Feature Stores and the Drift You Cannot See",
        "voice": "en-us",
        "speed": 165,
        "sentences": [
            "Welcome to talkindex samples, today we talk about feature stores.",
            "A feature store is a shared place where teams define and serve the inputs that models use.",
            "It has an offline store for training data, and an online store for fast lookups at prediction time.",
            "The classic bug is training serving skew, where a feature is computed one way in a batch job "
            "and another way in the live service.",
            "Say the batch job averages purchases over thirty days, but the live service looks back seven days.",
            "The model then sees numbers it never saw in training, and accuracy quietly drops.",
            "A feature store reduces this risk, because both sides reuse one feature definition.",
            "But the data itself keeps changing over time, and that is called feature drift.",
            "Data drift means the inputs change, for instance when customers from a new country appear.",
            "Concept drift is different, because the link between inputs and the right answer changes.",
            "To monitor drift, compare each feature's distribution in production with the training window.",
            "A popular score is the population stability index, which splits values into buckets "
            "and adds up how much each bucket's share moved.",
            "As a rule of thumb, below one tenth is stable, and above one quarter deserves an alert.",
            "Drift alone does not prove the model is wrong, so pair it with real outcomes once labels arrive.",
            "Thanks for listening, and go check your features.",
        ],
    },
    {
        "id": "model-deployment",
        "title": "Shipping Models Without Fear",
        "voice": "en-gb",
        "speed": 160,
        "sentences": [
            "Hello, this is talkindex samples, and this episode is about shipping machine learning models safely.",
            "Everything starts with a model registry, a catalogue that stores every trained model "
            "with its version, its metrics, and its owner.",
            "When a model is promoted in the registry, the deployment pipeline picks it up automatically.",
            "That pipeline is continuous integration and continuous delivery for machine learning, "
            "so it tests the data and the model as well as the code.",
            "The safest first step is a shadow deployment.",
            "In shadow mode, the new model receives a copy of real requests, but its answers are only logged "
            "and never shown to users.",
            "This lets you compare predictions and latency with the current model at no risk at all.",
            "Next comes a canary release, where a small slice of the traffic, perhaps five percent, "
            "is served by the new model.",
            "If error rates and business numbers stay healthy, the slice grows step by step until it reaches everyone.",
            "If anything looks wrong, you roll back.",
            "A rollback should be a single command that points the traffic at the previous version stored in the registry.",
            "Practice rollbacks before you need them, because a rollback that nobody has ever tried "
            "usually fails in the middle of the night.",
            "Finally, record who approved each release, so that you can explain later why a model went live.",
            "That is all for today, thanks for listening.",
        ],
    },
    {
        "id": "experiment-tracking",
        "title": "Reproducible Experiments, From Notebook to Pipeline",
        "voice": "en-us+f3",
        "speed": 160,
        "sentences": [
            "Welcome back to talkindex samples, today the topic is experiment tracking.",
            "An experiment tracker records every training run, with its code version, parameters, and metrics.",
            "Without one, the best model of the month becomes a mystery that nobody can rebuild.",
            "Reproducibility means someone else can run the same steps on the same data and get the same result.",
            "Code is easy to version with git, but data is larger and changes all the time.",
            "Data versioning tools keep a small pointer file in git, and the large files in cloud storage.",
            "Lineage connects the pieces, showing which dataset and which code produced which model.",
            "When a model misbehaves, lineage lets you trace it back to the exact rows it was trained on.",
            "Notebooks are great for exploring, but they hide state, because cells can run in any order.",
            "A result that depends on a cell you ran twice by accident cannot be reproduced by anyone.",
            "That is why notebook work should graduate into pipelines, where each step has clear inputs and outputs.",
            "A pipeline can be rerun from scratch, tested, and scheduled.",
            "Also fix random seeds and pin library versions, since both can silently change results.",
            "Thanks for listening, and remember to track every run.",
        ],
    },
]

# (query, episode, anchor text that must occur in exactly one sentence of the corpus, kind)
QUESTIONS = [
    ("what is feature store drift", "feature-stores",
     "that is called feature drift", "keyword"),
    ("At what score should I get worried that a feature has shifted?", "feature-stores",
     "deserves an alert", "paraphrase"),
    ("how does a shadow deployment work", "model-deployment",
     "In shadow mode", "keyword"),
    ("How do I quickly undo a bad model release?", "model-deployment",
     "a single command that points the traffic", "paraphrase"),
    ("Why should notebook code be turned into pipelines?", "experiment-tracking",
     "graduate into pipelines", "conceptual"),
    ("How can I find out which data a broken model learned from?", "experiment-tracking",
     "trace it back to the exact rows", "paraphrase"),
]


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({r.returncode}): {r.stderr.decode(errors='replace')[-800:]}")
    return r


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, path
        rate = w.getframerate()
        a = array("h")
        a.frombytes(w.readframes(w.getnframes()))
    if sys.byteorder == "big":
        a.byteswap()
    return rate, a


def write_wav(path, rate, samples):
    a = array("h", samples)
    if sys.byteorder == "big":
        a.byteswap()
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(a.tobytes())


def synth_sentence(text, voice, speed, tmpdir, tag):
    """One sentence -> 16 kHz mono samples, espeak's edge silence trimmed."""
    raw = os.path.join(tmpdir, tag + "_raw.wav")
    trimmed = os.path.join(tmpdir, tag + "_trim.wav")
    out = os.path.join(tmpdir, tag + "_16k.wav")
    run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", raw, text])
    rate, a = read_wav(raw)
    first = next((i for i, v in enumerate(a) if v != 0), None)
    if first is None:
        raise RuntimeError(f"espeak produced silence for: {text!r}")
    last = len(a) - 1 - next(i for i, v in enumerate(reversed(a)) if v != 0)
    pad = int(round(PAD_S * rate))
    a = a[max(0, first - pad): min(len(a), last + 1 + pad)]
    write_wav(trimmed, rate, a)
    run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", trimmed, "-ar", str(SR), "-ac", "1",
         "-c:a", "pcm_s16le", "-map_metadata", "-1", "-fflags", "+bitexact", out])
    r2, b = read_wav(out)
    assert r2 == SR
    for p in (raw, trimmed, out):
        os.remove(p)
    return b


def build_talk(talk, track, root, tmpdir):
    out = array("h", bytes(2 * int(round(LEAD_S * SR))))
    recs = []
    for i, text in enumerate(talk["sentences"]):
        clip = synth_sentence(text, talk["voice"], talk["speed"], tmpdir, f"{talk['id']}_{i:03d}")
        if i > 0:
            out.extend(array("h", bytes(2 * int(round(GAP_S * SR)))))
        start = len(out)
        out.extend(clip)
        recs.append({"i": i, "start": round(start / SR, 4), "end": round(len(out) / SR, 4),
                     "text": text, "voice": talk["voice"]})
    out.extend(array("h", bytes(2 * int(round(TAIL_S * SR)))))
    wav_path = os.path.join(tmpdir, talk["id"] + ".wav")
    write_wav(wav_path, SR, out)
    mp3_path = os.path.join(root, talk["id"] + ".mp3")
    run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", wav_path, "-ac", "1", "-ar", str(SR),
         "-c:a", "libmp3lame", "-b:a", MP3_BITRATE,
         "-metadata", f"title={talk['title']}", "-metadata", f"artist={SHOW}",
         "-metadata", f"album={ALBUM}", "-metadata", f"date={YEAR}",
         "-metadata", f"track={track}", "-id3v2_version", "3", mp3_path])
    os.remove(wav_path)
    return {"file": talk["id"] + ".mp3", "title": talk["title"], "show": SHOW, "album": ALBUM,
            "date": YEAR, "track": track, "voice": talk["voice"], "speed": talk["speed"],
            "duration": round(len(out) / SR, 4), "sample_rate": SR, "num_samples": len(out),
            "sentences": recs}


def make_questions(truth):
    qs = []
    for n, (query, ep, anchor, kind) in enumerate(QUESTIONS, 1):
        hits = [(e, r["i"]) for e, t in truth.items() for r in t["sentences"] if anchor in r["text"]]
        if len(hits) != 1 or hits[0][0] != ep:
            raise RuntimeError(f"anchor {anchor!r} must occur in exactly one sentence of {ep}: {hits}")
        i = hits[0][1]
        qs.append({"qid": f"s{n:02d}", "query": query, "episode": ep, "answer_sentence_index": i,
                   "kind": kind, "answer_text": truth[ep]["sentences"][i]["text"]})
    return qs


def decode_mp3(path):
    raw = run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "s16le", "-ac", "1",
               "-ar", str(SR), "-"]).stdout
    a = array("h")
    a.frombytes(raw)
    if sys.byteorder == "big":
        a.byteswap()
    return a


def ffprobe_duration(path):
    out = run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path]).stdout
    return float(out.decode().strip())


def rms(a, lo, hi):
    lo, hi = max(0, lo), min(len(a), hi)
    if hi <= lo:
        return 0.0
    return math.sqrt(sum(v * v for v in a[lo:hi]) / (hi - lo))


def verify(root, truth, questions):
    problems = []
    total_bytes = 0
    for ep, t in truth.items():
        mp3 = os.path.join(root, t["file"])
        total_bytes += os.path.getsize(mp3)
        if not 60 <= t["duration"] <= 90:
            problems.append(f"{ep}: duration {t['duration']:.1f}s outside 60-90 s")
        if not 12 <= len(t["sentences"]) <= 16:
            problems.append(f"{ep}: {len(t['sentences'])} sentences, want 12-16")
        prev_end = -1.0
        for r in t["sentences"]:
            if not (r["end"] > r["start"] >= prev_end) or r["end"] - r["start"] < 0.3:
                problems.append(f"{ep} sentence {r['i']}: bad interval {r['start']}-{r['end']}")
            prev_end = r["end"]
        dec = decode_mp3(mp3)
        probe = ffprobe_duration(mp3)
        if abs(len(dec) / SR - t["duration"]) > 0.05:
            problems.append(f"{ep}: decoded {len(dec) / SR:.3f}s vs truth {t['duration']:.3f}s")
        quiet = sum(rms(dec, int(r["start"] * SR), int(r["end"] * SR)) < 300 for r in t["sentences"])
        loud = 0
        s = t["sentences"]
        for a, b in zip(s, s[1:]):
            g0, g1 = int(a["end"] * SR) + int(0.06 * SR), int(b["start"] * SR) - int(0.06 * SR)
            if g1 > g0 and rms(dec, g0, g1) > 60:
                loud += 1
        if quiet or loud:
            problems.append(f"{ep}: {quiet} silent sentence spans, {loud} noisy gaps")
        print(f"{t['file']:<24} {t['duration']:6.2f} s (decoded {len(dec) / SR:.2f}, ffprobe {probe:.2f})  "
              f"{len(s):2d} sentences  {os.path.getsize(mp3) / 1000:6.1f} kB  voice={t['voice']} speed={t['speed']}")
    for q in questions:
        t = truth[q["episode"]]
        if t["sentences"][q["answer_sentence_index"]]["text"] != q["answer_text"]:
            problems.append(f"{q['qid']}: answer text mismatch")
    print(f"total mp3 size {total_bytes / 1000:.1f} kB")
    if total_bytes > MAX_TOTAL_BYTES:
        problems.append(f"total mp3 size {total_bytes} > {MAX_TOTAL_BYTES}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=HERE, help="output folder (default: this script's folder)")
    ap.add_argument("--no-verify", action="store_true", help="skip decoding the MP3s back for checks")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    os.makedirs(root, exist_ok=True)
    for tool in ("espeak-ng", "ffmpeg", "ffprobe"):
        if not shutil.which(tool):
            sys.exit(f"missing tool: {tool}")
    truth = {}
    tmpdir = tempfile.mkdtemp(prefix="talkindex_samples_")
    try:
        for track, talk in enumerate(TALKS, 1):
            truth[talk["id"]] = build_talk(talk, track, root, tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    questions = make_questions(truth)
    with open(os.path.join(root, "truth.json"), "w", encoding="utf-8") as f:
        json.dump(truth, f, indent=1, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(root, "questions.json"), "w", encoding="utf-8") as f:
        json.dump(questions, f, indent=2, ensure_ascii=False)
        f.write("\n")
    if args.no_verify:
        return
    problems = verify(root, truth, questions)
    if problems:
        print("PROBLEMS:\n  " + "\n  ".join(problems))
        sys.exit(1)
    print("verification OK")


if __name__ == "__main__":
    main()
