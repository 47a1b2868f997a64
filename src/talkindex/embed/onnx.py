"""Embed queries with onnxruntime instead of torch, so `talkindex ask` starts cold in well under a second.

Importing torch + sentence-transformers alone takes seconds. At index time (torch already loaded) we export
the model's transformer to ONNX next to its fast-tokenizer file and a small meta json; at query time only
onnxruntime, tokenizers and numpy are imported, and the pipeline reproduces sentence-transformers exactly:
same truncation (max_seq_length), padding, query prompt, attention-mask-weighted pooling and normalisation.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger("talkindex")

FORMAT_VERSION = 1
META_FILE = "meta.json"
MODEL_FILE = "model.onnx"
WEIGHTS_FILE = "model.onnx.data"  # external initializers: mapped at load instead of parsed from protobuf
TOKENIZER_FILE = "tokenizer.json"
ONNX_OPSET = 17  # runs on every onnxruntime >= 1.14
SUPPORTED_POOLING = ("mean", "cls", "lasttoken", "max", "mean_sqrt_len_tokens")
_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
_FILES = (MODEL_FILE, WEIGHTS_FILE, TOKENIZER_FILE)


def export_query_encoder(model: SentenceTransformer, out_dir: Path) -> Path:
    """Export `model` (Transformer -> Pooling [-> Normalize]) for torch-free query encoding; returns `out_dir`.

    Everything is written into a sibling temp dir that replaces `out_dir` only once complete, and
    meta.json (written last) records the file sizes, so a crash never leaves an export that loads.
    Raises ValueError for pipelines this encoder cannot reproduce (e.g. Dense layers, weighted pooling).
    """
    import torch

    out_dir = Path(out_dir)
    transformer, pooling, normalize = _split_modules(model)
    hf_model = transformer.auto_model
    hf_tokenizer = transformer.tokenizer
    backend = getattr(hf_tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError("ONNX query export needs a fast (tokenizers-backed) tokenizer")

    modes = (pooling.pooling_mode,) if isinstance(pooling.pooling_mode, str) else tuple(pooling.pooling_mode)
    bad = [m for m in modes if m not in SUPPORTED_POOLING]
    if bad:
        raise ValueError(f"ONNX query export does not support pooling mode {bad[0]!r}")

    max_seq_length = int(model.max_seq_length)
    prompts = getattr(model, "prompts", None) or {}
    query_prompt = prompts.get("query") or ""

    forward_args = _forward_arg_names(hf_model)
    input_names = [n for n in _INPUT_NAMES if n in forward_args and n in hf_tokenizer.model_input_names]
    if "input_ids" not in input_names:
        raise ValueError("ONNX query export needs a model that takes input_ids")
    if "attention_mask" not in input_names:
        raise ValueError("ONNX query export needs a model that takes an attention_mask")

    class _LastHiddenState(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(input_names, args, strict=True)), return_dict=True).last_hidden_state

    sample = hf_tokenizer(["a sample query for export", "short"], padding=True, truncation=True, return_tensors="pt")
    args = tuple(sample[n].to(torch.long) for n in input_names)
    dynamic_axes = {n: {0: "batch", 1: "sequence"} for n in [*input_names, "last_hidden_state"]}

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    raw_path = tmp_dir / "traced.onnx"
    try:
        was_training = hf_model.training
        device = next(hf_model.parameters()).device
        hf_model.eval()
        wrapper = _LastHiddenState(hf_model).to("cpu")
        try:
            with torch.no_grad(), _eager_attention(hf_model), _quiet_export_warnings():
                torch.onnx.export(
                    wrapper,
                    args,
                    str(raw_path),
                    input_names=input_names,
                    output_names=["last_hidden_state"],
                    dynamic_axes=dynamic_axes,
                    opset_version=ONNX_OPSET,
                    do_constant_folding=True,
                    dynamo=False,
                )
        finally:
            hf_model.to(device)
            hf_model.train(was_training)

        _externalize_weights(raw_path, tmp_dir / MODEL_FILE, WEIGHTS_FILE)
        raw_path.unlink()

        # Save the in-memory fast tokenizer (what sentence-transformers actually runs), not the file on
        # disk: its padding/truncation settings are overridden at load time anyway.
        backend.save(str(tmp_dir / TOKENIZER_FILE))

        pad_token = hf_tokenizer.pad_token or "[PAD]"
        pad_id = hf_tokenizer.pad_token_id if hf_tokenizer.pad_token_id is not None else 0
        include_prompt = bool(getattr(pooling, "include_prompt", True))
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "pooling_modes": list(modes),
            "normalize": normalize,
            "max_seq_length": max_seq_length,
            "dim": int(
                model.get_embedding_dimension()
                if hasattr(model, "get_embedding_dimension")
                else model.get_sentence_embedding_dimension()
            ),
            "query_prompt": query_prompt,
            "include_prompt": include_prompt,
            "prompt_length": _prompt_length(backend, query_prompt) if query_prompt and not include_prompt else 0,
            "input_names": input_names,
            "pad_token": pad_token,
            "pad_id": int(pad_id),
            "padding_side": getattr(hf_tokenizer, "padding_side", "right") or "right",
            "onnx_opset": ONNX_OPSET,
            "files": {name: (tmp_dir / name).stat().st_size for name in _FILES},
        }
        _write_json(tmp_dir / META_FILE, meta)
        _replace_dir(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    from .coldgraph import ensure_cold_model

    ensure_cold_model(out_dir)
    return out_dir


class OnnxQueryEncoder:
    """Torch-free query embedder over an export made by `export_query_encoder`."""

    def __init__(self, export_dir: Path, threads: int | None = None, bulk: bool = False, spin: bool = True):
        """`spin`: pool threads keep busy-waiting for the next operator after a run ends (onnxruntime's
        default; fastest when the process has the cores to itself). False for a live reader: its threads
        spin only while a run is in progress (`session.force_spinning_stop`), so they do not burn the cores
        its ranking, HTTP and other clients' questions need after each question, nor the other model's
        pool while that model runs (MiniLM + mpnet one after the other, 2 cores: 55.6 ms with idle spinning,
        34.1 ms with no spinning at all, 29.9 ms spinning only during runs)."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        export_dir = Path(export_dir)
        meta = _read_meta(export_dir)
        if meta is None:
            raise FileNotFoundError(f"{export_dir}: no complete ONNX query-encoder export")
        self.meta = meta
        self.dim: int = int(meta["dim"])
        self._modes: tuple[str, ...] = tuple(meta["pooling_modes"])
        self._model_normalizes: bool = bool(meta["normalize"])
        self._prompt: str = meta.get("query_prompt") or ""
        self._prompt_length: int = int(meta.get("prompt_length") or 0)

        from .coldgraph import cold_path, cold_session

        cold = None if bulk else cold_path(export_dir, meta)
        self._session = None
        if cold is not None:
            try:
                self._session = cold_session(ort, cold, threads)
            except Exception:  # noqa: BLE001 - a damaged pre-optimised file: the plain graph still works
                log.debug("%s unusable; optimising %s instead", cold, MODEL_FILE, exc_info=True)
        if self._session is None:
            self._session = ort.InferenceSession(str(export_dir / MODEL_FILE), sess_options=_session_options(
                ort, threads, bulk, spin), providers=["CPUExecutionProvider"])
        self._input_names = [i.name for i in self._session.get_inputs()]

        # After the session: it loads without the GIL, the tokenizer's JSON is parsed holding it.
        tok = Tokenizer.from_file(str(export_dir / TOKENIZER_FILE))
        tok.no_padding()
        tok.enable_truncation(max_length=int(meta["max_seq_length"]), stride=0, strategy="longest_first")
        tok.enable_padding(
            direction=meta.get("padding_side", "right"), pad_id=int(meta["pad_id"]), pad_token=meta["pad_token"]
        )
        self._tokenizer = tok

    def encode(self, texts: list[str], normalize: bool = True, batch_size: int = 32,
               query: bool = True) -> np.ndarray:
        """Embed `texts` as float32 (n, dim): queries get the model's query prompt, passages
        (`query=False`, used at ingest instead of torch) none.

        Rows are L2-normalised when `normalize` is true or the model ends in a Normalize module.
        """
        if isinstance(texts, str):
            texts = [texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        prompt = self._prompt if query else ""
        plen = self._prompt_length if query else 0
        prompted = [prompt + t for t in texts] if prompt else list(texts)
        # Like sentence-transformers: batch by length so short queries are not padded to long ones.
        order = sorted(range(len(prompted)), key=lambda i: -len(prompted[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self._encode_batch([prompted[i] for i in idx], plen)
        if normalize or self._model_normalizes:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out /= np.maximum(norms, 1e-12)
        return out

    def _encode_batch(self, texts: list[str], prompt_length: int) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        arrays = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        feed = {name: arrays[name] for name in self._input_names}
        hidden = self._session.run(None, feed)[0].astype(np.float32, copy=False)
        return _pool(hidden, arrays["attention_mask"], self._modes, prompt_length)


def load_query_encoder(export_dir: Path, threads: int | None = None, bulk: bool = False,
                       spin: bool = True) -> OnnxQueryEncoder | None:
    """The encoder for `export_dir`, or None when the export is missing, partial or unreadable; `bulk`:
    a session optimised for throughput (ingest's passages) rather than for a cold start; `spin`: see
    `OnnxQueryEncoder`."""
    export_dir = Path(export_dir)
    if _read_meta(export_dir) is None:
        return None
    try:
        return OnnxQueryEncoder(export_dir, threads=threads, bulk=bulk, spin=spin)
    except Exception:  # noqa: BLE001 - tokenizers/onnxruntime raise bare Exception/RuntimeError on corrupt files
        return None


def _session_options(ort: Any, threads: int | None, bulk: bool, spin: bool = True) -> Any:
    opts = ort.SessionOptions()
    if bulk:  # ingest's passages: the full fusions and pre-packed weights (mpnet: 17.8 s → 14.7 s a 526-text run)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    else:
        # Cold start dominates one query (measured on 2 cores): the extended/ALL fusions gain nothing on a
        # short query; skipping weight pre-packing saves ~0.4 s of mpnet's session start (it halves a
        # question's run, 100 → 50 ms on one thread, so live readers swap in bulk sessions later).
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.add_session_config_entry("session.disable_prepacking", "1")
    opts.intra_op_num_threads = threads or os.cpu_count() or 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    if not spin:  # see OnnxQueryEncoder
        opts.add_session_config_entry("session.force_spinning_stop", "1")
    return opts


def _pool(hidden: np.ndarray, mask: np.ndarray, modes: tuple[str, ...], prompt_length: int) -> np.ndarray:
    """numpy port of sentence_transformers Pooling._forward_padded for the supported modes."""
    if prompt_length:
        mask = mask.copy()
        first = mask.argmax(axis=1)  # left padding: prompt starts after the pads
        positions = np.arange(mask.shape[1])[None, :]
        mask[positions < (first + prompt_length)[:, None]] = 0
    vectors = []
    maskf = mask[:, :, None].astype(np.float32)
    for mode in modes:
        if mode == "cls":
            vectors.append(hidden[np.arange(hidden.shape[0]), mask.argmax(axis=1)])
        elif mode == "lasttoken":
            flipped = mask[:, ::-1]
            last = mask.shape[1] - 1 - flipped.argmax(axis=1)
            last = np.where(flipped.max(axis=1) == 0, 0, last)
            vectors.append(hidden[np.arange(hidden.shape[0]), last] * mask[np.arange(mask.shape[0]), last, None])
        elif mode == "max":
            vectors.append(np.where(maskf > 0, hidden, -np.inf).max(axis=1))
        else:  # mean, mean_sqrt_len_tokens
            summed = (hidden * maskf).sum(axis=1)
            count = np.maximum(maskf.sum(axis=1), 1e-9)
            vectors.append(summed / (count if mode == "mean" else np.sqrt(count)))
    return np.concatenate(vectors, axis=1).astype(np.float32, copy=False)


def _split_modules(model: Any) -> tuple[Any, Any, bool]:
    """(Transformer, Pooling, has_normalize); ValueError for any other module layout."""
    modules = list(model)
    names = [type(m).__name__ for m in modules]
    if len(modules) not in (2, 3) or names[0] != "Transformer" or names[1] != "Pooling":
        raise ValueError(f"ONNX query export supports Transformer -> Pooling [-> Normalize], got {names}")
    if len(modules) == 3 and names[2] != "Normalize":
        raise ValueError(f"ONNX query export cannot reproduce module {names[2]}")
    return modules[0], modules[1], len(modules) == 3


def _forward_arg_names(hf_model: Any) -> set[str]:
    import inspect

    return set(inspect.signature(hf_model.forward).parameters)


def _prompt_length(backend: Any, prompt: str) -> int:
    """Prompt tokens to exclude from pooling (leading specials included, trailing special excluded)."""
    enc = backend.encode(prompt)
    n = len(enc.ids)
    if n and enc.special_tokens_mask[-1]:
        n -= 1
    return n


class _eager_attention:
    """Trace with plain eager attention: SDPA/flash kernels do not export reliably to ONNX."""

    def __init__(self, hf_model: Any):
        self.model = hf_model
        self.previous: str | None = None

    def __enter__(self) -> None:
        current = getattr(getattr(self.model, "config", None), "_attn_implementation", None)
        if current in (None, "eager") or not hasattr(self.model, "set_attn_implementation"):
            return
        try:
            self.model.set_attn_implementation("eager")
            self.previous = current
        except (ValueError, ImportError, AttributeError, NotImplementedError):
            self.previous = None

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            self.model.set_attn_implementation(self.previous)


class _quiet_export_warnings:
    """The TorchScript exporter's deprecation and tracer warnings are noise for this fixed encoder graph."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def _read_meta(export_dir: Path) -> dict[str, Any] | None:
    """meta.json if it, and every file it lists with its recorded size, is present; else None."""
    try:
        meta = json.loads((export_dir / META_FILE).read_text(encoding="utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            return None
        files = meta["files"]
        for name in _FILES:
            if (export_dir / name).stat().st_size != int(files[name]):
                return None
        for key in ("pooling_modes", "normalize", "max_seq_length", "dim", "pad_id", "pad_token"):
            if key not in meta:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return meta


def _externalize_weights(src: Path, dst: Path, weights_name: str) -> None:
    """Re-save the traced model with all initializers in one external file next to it."""
    import onnx

    proto = onnx.load(str(src))
    onnx.save_model(
        proto,
        str(dst),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=weights_name,
        size_threshold=1024,
    )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())


def _replace_dir(src: Path, dst: Path) -> None:
    """Swap `src` into place as `dst`; an old `dst` is moved aside first, then deleted."""
    for path in src.iterdir():
        os.chmod(path, 0o644)
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    os.chmod(src, 0o755)  # mkdtemp made it 0700
    old: Path | None = None
    if dst.exists() or dst.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=dst.parent))
        os.replace(dst, old / dst.name)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
