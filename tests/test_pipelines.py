"""pipelines/batch_ingest.py and pipelines/ray_ingest.py on the bundled samples (CPU, local Ray).

Both must produce the index a plain `talkindex ingest` produces from the same inputs (the session's
`samples_home`): the same episodes with the same chunk counts (and, for the batch job, the same
chunk texts: it is the same pipeline with the same model and settings)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import ROOT, SAMPLES, run_cli

PIPELINES = ROOT / "pipelines"
TALKS = ["feature-stores.mp3", "model-deployment.mp3", "experiment-tracking.mp3"]


def run_job(script: str, *args: str, timeout: float = 600) -> tuple[subprocess.CompletedProcess, dict]:
    """Run a pipelines/ script as a user would; returns the process and its --json summary."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("TALKINDEX_HOME", None)
    p = subprocess.run([sys.executable, str(PIPELINES / script), *args, "--json"],
                       capture_output=True, text=True, timeout=timeout, env=env)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"{script} printed no summary (exit {p.returncode})\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p, json.loads(lines[-1])


def index_of(home: Path) -> dict[str, dict]:
    """Indexed episodes of a home: id -> {title, chunks (the stored count), texts (the chunks)}."""
    con = duckdb.connect(str(home / "talkindex.duckdb"), read_only=True)
    try:
        eps = con.execute("SELECT id, title, n_chunks FROM episodes WHERE status = 'indexed'").fetchall()
        texts = con.execute("SELECT episode_id, text FROM chunks ORDER BY episode_id, idx").fetchall()
    finally:
        con.close()
    out = {eid: {"title": title, "chunks": n, "texts": []} for eid, title, n in eps}
    for eid, text in texts:
        if eid in out:
            out[eid]["texts"].append(text)
    return out


def vectors_of(home: Path) -> int:
    from talkindex.index.vectors import VectorIndex

    return VectorIndex(home / "vectors").ntotal


