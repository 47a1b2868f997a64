"""Damaged homes: every command gives one line (never a traceback), nothing indexed is lost, and the next
ingest or `doctor --repair` heals the index from what is stored. Fast: copies of the tiny home."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from talkindex import Index
from talkindex.cli.app import app
from talkindex.home import Layout

pytestmark = pytest.mark.fast
runner = CliRunner()


def run(*args: str):
    r = runner.invoke(app, list(args), catch_exceptions=False)
    assert "Traceback" not in r.output, r.output
    return r


@pytest.fixture
def home(tiny_home, tmp_path):
    h = tmp_path / "home"
    shutil.copytree(tiny_home, h)
    return h


def ask_ids(home, mode="hybrid") -> set[str]:
    r = run("ask", "feature store drift canary experiment", "-k", "10", "--json", "--mode", mode, "--home", str(home))
    assert r.exit_code == 0, r.output
    return {h["episode_id"] for h in json.loads(r.stdout)}


def empty_ingest(home, tmp_path, *extra):
    urls = tmp_path / "empty.txt"
    urls.write_text("# nothing new\n")
    return run("ingest", str(urls), "--home", str(home), *extra)


def test_truncated_segment(home, tmp_path):
    seg = next((home / "vectors").glob("seg-*.faiss"))
    seg.write_bytes(seg.read_bytes()[:100])
    assert ask_ids(home, "keyword")  # ask still answers (keyword side; dense skips the segment with a warning)
    r = run("doctor", "--home", str(home))
    assert r.exit_code == 1 and "segment-unreadable" in r.stdout
    r = empty_ingest(home, tmp_path)  # the next ingest heals it from the stored embeddings
    assert r.exit_code == 0 and "rebuilt the vector index" in r.stderr, r.output
    assert len(ask_ids(home, "dense")) == 3
    assert run("doctor", "--home", str(home)).exit_code == 0


@pytest.mark.parametrize("content", ["garbage{", '{"segments": 7}', '{"segments": [{"file": "../x", "n": 1}]}', None])
def test_bad_or_missing_manifest(home, tmp_path, content):
    m = home / "vectors" / "manifest.json"
    if content is None:
        m.unlink()
    else:
        m.write_text(content)
    before = {p.name for p in (home / "vectors").glob("seg-*.faiss")}
    assert ask_ids(home, "keyword")
    r = run("doctor", "--home", str(home))
    assert r.exit_code == 1, r.output
    assert {p.name for p in (home / "vectors").glob("seg-*.faiss")} >= before  # nothing deleted meanwhile
    r = empty_ingest(home, tmp_path)
    assert r.exit_code == 0, r.output
    assert len(ask_ids(home, "dense")) == 3  # every old episode is back in dense search
    assert run("doctor", "--home", str(home)).exit_code == 0


def test_transcript_of_the_wrong_shape(home, tmp_path):
    eid = Index(home).episodes()[0]["id"]
    path = Layout(home).transcript(eid)
    for bad in ('{"segments": [{"start": "x"}]}', "[1, 2, 3]", '{"episode_id": 5, "segments": []}', "\x00\x01"):
        path.write_text(bad)
        r = run("transcript", eid, "--home", str(home))
        assert r.exit_code == 0 and r.stdout.strip(), r.output  # rebuilt from the database rows
        r = run("doctor", "--home", str(home))
        assert r.exit_code == 1 and "bad-transcript" in r.stdout, r.output
    assert empty_ingest(home, tmp_path).exit_code == 0
    r = run("doctor", "--repair", "--home", str(home))
    assert r.exit_code == 0 and "rewrote transcript.json" in r.stdout, r.output
    assert json.loads(path.read_text())["segments"]


def test_damaged_keyword_index_heals(home, tmp_path):
    for f in (home / "keywords").glob("kw-*/terms.npy"):
        f.write_bytes(b"junk")
    assert ask_ids(home, "dense")
    r = empty_ingest(home, tmp_path)
    assert r.exit_code == 0, r.output
    assert ask_ids(home, "keyword")
    assert run("doctor", "--home", str(home)).exit_code == 0


def test_cut_embeddings_file(home):
    """A cut embeddings.npz (np.load raises BadZipFile): ask still answers, doctor names the file in
    one line, --repair re-embeds the episode from its stored transcript."""
    eid = Index(home).episodes()[0]["id"]
    path = Layout(home).embeddings(eid)
    path.write_bytes(path.read_bytes()[:3000])
    assert ask_ids(home)
    r = run("doctor", "--home", str(home))
    assert r.exit_code == 1 and "embeddings.npz is unreadable (BadZipFile)" in r.stdout, r.output
    assert "unexpected" not in r.output
    r = run("doctor", "--repair", "--home", str(home))
    assert r.exit_code == 0 and "re-embedded" in r.stdout, r.output
    assert run("doctor", "--home", str(home)).exit_code == 0


def test_unusable_homes(tmp_path):
    for where, needle in ((tmp_path / "f", "is a file"), ("/proc/talkindex", "system directory")):
        if needle == "is a file":
            where.write_text("x")
        for args in (["list"], ["ask", "x"], ["doctor"], ["ingest", "https://127.0.0.1:9/x.mp3"]):
            r = run(*args, "--home", str(where))
            assert r.exit_code == 2 and needle in r.stderr, (args, r.output)
            assert len(r.stderr.strip().splitlines()) == 1


def test_damaged_config(home, tmp_path):
    (home / "config.json").write_text("{not json")
    r = run("ask", "x", "--home", str(home))
    assert r.exit_code == 2 and "config" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.output


def test_database_not_duckdb(home):
    (home / "talkindex.duckdb").write_bytes(b"this is not a database" * 100)
    for args in (["list"], ["ask", "x"], ["doctor"]):
        r = run(*args, "--home", str(home))
        assert r.exit_code in (1, 2) and r.stderr.startswith("talkindex: error:"), (args, r.output)
        assert len(r.stderr.strip().splitlines()) == 1
