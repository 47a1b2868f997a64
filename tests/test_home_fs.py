"""A home on a read-only or full filesystem, for real: a private mount namespace (`unshare -m`) mounts a
read-only bind or a small tmpfs, and the CLI runs inside it. Skips where mounts are not permitted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT


def in_namespace(script: str, *args: str) -> str:
    """Run `script` (sh) in its own mount namespace with $PY = the CLI; returns its output."""
    if not shutil.which("unshare"):
        pytest.skip("needs unshare (util-linux)")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"mount namespaces not permitted here: {probe.stderr.decode().strip()}")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1", "PY": f"{sys.executable} -m talkindex"}
    env.pop("TALKINDEX_HOME", None)
    p = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *args], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=300, env=env)
    return p.stdout


@pytest.fixture
def home(tiny_home, tmp_path):
    h = tmp_path / "home"
    shutil.copytree(tiny_home, h)
    return h


def test_read_only_home(home, tmp_path):
    out = in_namespace('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 99\n'
                       'echo "== repair"; $PY doctor --repair --home "$1"; echo "rc=$?"\n'
                       'echo "== ingest"; $PY ingest "$2" --home "$1"; echo "rc=$?"\n'
                       'echo "== ask"; $PY ask "feature store drift" -k 1 --home "$1" >/dev/null; echo "rc=$?"\n',
                       str(home), str(ROOT / "data" / "samples" / "urls.txt"))
    assert "unexpected" not in out and "Traceback" not in out, out
    repair = out.split("== repair\n")[1].split("== ingest")[0]
    assert repair.strip().splitlines() == [f"talkindex: error: --home {home}: not writable", "rc=2"], out
    assert f"talkindex: error: --home {home}: not writable" in out.split("== ingest")[1], out
    assert out.split("== ask\n")[1].strip() == "rc=0", out  # reading still works


def test_full_disk_names_each_input_and_rerun_cleans_temp_files(home, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text("https://example.invalid/a.mp3\nhttps://example.invalid/feed.xml\n")
    eid = sorted(os.listdir(home / "episodes"))[0]
    (tmp_path / "mnt").mkdir()
    out = in_namespace(
        'mount -t tmpfs -o size=16m tmpfs "$1" || exit 99\ncp -a "$2" "$1/home"\n'
        'dd if=/dev/zero of="$1/fill" bs=64k 2>/dev/null\n'
        'echo "== full"; $PY ingest "$3" --home "$1/home"; echo "rc=$?"\n'
        'rm -f "$1/fill"; touch "$1/home/episodes/$4/.transcript.json.4242.tmp"\n'
        'echo "== rerun"; $PY ingest /dev/null --home "$1/home"; echo "rc=$?"\n'
        'ls -a "$1/home/episodes/$4"\n'
        'echo "== doctor"; $PY doctor --home "$1/home"; echo "rc=$?"\n',
        str(tmp_path / "mnt"), str(home), str(urls), eid)
    assert "unexpected" not in out and "Traceback" not in out and "TransactionContext" not in out, out
    full = out.split("== full\n")[1].split("== rerun")[0].strip().splitlines()
    assert full[:2] == [f"talkindex: error: https://example.invalid/{n}: disk full (nothing could be written to "
                        f"--home {tmp_path / 'mnt' / 'home'})" for n in ("a.mp3", "feed.xml")], out
    assert full[-1] == "rc=1", out
    rerun = out.split("== rerun\n")[1].split("== doctor")[0]
    assert "rc=0" in rerun and ".tmp" not in rerun, out
    assert out.split("== doctor\n")[1].strip().endswith("rc=0"), out
