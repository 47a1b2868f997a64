"""A cold-start copy of an ONNX export's graph, already optimised, so a one-shot `ask` skips the optimiser.

Why: onnxruntime optimises a graph each time a session loads it; for mpnet that is ~25 ms of CPU,
and the first run of a graph optimised at load takes ~15 ms longer than one of a graph saved
optimised (measured, one thread). The saved graph is the BASIC level's (hardware-independent rewrites of
the same fp32 weights: the same vectors, checked when written); bulk sessions (ingest, live readers)
still optimise the plain graph fully. meta.json records the files with their onnxruntime version,
sizes, mtimes and the graph file's SHA-256: anything else and the plain graph is loaded, as before.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .onnx import META_FILE, MODEL_FILE, _read_meta, _session_options, _write_json

log = logging.getLogger("talkindex")

COLD_MODEL_FILE = "cold.onnx"  # the graph as a cold-start session optimises it (write_cold_model)
COLD_WEIGHTS_FILE = "cold.onnx.data"
_COLD_FILES = (COLD_MODEL_FILE, COLD_WEIGHTS_FILE)


def ensure_cold_model(export_dir: Path) -> bool:
    """Write the cold-start graph (`write_cold_model`) where an export lacks a usable one: one made before
    it existed, for another onnxruntime, or damaged. False when that fails (cold asks then optimise the
    plain graph, as before)."""
    if has_cold_model(export_dir):
        return True
    try:
        write_cold_model(export_dir)
    except Exception as e:  # noqa: BLE001 - only a cold ask's speed depends on it
        log.warning("%s: no pre-optimised query graph (%s); cold asks optimise the plain one", export_dir, e)
        return False
    return True


def write_cold_model(export_dir: Path) -> None:
    """Save the export's graph as a cold-start session optimises it beside it and name it in meta.json.

    Written in a temp dir, checked (the plain graph's outputs on a sample), then moved in; meta.json,
    replaced atomically, names the files last, so a crash leaves cold asks on the plain graph.
    ValueError when the export is incomplete or the check fails."""
    import onnxruntime as ort

    export_dir = Path(export_dir)
    meta = _read_meta(export_dir)
    if meta is None:
        raise ValueError(f"{export_dir}: no complete ONNX export")
    if meta.pop("cold", None) is not None:  # forget the old files before replacing them
        _write_json_atomic(export_dir / META_FILE, meta)
    tmp_dir = Path(tempfile.mkdtemp(prefix=".cold.tmp-", dir=export_dir))
    try:
        opts = _session_options(ort, threads=1, bulk=False)
        opts.optimized_model_filepath = str(tmp_dir / COLD_MODEL_FILE)
        opts.add_session_config_entry("session.optimized_model_external_initializers_file_name", COLD_WEIGHTS_FILE)
        opts.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        plain = ort.InferenceSession(str(export_dir / MODEL_FILE), sess_options=opts,
                                     providers=["CPUExecutionProvider"])
        cold = cold_session(ort, tmp_dir / COLD_MODEL_FILE, threads=1)
        feed = _sample_feed([i.name for i in plain.get_inputs()])
        if not np.allclose(plain.run(None, feed)[0], cold.run(None, feed)[0], rtol=0, atol=1e-5):
            raise ValueError("the optimised graph does not reproduce the plain one")
        del plain, cold
        for name in (COLD_WEIGHTS_FILE, COLD_MODEL_FILE):
            with open(tmp_dir / name, "rb") as f:
                os.fsync(f.fileno())
            os.chmod(tmp_dir / name, 0o644)
            os.replace(tmp_dir / name, export_dir / name)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    meta["cold"] = {"onnxruntime": ort.__version__, "files": {n: _stamp(export_dir / n) for n in _COLD_FILES},
                    "graph_sha256": _sha256(export_dir / COLD_MODEL_FILE)}
    _write_json_atomic(export_dir / META_FILE, meta)


def has_cold_model(export_dir: Path) -> bool:
    """Whether `export_dir` holds a cold-start graph that `cold_path` accepts."""
    meta = _read_meta(Path(export_dir))
    return meta is not None and cold_path(Path(export_dir), meta) is not None


def cold_session(ort: Any, path: Path, threads: int | None) -> Any:
    """A cold-start session over a graph `write_cold_model` already optimised: the optimiser is off."""
    opts = _session_options(ort, threads, bulk=False)
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def cold_path(export_dir: Path, meta: dict[str, Any]) -> Path | None:
    """The cold-start graph when meta.json records it for this onnxruntime, both files have the size and
    mtime recorded (the weights: hashing 436 MB would cost more than the graph saves) and the graph file
    its SHA-256; else None (the plain graph is loaded)."""
    try:
        import onnxruntime as ort

        cold = meta.get("cold")
        if not cold or cold.get("onnxruntime") != ort.__version__:
            return None
        if any(_stamp(export_dir / n) != cold["files"][n] for n in _COLD_FILES):
            return None
        if _sha256(export_dir / COLD_MODEL_FILE) != cold["graph_sha256"]:
            return None
    except (ImportError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return export_dir / COLD_MODEL_FILE


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sample_feed(names: list[str]) -> dict[str, np.ndarray]:
    ids = np.array([[0, *range(1000, 1017), 2], [0, 1010, 1011, 2, *[1] * 15]], dtype=np.int64)
    mask = np.array([[1] * 19, [1] * 4 + [0] * 15], dtype=np.int64)
    arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {n: arrays[n] for n in names}


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        _write_json(tmp, data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
