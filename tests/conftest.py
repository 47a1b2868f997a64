"""Shared fixtures: the CLI as a subprocess, the bundled samples ingested once, shared fixtures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
SHARED = ROOT.parent / "shared" / "fixtures"


def shared(*parts: str) -> Path:
    """A path under ../shared/fixtures, or skip the test with the reason."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs ../shared/fixtures ({p} not found)")
    return p


def tone_mp3(d: Path, seconds: float) -> Path:
    """A `seconds`-long 440 Hz MP3 made by ffmpeg in `d` (or skip the test with the reason)."""
    import shutil

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                    "-c:a", "libmp3lame", "-b:a", "32k", str(d / "ep.mp3")], check=True)
    return d / "ep.mp3"


def run_cli(*args: str, home: Path | None = None, check: bool | None = None, timeout: float = 900,
            **kw) -> subprocess.CompletedProcess:
    """Run `python -m talkindex ARGS` as a user would; returns the completed process."""
    cmd = [sys.executable, "-m", "talkindex", *args]
    if home is not None:
        cmd += ["--home", str(home)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("TALKINDEX_HOME", None)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, **kw)
    if check:
        assert p.returncode == 0, f"{cmd} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def ask_json(home: Path, question: str, *extra: str) -> list[dict]:
    p = run_cli("ask", question, "--json", *extra, home=home, check=True)
    return json.loads(p.stdout)


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory) -> Path:
    """A home built in seconds from committed sample transcripts (no ASR): the fast layer's index."""
    from fast_home import build_tiny_home

    return build_tiny_home(tmp_path_factory.mktemp("tiny-home"))


@pytest.fixture(scope="session")
def samples_home(tmp_path_factory) -> Path:
    """The bundled sample talks ingested once through the real CLI (tiny.en + MiniLM)."""
    home = tmp_path_factory.mktemp("samples-home")
    run_cli("ingest", str(SAMPLES / "urls.txt"), home=home, check=True)
    return home


@pytest.fixture(scope="session")
def devset_home(tmp_path_factory) -> tuple[Path, dict]:
    """../shared/fixtures/devset served on loopback and ingested from its RSS feed, once."""
    devset = shared("devset")
    from talkindex.serve.files import serve_directory

    home = tmp_path_factory.mktemp("devset-home")
    with serve_directory(devset) as base:
        p = run_cli("ingest", f"{base}/feed.xml", "--json", home=home)
        assert p.returncode == 0, p.stderr
    return home, {"base": base, "dir": devset}
