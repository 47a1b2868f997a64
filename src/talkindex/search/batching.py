"""Dynamic micro-batching of query encoding for live readers that answer several clients at once.

On CPU one ONNX run over N short questions costs far less than N runs (mpnet on 2 cores: 4 questions
~50 ms together, ~22 ms each alone): a single question is too small a matrix to keep both cores busy,
and N concurrent runs fight over the cores and their spinning thread pools. So questions that arrive
while an encoding is in progress wait and are encoded together in the next run.

No encoding thread is kept: the caller that finds the encoder idle encodes (its own question plus any
that queued meanwhile), then hands the turn to the oldest waiting caller, whose run takes everything
queued by then. A lone caller therefore encodes at once in its own thread (sequential latency is
unchanged), and nothing is left running when the server stops.

Batching does not change a vector: `OnnxQueryEncoder` masks padding out of attention and pooling,
and onnxruntime computes each row alike (`tests/test_batching.py` compares with encoding alone).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

MAX_BATCH = 16


class _Job:
    __slots__ = ("text", "vec", "error", "ready", "lead")

    def __init__(self, text: str):
        self.text = text
        self.vec: np.ndarray | None = None
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.lead = False  # this caller runs the next batch (set before `ready` when the turn is handed over)


class QueryBatcher:
    """`batcher(text)` → the text's vector from `encode(list_of_texts)`, batched with concurrent callers."""

    def __init__(self, encode: Callable[[Sequence[str]], np.ndarray], max_batch: int = MAX_BATCH):
        self._encode = encode
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Job] = []  # questions not yet taken by a run; non-empty only while one runs
        self._busy = False
        self.batches: deque[int] = deque(maxlen=256)  # sizes of the last runs, for tests and profiling

    def __call__(self, text: str) -> np.ndarray:
        job = _Job(text)
        with self._lock:
            self._queue.append(job)
            job.lead = not self._busy
            self._busy = True
        if not job.lead:
            job.ready.wait()
        if job.lead:
            self._run()
        if job.error is not None:
            raise job.error
        return job.vec

    def _run(self) -> None:
        """Encode the oldest queued questions (this caller's among them), then pass the turn on."""
        with self._lock:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        try:
            vecs = self._encode([j.text for j in batch])
            for j, v in zip(batch, vecs, strict=True):
                j.vec = v
        except BaseException as e:  # noqa: BLE001 - every caller of the batch gets the encoder's error
            for j in batch:
                j.error = e
        with self._lock:
            nxt = self._queue[0] if self._queue else None
            if nxt is None:
                self._busy = False
            else:
                nxt.lead = True
            self.batches.append(len(batch))
        for j in batch:
            j.ready.set()
        if nxt is not None:
            nxt.ready.set()
