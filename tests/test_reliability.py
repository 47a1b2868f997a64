"""Crash safety, `doctor`, concurrent ingest/ask and a short load test, all through the real CLI.

Kill points: a real SIGKILL while downloading and while transcribing, and `os._exit(137)` (what
`kill -9` leaves behind: no cleanup at all) at named steps of the write path, injected by
tests/faults.py. After each crash `talkindex ingest` is rerun and the home must equal a clean run:
same episodes, same chunks per episode, FAISS ids == DuckDB chunk ids, `doctor` clean.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from talkindex.home import Layout
from talkindex.index.store import Store
from talkindex.index.vectors import VectorIndex
from talkindex.ingest import doctor

try:
    from conftest import ROOT, run_cli
except ImportError:  # tests/ imported as a package
    from tests.conftest import ROOT, run_cli

FAULTS = Path(__file__).with_name("faults.py")
QUESTIONS = ["what is feature store drift", "how do canary releases work", "reproducible experiments",
             "roll back a model", "training serving skew", "experiment tracking"]

# name → how the ingest is killed: ("sigkill", when) or a tests/faults.py spec
KILL_POINTS = {
    "download": ("sigkill", "download"),
    "transcription": ("sigkill", "transcribing"),
    "transcript-saved": "talkindex.ingest.pipeline:Pipeline._save_transcript:exit-after",
    "embedding": "talkindex.index.store:Store.save_chunks:exit-before",
    "chunks-written": "talkindex.index.store:Store.save_chunks:exit-after",
    "segment-written": "talkindex.index.vectors:VectorIndex._write_manifest:exit-before",
    "vectors-committed": "talkindex.index.vectors:VectorIndex.add:exit-after",
    "before-keyword-index": "talkindex.index.bm25:KeywordIndex.add:exit-before",
}
REPAIR_FIRST = {"transcript-saved", "chunks-written", "segment-written", "vectors-committed"}


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("TALKINDEX_HOME", None)
    env.pop("TALKINDEX_FAULT", None)
    return env


def popen_cli(*args: str, home: Path, fault: str | None = None) -> subprocess.Popen:
    cmd = [sys.executable, str(FAULTS) if fault else "-m", *([] if fault else ["talkindex"]), *args,
           "--home", str(home)]
    env = _env() | ({"TALKINDEX_FAULT": fault} if fault else {})
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def copy_home(src: Path, dst: Path) -> Path:
    """A private copy of a home (the ONNX query encoder is hard-linked: it is never rewritten)."""
    def copy(s, d):
        return os.link(s, d) if "query_encoder" in Path(s).parts else shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=copy)
    return dst


def snapshot(home: Path) -> dict:
    """Episodes with status and chunk texts/spans; asserts FAISS and DuckDB agree exactly."""
    with Store(Layout(home)).connect(read_only=True) as con:
        eps = {r[0]: {"status": r[1], "n_chunks": r[2], "note": r[3], "chunks": []}
               for r in con.execute("SELECT id, status, n_chunks, note FROM episodes").fetchall()}
        ids = []
        for eid, cid, s, e, text in con.execute(
                'SELECT episode_id, id, start, "end", text FROM chunks ORDER BY episode_id, idx').fetchall():
            eps[eid]["chunks"].append((round(s, 2), round(e, 2), text))
            ids.append(cid)
    faiss_ids = VectorIndex(home / "vectors").ids().tolist()
    assert len(faiss_ids) == len(set(faiss_ids)), "duplicate ids in FAISS"
    assert sorted(faiss_ids) == sorted(ids), "FAISS ids and DuckDB chunks disagree"
    return eps


# ---------------------------------------------------------------------------------------------
# inputs: two local speech clips and one served slowly over loopback HTTP


class _Slow(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def do_GET(self):
        if not self.path.startswith("/slow/"):
            return super().do_GET()
        body = (Path(self.directory) / self.path.removeprefix("/slow/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for i in range(0, len(body), 16384):
                self.wfile.write(body[i:i + 16384])
                self.wfile.flush()
                time.sleep(0.06)
        except OSError:
            pass


SPEECH = {
    "a": "Feature stores keep training and serving data consistent. Drift happens when the input data changes.",
    "b": "Canary releases send a small share of traffic to the new model. Roll back quickly when errors rise.",
    "c": "Track every experiment with its code version and data hash. Then anyone can reproduce the result.",
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    for tool in ("espeak-ng", "ffmpeg"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    d = tmp_path_factory.mktemp("clips")
    for name, text in SPEECH.items():
        subprocess.run(["espeak-ng", "-s", "160", "-w", str(d / f"{name}.wav"), text], check=True)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a, **kw: _Slow(*a, directory=str(d), **kw))
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    urls = d / "urls.txt"
    urls.write_text(f"a.wav\nb.wav\nhttp://127.0.0.1:{srv.server_address[1]}/slow/c.wav\n")
    yield urls
    srv.shutdown()
    srv.server_close()


def _asker(home: Path, stop: threading.Event, results: list, i: int) -> None:
    n = 0
    while not stop.is_set() or n < 2:
        q = QUESTIONS[(i + n) % len(QUESTIONS)]
        p = run_cli("ask", q, "--json", home=home, timeout=120)
        ok = p.returncode == 0 and len(json.loads(p.stdout or "[]")) > 0
        results.append((ok, q, p.returncode, p.stderr[-500:]))
        n += 1


@pytest.fixture(scope="module")
def reference(samples_home, inputs, tmp_path_factory):
    """A clean ingest of `inputs` on top of the sample index, while 4 askers query the same home
    and a second ingest is refused. Returns (home, snapshot)."""
    home = copy_home(samples_home, tmp_path_factory.mktemp("reference") / "home")
    before = snapshot(home)
    p = popen_cli("ingest", str(inputs), home=home)
    deadline = time.monotonic() + 60
    while (home / "ingest.lock").read_text().strip() != str(p.pid):
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()
        time.sleep(0.05)
    second = run_cli("ingest", str(inputs), home=home, timeout=120)
    first_running = p.poll() is None
    stop = threading.Event()
    results: list = []
    askers = [threading.Thread(target=_asker, args=(home, stop, results, i)) for i in range(4)]
    for t in askers:
        t.start()
    out, err = p.communicate(timeout=600)
    stop.set()
    for t in askers:
        t.join(timeout=300)
    assert p.returncode == 0, err
    if first_running:
        assert second.returncode == 1, second.stderr
        assert "another ingest is running" in second.stderr and second.stderr.count("\n") == 1, second.stderr
    bad = [r for r in results if not r[0]]
    assert not bad, f"{len(bad)} of {len(results)} asks failed during ingest: {bad[:3]}"
    assert len(results) >= 8
    snap = snapshot(home)
    for eid, ep in before.items():  # the prior index is untouched
        assert snap[eid] == ep
    assert sum(ep["status"] == "indexed" for ep in snap.values()) == len(before) + 3
    assert doctor.check(home) == []
    return home, snap


def _kill_when(p: subprocess.Popen, home: Path, when: str) -> str:
    """SIGKILL `p` as soon as it is downloading / transcribing; returns its stderr so far."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(p.stderr.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while p.poll() is None and time.monotonic() < deadline:
        if when == "download" and any(f.is_file() and f.stat().st_size > 0
                                      for f in (home / "media").glob(".dl-*/*")):
            break
        if when == "transcribing" and any("transcribing:" in ln for ln in lines):
            break
        time.sleep(0.01)
    assert p.poll() is None, f"ingest ended before the kill point {when!r}: {''.join(lines)}"
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    reader.join(timeout=5)
    return "".join(lines)


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_then_rerun_equals_clean_run(point, reference, samples_home, inputs, tmp_path):
    ref_home, ref = reference
    home = copy_home(samples_home, tmp_path / "home")
    how = KILL_POINTS[point]
    if isinstance(how, tuple):
        p = popen_cli("ingest", str(inputs), home=home)
        _kill_when(p, home, how[1])
        assert p.returncode == -signal.SIGKILL
    else:
        p = popen_cli("ingest", str(inputs), home=home, fault=how)
        _, err = p.communicate(timeout=600)
        assert p.returncode == 137, f"fault {how} never fired (exit {p.returncode}): {err[-2000:]}"
    problems = doctor.check(home)  # never raises on a crashed home
    # the prior index is still searchable right after the crash
    p = run_cli("ask", QUESTIONS[0], "--json", home=home, timeout=120)
    assert p.returncode == 0 and json.loads(p.stdout), p.stderr
    if point in REPAIR_FIRST:
        assert problems, f"doctor saw nothing wrong after a crash at {point}"
        doctor.repair(home)
        left = doctor.check(home)
        assert {x.kind for x in left} <= {"not-transcribed"}, left  # only what needs transcription
    rerun = run_cli("ingest", str(inputs), home=home, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert snapshot(home) == ref
    assert doctor.check(home) == []
    assert not list((home / "media").glob(".dl-*"))


# ---------------------------------------------------------------------------------------------
# doctor on a damaged home


def test_doctor_finds_and_repairs_damage(samples_home, tmp_path):
    home = copy_home(samples_home, tmp_path / "home")
    clean = run_cli("doctor", "--json", home=home)
    assert clean.returncode == 0 and json.loads(clean.stdout)["ok"], clean.stdout + clean.stderr
    before = snapshot(home)
    eps = sorted(before)
    original = (home / "episodes" / eps[0] / "transcript.json").read_text()
    # damage: a lost FAISS segment, a lost transcript, stale embeddings, leftovers of a crash
    manifest = json.loads((home / "vectors" / "manifest.json").read_text())
    (home / "vectors" / manifest["segments"][0]["file"]).unlink()
    (home / "episodes" / eps[0] / "transcript.json").unlink()
    (home / "episodes" / eps[1] / "embeddings.npz").unlink()
    (home / "vectors" / ".seg-000999.faiss.tmp").write_bytes(b"half")
    (home / "media" / ".dl-x-123").mkdir(parents=True)
    with Store(Layout(home)).connect() as con:
        con.execute("UPDATE meta SET value = '1' WHERE key = 'next_chunk_id'")
    p = run_cli("doctor", "--json", home=home)
    assert p.returncode == 1
    kinds = {x["kind"] for x in json.loads(p.stdout)["problems"]}
    assert {"segment-missing", "missing-transcript", "stale-embeddings", "stray-file",
            "chunk-id-counter"} <= kinds, kinds
    text = run_cli("doctor", home=home)
    assert text.returncode == 1 and all(ln.startswith("problem: ") for ln in text.stdout.splitlines())
    p = run_cli("doctor", "--repair", home=home, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "rebuilt FAISS" in p.stdout and "rewrote transcript.json" in p.stdout
    after = snapshot(home)
    assert {e: (v["status"], v["chunks"]) for e, v in after.items()} == \
           {e: (v["status"], v["chunks"]) for e, v in before.items()}
    got = json.loads((home / "episodes" / eps[0] / "transcript.json").read_text())
    assert got["segments"] == json.loads(original)["segments"]
    with np.load(home / "episodes" / eps[1] / "embeddings.npz") as z:
        assert len(z["chunk_ids"]) == before[eps[1]]["n_chunks"]
    assert run_cli("doctor", home=home).returncode == 0
    hits = json.loads(run_cli("ask", QUESTIONS[0], "--json", home=home, check=True).stdout)
    assert hits
    # a corrupt manifest is rebuilt from the stored embeddings as well
    (home / "vectors" / "manifest.json").write_text("{not json")
    assert run_cli("doctor", home=home).returncode == 1
    assert run_cli("doctor", "--repair", home=home).returncode == 0
    assert snapshot(home) == after


def test_doctor_refuses_while_ingest_runs(tmp_path):
    from talkindex.errors import BusyError
    from talkindex.home import Layout, WriterLock

    home = tmp_path / "home"
    Store(Layout(home)).init()
    with WriterLock(Layout(home)):
        p = run_cli("doctor", "--repair", home=home)
        assert p.returncode == 1 and "another ingest is running" in p.stderr
        with pytest.raises(BusyError):
            doctor.repair(home)
    empty = run_cli("doctor", home=tmp_path / "nothing")
    assert empty.returncode == 1 and "no index" in empty.stdout


# ---------------------------------------------------------------------------------------------
# load: 200 asks in a row (API), a 200-question CLI batch, concurrent CLI askers (see `reference`)


def test_200_asks_in_a_row(samples_home, tmp_path):
    from talkindex import Index

    idx = Index(samples_home)
    t0 = time.perf_counter()
    for i in range(200):
        hits = idx.ask(QUESTIONS[i % len(QUESTIONS)] + f" {i}", k=3)
        assert hits and hits[0].episode_id
    per_ask = (time.perf_counter() - t0) / 200
    assert per_ask < 1.0
    qfile = tmp_path / "q.txt"
    qfile.write_text("\n".join(QUESTIONS[i % len(QUESTIONS)] for i in range(200)) + "\n")
    p = run_cli("ask", "--file", str(qfile), "-k", "3", home=samples_home, check=True, timeout=300)
    rows = [json.loads(ln) for ln in p.stdout.splitlines()]
    assert len(rows) == 200 and all(r["hits"] for r in rows)
