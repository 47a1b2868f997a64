"""Fast layer: the CLI in-process (typer's CliRunner) over the tiny_home home; usage errors found before work."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from talkindex.cli.app import app

pytestmark = pytest.mark.fast
runner = CliRunner()



def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize("cmd", [[], ["ingest"], ["list"], ["transcript"], ["ask"], ["eval"], ["eval", "retrieval"],
                                 ["eval", "asr"], ["doctor"], ["models"], ["models", "install"], ["serve"], ["mcp"]])
def test_every_command_has_help(cmd):
    r = run(*cmd, "--help")
    assert r.exit_code == 0 and "Usage" in r.output and len(r.output) > 200


def test_ask_help_lists_every_declared_option():
    out = run("ask", "--help").output
    for flag in ("-k", "--file", "--mode", "--show", "--since", "--episode", "--home", "--json", "--verbose"):
        assert flag in out
    assert "1-100" in out  # the limit comes from requests.MAX_K


def test_ask_json_and_text(tiny_home):
    r = run("ask", "what is feature store drift", "-k", "2", "--json", "--home", str(tiny_home))
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)
    assert len(hits) == 2 and hits[0]["title"].startswith("Feature Stores")
    assert {"start", "end", "link", "chapter", "speaker", "transcript_source", "media_url"} <= set(hits[0])
    r = run("ask", "what is feature store drift", "-k", "1", "--home", str(tiny_home))
    assert r.exit_code == 0 and "#t=" in r.stdout


def test_list_and_transcript(tiny_home):
    eps = json.loads(run("list", "--json", "--home", str(tiny_home)).stdout)
    assert len(eps) == 3
    for fmt, probe in (("txt", "feature"), ("srt", "-->"), ("vtt", "WEBVTT"), ("json", '"segments"')):
        r = run("transcript", eps[0]["id"], "--format", fmt, "--home", str(tiny_home))
        assert r.exit_code == 0 and probe in r.stdout.lower() if fmt == "txt" else probe in r.stdout


@pytest.mark.parametrize("args, code, needle", [
    (["ask", "x", "--since", "yesterday"], 2, "not a date"),
    (["ask", "x", "-k", "101"], 2, "between 1 and 100"),
    (["ask", "x" * 501], 2, "too long"),
    (["ask"], 2, "QUESTION"),
    (["ask", "x", "--episode", "nope"], 1, "unknown episode"),
    (["ask", "  "], 2, "empty question"),
    (["transcript", "nope"], 1, "unknown episode"),
    (["transcript", "nope", "--format", "doc"], 2, "unknown format"),
    (["ingest", "urls.txt", "--device", "tpu"], 2, "--device"),
    (["ingest", "urls.txt", "--model", "./no/such/model"], 2, "--model"),
    (["ingest", "urls.txt", "--model", "tiny_home.english"], 2, "unknown model"),
    (["ingest", "urls.txt", "--compute-type", "int3"], 2, "--compute-type"),
    (["ingest", "urls.txt", "--embedder", "./nowhere/emb"], 2, "--embedder"),
    (["ingest", "urls.txt", "--captions", "sometimes"], 2, "--captions"),
])
def test_usage_errors_are_one_line(tiny_home, tmp_path, args, code, needle):
    urls = tmp_path / "urls.txt"
    urls.write_text("\n")
    args = [str(urls) if a == "urls.txt" else a for a in args]
    r = run(*args, "--home", str(tiny_home))
    assert r.exit_code == code, r.output
    err = r.stderr.strip().splitlines()
    assert err and err[-1].startswith("talkindex: error:") and needle in err[-1], r.stderr
    assert "Traceback" not in r.output


def test_home_that_is_a_file(tmp_path):
    f = tmp_path / "home"
    f.write_text("x")
    for args in (["list"], ["ask", "x"], ["doctor"]):
        r = run(*args, "--home", str(f))
        assert r.exit_code == 2 and "is a file" in r.stderr, (args, r.output)


def test_doctor_clean(tiny_home):
    r = run("doctor", "--json", "--home", str(tiny_home))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ok"] is True


def test_cold_ask_skips_typer_app_and_heavy_imports(tiny_home):
    """`talkindex ask` runs through the fast path derived from `ask`'s typer declaration: no typer app
    build (pydantic), no torch; limits still refused there with the shared messages."""
    import subprocess
    import sys

    from conftest import ROOT

    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "talkindex", "ask", "feature store drift", "-k", "2",
                        "--json", "--home", str(tiny_home)], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert len(json.loads(p.stdout)) == 2
    imported = {ln.rsplit("|", 1)[-1].strip() for ln in p.stderr.splitlines() if ln.startswith("import time:")}
    assert not imported & {"pydantic", "torch", "typer._adapters", "fastapi", "mcp"}, imported
    p = subprocess.run([sys.executable, "-m", "talkindex", "ask", "x", "-k", "0", "--home", str(tiny_home)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2 and p.stderr.strip() == "talkindex: error: k must be a whole number between 1 and 100"


def test_doctor_names_and_removes_leftovers_by_path(tiny_home, tmp_path):
    """Leftovers carry the path a repair removes (no message parsing); unnamed and temporary vector
    segments come from VectorIndex, orphan folders from Layout.episodes_root."""
    import shutil

    home = tmp_path / "h"
    shutil.copytree(tiny_home, home)
    seg = next((home / "vectors").glob("seg-*.faiss"))
    leftovers = [home / "vectors" / ".seg-000999.faiss.tmp", home / "vectors" / "seg-000998.faiss",
                 home / "episodes" / "no-such-episode", home / "media" / ".dl-x-1"]
    leftovers[0].write_bytes(b"half")
    shutil.copy(seg, leftovers[1])
    leftovers[2].mkdir()
    leftovers[3].mkdir(parents=True)
    r = run("doctor", "--json", "--home", str(home))
    assert r.exit_code == 1, r.output
    found = {p["path"] for p in json.loads(r.stdout)["problems"] if p["path"]}
    assert found == {str(p) for p in leftovers}
    r = run("doctor", "--repair", "--home", str(home))
    assert r.exit_code == 0, r.output
    assert not any(p.exists() for p in leftovers) and seg.exists()
    assert run("doctor", "--home", str(home)).exit_code == 0


def test_doctor_reads_embeddings_files_through_the_repair_reader(tiny_home, tmp_path):
    """A lost or foreign embeddings file is named by the same reader the repairs use, then re-embedded."""
    import shutil

    home = tmp_path / "h"
    shutil.copytree(tiny_home, home)
    first, second = sorted((home / "episodes").iterdir())[:2]
    (first / "embeddings.npz").unlink()
    (second / "embeddings.npz").write_bytes(b"PK\x03\x04 not a zip")
    r = run("doctor", "--json", "--home", str(home))
    details = {p["detail"] for p in json.loads(r.stdout)["problems"] if p["kind"] == "stale-embeddings"}
    assert details == {f"episode {first.name}: embeddings.npz is missing",
                       f"episode {second.name}: embeddings.npz is unreadable (BadZipFile)"}, details
    assert run("doctor", "--repair", "--home", str(home)).exit_code == 0
    assert run("doctor", "--home", str(home)).exit_code == 0
