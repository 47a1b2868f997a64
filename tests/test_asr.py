"""Windowed transcription: same samples and (nearly) the same words as whole-file transcription."""

from __future__ import annotations

import numpy as np
from conftest import shared

from talkindex.eval.evaluate import normalize, wer_counts
from talkindex.sources.mediacache import media_duration
from talkindex.transcripts.asr import TranscribeOptions, Transcriber, iter_audio_windows


def test_windows_cover_the_file_exactly():
    from faster_whisper import decode_audio

    clip = shared("speech", "ami_meeting_4speakers_60s.wav")
    whole = decode_audio(str(clip))
    wins = list(iter_audio_windows(clip, 20.0, search_s=5.0))
    assert len(wins) >= 3
    assert np.array_equal(np.concatenate([w for _, w in wins]), whole)
    offs = [o for o, _ in wins]
    assert offs[0] == 0.0 and all(15.0 <= b - a <= 20.0 for a, b in zip(offs, offs[1:]))
    assert abs(media_duration(clip) - len(whole) / 16000) < 0.1


def test_windowed_transcript_matches_whole_file():
    clip = shared("speech", "librivox_shakespeare_sonnet01_53s.mp3")
    tr = Transcriber(TranscribeOptions(device="cpu", window_s=0))
    whole = tr("c", clip)
    tr.options.window_s = 25.0  # 53 s > 1.25 x 25 s: three windows
    win = tr("c", clip)
    assert abs(win.duration - whole.duration) < 0.1
    a = normalize(" ".join(s.text for s in whole.segments))
    b = normalize(" ".join(s.text for s in win.segments))
    assert wer_counts(a, b) / len(a) <= 0.15
    starts = [w.start for s in win.segments for w in s.words]
    assert starts == sorted(starts) and 0 <= starts[0] and starts[-1] <= win.duration
    assert win.segments[-1].end > 40  # timestamps are offset back to the episode


def test_batched_windowed_path_on_cpu():
    """The GPU default (BatchedInferencePipeline) runs the same code on CPU with --batch-size."""
    clip = shared("speech", "librivox_shakespeare_sonnet01_53s.mp3")
    ref = normalize(shared("speech", "librivox_shakespeare_sonnet01_53s.txt").read_text())
    t = Transcriber(TranscribeOptions(device="cpu", batch_size=4, window_s=25.0))(clip.stem, clip)
    assert t.params["batch_size"] == 4
    hyp = normalize(" ".join(s.text for s in t.segments))
    assert wer_counts(ref, hyp) / len(ref) <= 0.35
    assert t.segments[-1].end > 40
