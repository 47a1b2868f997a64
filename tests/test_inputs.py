"""What `talkindex ingest ARG` means, through the real CLI: a media file or a folder of them is an input
(not a urls file read as 5,000 lines of "not valid UTF-8"), a typed file:// URL is accepted, and inputs are
named as typed. `--max-duration 1` stops each episode before any ASR, so these run in seconds."""

from __future__ import annotations

import os
import shutil

from conftest import SAMPLES, run_cli


def errors(p) -> list[str]:
    return [ln for ln in p.stderr.splitlines() if ln.startswith("talkindex: error:")]


def test_media_file_and_folder_as_the_argument(tmp_path):
    talks = tmp_path / "talks"
    talks.mkdir()
    for name in ("a.mp3", "b.mp3"):
        shutil.copy(SAMPLES / "feature-stores.mp3", talks / name)
    (talks / "notes.txt").write_text("not media\n")
    home = tmp_path / "home"
    p = run_cli("ingest", "talks/a.mp3", "--max-duration", "1", home=home, cwd=tmp_path, timeout=300)
    assert p.returncode == 1 and "UTF-8" not in p.stderr, p.stderr
    assert errors(p) == [e for e in errors(p) if e.startswith("talkindex: error: talks/a.mp3: ")] and errors(p)
    assert "--max-duration" in p.stderr and "1 failed" in p.stderr
    p = run_cli("ingest", str(talks), "--max-duration", "1", home=home, timeout=300)
    assert p.returncode == 1 and "UTF-8" not in p.stderr and "notes.txt" not in p.stderr, p.stderr
    assert len(errors(p)) == 2 and "2 failed" in p.stderr, p.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    p = run_cli("ingest", str(empty), home=home, timeout=300)
    assert p.returncode != 0 and len(errors(p)) == 1 and "no media files" in p.stderr, p.stderr


def test_binary_non_media_argument_is_one_line(tmp_path):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00\x01\x02" * 20000)
    p = run_cli("ingest", str(blob), home=tmp_path / "home", timeout=300)
    assert p.returncode != 0 and p.stderr.count("\n") == 1, p.stderr
    assert f"{blob}: not a text file" in p.stderr


def test_file_urls_typed_are_accepted_and_named_as_typed(tmp_path):
    talk = tmp_path / "talk.mp3"
    shutil.copy(SAMPLES / "feature-stores.mp3", talk)
    home = tmp_path / "home"
    p = run_cli("ingest", talk.as_uri(), "--max-duration", "1", home=home, timeout=300)
    assert "file not found" not in p.stderr and errors(p), p.stderr
    assert errors(p)[0].startswith(f"talkindex: error: {talk.as_uri()}: longer than --max-duration"), p.stderr
    missing = tmp_path / "gone" / "shadow"
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{missing.as_uri()}\nfile:///{os.devnull.lstrip('/')}\n")
    p = run_cli("ingest", str(urls), home=home, timeout=300)
    assert p.returncode == 1, p.stderr
    assert f"talkindex: error: {missing.as_uri()}: no such file" in errors(p), p.stderr
    assert any(e.startswith("talkindex: error: file:///dev/null: ") for e in errors(p)), p.stderr
    assert not any(e.startswith(f"talkindex: error: {missing}") for e in errors(p))