def write_urls(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_batch_ingest_resumes_and_matches_plain_ingest(samples_home, tmp_path):
    home = tmp_path / "home"
    bad = tmp_path / "broken.mp3"
    bad.write_text("this is not audio\n")
    talks = [str(SAMPLES / t) for t in TALKS]

    # First run: two talks and a broken file; the broken one fails, the run reports it and exits 1.
    p, s = run_job("batch_ingest.py", str(write_urls(tmp_path / "a.txt", talks[:2] + [str(bad)])),
                   "--home", str(home), "--shard-size", "2")
    assert p.returncode == 1, p.stderr
    assert (s["indexed"], s["skipped"], s["failed"]) == (2, 0, 1), s
    assert "broken" in s["failures"][0] and "decode" in s["failures"][0]
    assert s["shards"] == 2 and s["device"] == "cpu" and s["batch_size"] == "off"
    assert s["audio_hours"] == pytest.approx(2 * 84 / 3600, rel=0.05)
    assert 0 < s["rtf"] < 10 and s["speed_x"] == pytest.approx(1 / s["rtf"], rel=0.05)

    # Rerun with the full list: continues where it stopped (the two indexed talks are skipped).
    p, s = run_job("batch_ingest.py", str(write_urls(tmp_path / "b.txt", talks)), "--home", str(home))
    assert p.returncode == 0, p.stderr
    assert (s["indexed"], s["skipped"], s["failed"]) == (1, 2, 0), s

    got, want = index_of(home), index_of(samples_home)
    assert got.keys() == want.keys()
    assert {k: v["chunks"] for k, v in got.items()} == {k: v["chunks"] for k, v in want.items()}
    assert got == want, "same model and settings as `talkindex ingest`: the same transcripts and chunks"
    assert vectors_of(home) == sum(v["chunks"] for v in want.values())


def test_ray_ingest_matches_plain_ingest(samples_home, tmp_path):
    pytest.importorskip("ray")
    home = tmp_path / "home"
    p, s = run_job("ray_ingest.py", str(SAMPLES / "urls.txt"), "--home", str(home),
                   "--transcribers", "1", "--embedders", "1")
    assert p.returncode == 0, p.stderr
    assert (s["indexed"], s["skipped"], s["failed"]) == (3, 0, 0), s
    assert s["transcribed"] == 3 and s["cluster_gpus"] == 0
    assert s["writer_reembedded_texts"] == 0, "the writer used the embedding actors' vectors"

    got, want = index_of(home), index_of(samples_home)
    assert got.keys() == want.keys()
    assert {k: v["chunks"] for k, v in got.items()} == {k: v["chunks"] for k, v in want.items()}
    assert vectors_of(home) == sum(v["chunks"] for v in want.values())

    # The result is a normal home: `ask` answers from it (ONNX query encoder exported by the driver).
    from talkindex import Index

    question = "what is feature store drift"
    hits = Index(home).ask(question, k=3)
    assert hits and Path(hits[0].media_url).name == "feature-stores.mp3"
    assert hits[0].title == Index(samples_home).ask(question, k=1)[0].title  # the ID3 title where ffprobe is
    from talkindex.embed.passages import export_dir

    for name in Index(home).config.embedders:  # the machine's ONNX exports, one per model (ask: no torch)
        assert (export_dir(name) / "meta.json").is_file(), name


def transcripts_first_site(d: Path) -> Path:
    """A loopback site: a feed with one episode carrying a publisher transcript and one needing ASR, and a
    page whose video has a caption track (yt-dlp's captions)."""
    from test_transcripts_first import TRUTH, item, transcript_tag, vtt

    for name in ("feature-stores.mp3", "model-deployment.mp3", "experiment-tracking.mp3"):
        shutil.copy(SAMPLES / name, d / name)
    (d / "fs.vtt").write_text(vtt(TRUTH["feature-stores"]["sentences"]))
    (d / "et.vtt").write_text(vtt(TRUTH["experiment-tracking"]["sentences"], voices=False))
    ns = 'xmlns:podcast="https://podcastindex.org/namespace/1.0"'
    (d / "feed.xml").write_text(
        f'<?xml version="1.0"?><rss version="2.0" {ns}><channel><title>Mixed</title><language>en</language>'
        + item(1, "Published transcript", "feature-stores.mp3", transcript_tag("fs.vtt", "text/vtt"))
        + item(2, "No transcript", "model-deployment.mp3") + "</channel></rss>")
    (d / "page.html").write_text('<!doctype html><html><head><title>Captioned talk</title></head><body>'
                                 '<video controls src="experiment-tracking.mp3">'
                                 '<track kind="captions" src="et.vtt" srclang="en" label="English"></video>'
                                 "</body></html>")
    return d


def sources_of(home: Path) -> dict[str, str]:
    """title -> transcript_source of the indexed episodes."""
    con = duckdb.connect(str(home / "talkindex.duckdb"), read_only=True)
    try:
        return dict(con.execute("SELECT title, transcript_source FROM episodes WHERE status = 'indexed'").fetchall())
    finally:
        con.close()


def downloaded(home: Path) -> set[str]:
    """Episodes with media in the cache (a file and its markers share a stem), checked to be the ASR one's."""
    files = [f for f in (home / "media").iterdir() if f.is_file()]
    assert (SAMPLES / "model-deployment.mp3").stat().st_size in {f.stat().st_size for f in files}, files
    return {f.name.split(".")[0] for f in files}


def answers(home: Path) -> list[tuple]:
    from talkindex import Index

    return [(h.title, h.start, h.text, h.transcript_source)
            for h in Index(home).ask("what is training serving skew", k=5)]


@pytest.fixture(scope="module")
def mixed_feed(tmp_path_factory):
    """(urls file, plain ingest's home) of the transcripts-first site, served for the module's tests
    (episode ids name the port)."""
    from httpserver import serve

    d = tmp_path_factory.mktemp("mixed")
    (d / "site").mkdir()
    site = transcripts_first_site(d / "site")
    with serve(site) as base:
        urls = write_urls(d / "urls.txt", [f"{base}/feed.xml", f"{base}/page.html"])
        plain = d / "plain"
        run_cli("ingest", str(urls), home=plain, check=True)
        want = sources_of(plain)  # the page's title is yt-dlp's
        assert sorted(want.items(), key=lambda kv: kv[1]) == [
            ("No transcript", "asr"), (next(t for t in want if t.startswith("Captioned talk")), "captions"),
            ("Published transcript", "publisher")]
        assert len(downloaded(plain)) == 1
        yield urls, plain


def assert_same_home(home: Path, plain: Path) -> None:
    """Equal to plain ingest's: transcript sources, media (the ASR episode's only), ensemble, chunks, answers."""
    from talkindex.home import Layout

    assert sources_of(home) == sources_of(plain)
    assert downloaded(home) == downloaded(plain), "no media for the two episodes with transcripts"
    embedders = Layout(plain).load_config().embedders
    assert Layout(home).load_config().embedders == embedders and len(embedders) == 2  # the ensemble
    assert index_of(home) == index_of(plain), "the same transcripts and chunk texts"
    assert vectors_of(home) == vectors_of(plain)
    got = answers(home)
    assert got == answers(plain) and got[0][0] == "Published transcript"


def test_ray_ingest_takes_existing_transcripts_first(mixed_feed, tmp_path):
    """Publisher transcript, captions, then ASR — the order of `talkindex ingest`, with the same ensemble:
    ray_ingest's home equals plain ingest's, and only the ASR episode's media is ever downloaded."""
    pytest.importorskip("ray")
    urls, plain = mixed_feed
    p, s = run_job("ray_ingest.py", str(urls), "--home", str(tmp_path / "ray"), "--transcribers", "1",
                   "--embedders", "1")
    assert p.returncode == 0, p.stderr
    assert (s["indexed"], s["failed"], s["transcribed"], s["existing_transcripts"]) == (3, 0, 1, 2), s
    assert s["writer_reembedded_texts"] == 0, "the writer used the embedding actors' vectors"
    assert_same_home(tmp_path / "ray", plain)


def test_batch_ingest_prefetches_no_media_for_transcripts(mixed_feed, tmp_path):
    """One episode per shard: the next shard's prefetch skips episodes that offer a transcript."""
    urls, plain = mixed_feed
    p, s = run_job("batch_ingest.py", str(urls), "--home", str(tmp_path / "batch"), "--shard-size", "1")
    assert p.returncode == 0, p.stderr
    assert (s["indexed"], s["failed"], s["shards"]) == (3, 0, 3), s
    assert_same_home(tmp_path / "batch", plain)
