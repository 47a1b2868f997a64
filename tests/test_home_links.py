"""Links planted in a home: the writer never follows them (the lock, atomic writes), one clear line instead.

A symlink `home/ingest.lock` → a user's file used to be opened O_RDWR|O_CREAT and truncated."""

from __future__ import annotations

import os
import shutil

import pytest
from typer.testing import CliRunner

from talkindex.cli.app import app

pytestmark = pytest.mark.fast
runner = CliRunner()


@pytest.fixture
def home(tiny_home, tmp_path):
    h = tmp_path / "home"
    shutil.copytree(tiny_home, h)
    return h


@pytest.fixture
def precious(tmp_path):
    p = tmp_path / "precious.txt"
    p.write_text("do not truncate me\n")
    return p


def run(*args: str):
    r = runner.invoke(app, list(args), catch_exceptions=False)
    assert "Traceback" not in r.output and "unexpected" not in r.output, r.output
    return r


@pytest.mark.parametrize("command", [["ingest"], ["doctor", "--repair"]])
def test_symlinked_lock_is_refused_and_target_untouched(home, tmp_path, precious, command):
    (home / "ingest.lock").unlink(missing_ok=True)
    (home / "ingest.lock").symlink_to(precious)
    args = list(command)
    if command == ["ingest"]:
        urls = tmp_path / "urls.txt"
        urls.write_text("# nothing new\n")
        args.append(str(urls))
    r = run(*args, "--home", str(home))
    assert r.exit_code != 0, r.output
    err = r.stderr.strip()
    assert err.count("\n") == 0 and err.startswith("talkindex: error:") and "ingest.lock" in err, err
    assert "symbolic link" in err
    assert precious.read_text() == "do not truncate me\n"
    assert (home / "ingest.lock").is_symlink()  # left for the user to look at


def test_atomic_write_does_not_follow_a_planted_temp_link(home, tmp_path, precious):
    """config.json is written through `.config.json.<pid>.tmp`: a link planted under that name is replaced."""
    (home / "config.json").unlink()
    planted = home / f".config.json.{os.getpid()}.tmp"
    planted.symlink_to(precious)
    urls = tmp_path / "urls.txt"
    urls.write_text("# nothing new\n")
    r = run("ingest", str(urls), "--home", str(home))
    assert r.exit_code == 0, r.output
    assert precious.read_text() == "do not truncate me\n"
    assert (home / "config.json").is_file() and not (home / "config.json").is_symlink()
    assert not planted.exists() and not planted.is_symlink()
