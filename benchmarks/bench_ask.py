"""Issue 23, goals 2-3: cold `talkindex ask` vs `python -c "import numpy, faiss, duckdb"`, and warm
Index.ask() against the query encoders' own time.

The index is the product's default ensemble (MiniLM + mpnet: one ONNX query encoder per model, vectors
joined like the product's, see _synth.py) unless `--embedders` says otherwise; repeat the option to
measure several indexes in one run (e.g. `--embedders all-MiniLM-L6-v2+all-mpnet-base-v2 --embedders
all-MiniLM-L6-v2` puts the one-model baseline beside the pair; cold runs of every index are
interleaved with the baseline's).

Cold: every repetition is a new interpreter; baseline and candidates run interleaved, medians and
their ratio are printed (goal: <= 2.5x the baseline). The index is synthetic (~1 hour of audio = 400
chunks, `--cold-chunks`) with the real ONNX query encoders.
Warm: Index.ask() in this process over `--warm-chunks` synthetic chunks whose vectors are each model's
embeddings of perturbed real text (_realvecs.py, `--real-base` real texts, mixes beyond), after 20
first questions and 60 warm-up ones. Each timed question, interleaved:
  * each model's ONNX query encoder alone (its own session, as the Searcher loads it) encoding the
    question: "the encoders' own time" is their sum per question;
  * Index.ask(question);
  * the rest: Index.ask(another question of the same kind, qvec=its vector computed beforehand, the
    path `serve` takes): FAISS, sentence vectors, rows and ranking without any encoding (a different
    question, so no cache holds what the ask just fetched).
Questions: "what did they say about" + 3 indexed (random-letter) words, ~19 mpnet tokens (the devsets'
real questions: ~16), so the encoders' own time is a little longer than for a real question.
Goals: ask p50 <= 1.5x the encoders' own time (p50), p90 <= 2x p50, the rest p50 <= 10 ms. Beside
it a bare numpy brute-force scan of the same vectors (the least any dense search can do). Usage:

    PYTHONPATH=src python benchmarks/bench_ask.py [--reps 9] [--cold-chunks 400] [--warm-chunks 100000]
        [--warm-queries 40] [--embedders A+B ...] [--real-base 20000] [--json]

Needs the ONNX exports of the models (`talkindex.embed.passages.export_dir`): made once, if missing, by
ingesting the bundled samples into benchmarks/.cache/samples-home (torch, minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

from _synth import build_home, median  # noqa: E402

BASELINE = [sys.executable, "-c", "import numpy, faiss, duckdb"]
CACHE = HERE / ".cache"


def index_sets(values: list[str] | None) -> list[list[str]]:
    """`--embedders` values (each "a+b" or one name) → the indexes to measure; default: the product's."""
    from talkindex.home import default_embedders, split_embedders

    return [split_embedders(v) for v in values] if values else [default_embedders()[0]]


def label(names: list[str]) -> str:
    from talkindex.embed.passages import embedder_key

    return "+".join(embedder_key(n) for n in names)


def encoder_home(given: Path | None, embedders=None) -> Path | None:
    """The ONNX exports are per machine (talkindex.embed.passages.export_dir); make them once if missing."""
    from _realvecs import embedders as names_of

    from talkindex.embed.passages import export_dir

    names = names_of(embedders)
    exported = all((export_dir(n) / "meta.json").exists() for n in names)
    if exported:
        from talkindex.embed.coldgraph import ensure_cold_model

        for n in names:  # exports made before the cold-start graph existed gain it, as an ingest gives them
            ensure_cold_model(export_dir(n))
    if given or exported:
        return given
    home = CACHE / "samples-home"
    print(f"making the ONNX query encoders of {'+'.join(names)}: ingesting data/samples (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "talkindex", "ingest", str(ROOT / "data" / "samples" / "urls.txt"),
                    "--home", str(home), "--embedder", "+".join(names)], check=True, env=_env())
    return home


def warm_home(n_chunks: int, embedders=None, real_base: int = 20_000, prefix: str = "synth-real",
              **kw) -> Path:
    """A cached real-vector home of `n_chunks` for these models (rebuilt when its recipe changed)."""
    from _realvecs import embedders as names_of

    names = names_of(embedders)
    home = CACHE / f"{prefix}-{label(names)}-{n_chunks}"
    recipe = {"chunks": n_chunks, "embedders": names, "real_base": min(real_base, n_chunks),
              **{k: v for k, v in kw.items() if k != "encoder_from"}}
    stamp = home.with_name(home.name + ".json")
    if not ((home / "vectors" / "manifest.json").exists() and stamp.exists()
            and json.loads(stamp.read_text()) == recipe):
        stamp.unlink(missing_ok=True)
        build_home(home, n_chunks, real=True, embedders=names, real_base=real_base, **kw)
        stamp.write_text(json.dumps(recipe))
    return home


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}


def queries(home: Path, n: int, seed: int = 1) -> list[str]:
    """Questions made of words that occur in the index (so BM25 has work to do)."""
    import duckdb

    con = duckdb.connect(str(home / "talkindex.duckdb"), read_only=True)
    texts = [r[0] for r in con.execute("SELECT text FROM chunks USING SAMPLE 200 ROWS").fetchall()]
    con.close()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = texts[i % len(texts)].split()
        out.append("what did they say about " + " ".join(rng.choice(words, 3, replace=False)))
    return out


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{cmd} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return dt


def cold_many(cands: dict[str, tuple[Path, str]], reps: int) -> dict:
    """Interleaved new-process runs of the baseline and each `label: (home, question)`; medians, ratios."""
    cmds = {k: [sys.executable, "-m", "talkindex", "ask", q, "--home", str(h), "--json"] for k, (h, q) in cands.items()}
    timed(BASELINE)
    for c in cmds.values():  # page cache warm for all
        timed(c)
    base, runs = [], {k: [] for k in cmds}
    for _ in range(reps):
        base.append(timed(BASELINE))
        for k, c in cmds.items():
            runs[k].append(timed(c))
    b = median(base)
    out = {"baseline_s": round(b, 3), "baseline_runs": [round(x, 3) for x in base], "asks": {}}
    for k, xs in runs.items():
        out["asks"][k] = {"ask_s": round(median(xs), 3), "ratio": round(median(xs) / b, 2),
                          "ask_runs": [round(x, 3) for x in xs]}
    return out


def cold(home: Path, reps: int, question: str) -> dict:
    """One index: interleaved new-process runs; returns medians and the ratio."""
    r = cold_many({"ask": (home, question)}, reps)
    return {"baseline_s": r["baseline_s"], "baseline_runs": r["baseline_runs"], **r["asks"]["ask"]}


def pctl(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]


def member_encoders(names: list[str]) -> dict:
    """Each model's ONNX query encoder, loaded as a live Searcher holds it (machine-wide export; the
    throughput session it swaps in after its first question, with the same thread settings)."""
    from talkindex.embed.onnx import load_query_encoder
    from talkindex.embed.passages import export_dir

    out = {}
    for n in names:
        enc = load_query_encoder(export_dir(n), bulk=True, spin=False)
        if enc is None:
            raise SystemExit(f"no ONNX export of {n} under {export_dir(n)}")
        out[n] = enc
    return out


def warm(home: Path, n_queries: int = 40, warmup: int = 60) -> dict:
    """A live process: the first 20 questions after start (episodes loaded on first touch), then,
    after `warmup` questions, `n_queries` timed ones (steady state): each interleaved with the
    models' own query encoders and with a search from a precomputed vector (the rest); then a numpy scan."""
    from talkindex.api import Index
    from talkindex.index.vectors import VectorIndex

    idx = Index(home)
    names = idx.config.embedders
    qs = queries(home, 20 + warmup + 2 * n_queries, seed=3)
    first = []
    for q in qs[:20]:
        t0 = time.perf_counter()
        idx.ask(q)
        first.append(time.perf_counter() - t0)
    for q in qs[20:20 + warmup]:
        idx.ask(q)
    timed_qs = qs[20 + warmup: 20 + warmup + n_queries]
    rest_qs = qs[20 + warmup + n_queries:]
    rest_vecs = idx.searcher.encode(rest_qs)  # the rest: searched from these, never encoded while timed
    encs = member_encoders(names)
    for e in encs.values():  # warm sessions
        for q in qs[:5]:
            e.encode([q])
    ask_t, rest_t, enc_t = [], [], {n: [] for n in names}
    for q, rq, rv in zip(timed_qs, rest_qs, rest_vecs, strict=True):
        for n, e in encs.items():
            t0 = time.perf_counter()
            e.encode([q])
            enc_t[n].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        idx.ask(q)
        ask_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        idx.ask(rq, qvec=rv)
        rest_t.append(time.perf_counter() - t0)
    del encs
    vi = VectorIndex(home / "vectors")
    vecs = vi.read_all()[1]  # the baseline scans the same vectors, in its own block (a scan flushes CPU caches)
    base_t = []
    for v in rest_vecs:
        t0 = time.perf_counter()
        np.argpartition(-(vecs @ v), 50)[:50]
        base_t.append(time.perf_counter() - t0)
    n_vecs, dim = vecs.shape
    del vecs
    enc_sum = [sum(ts) for ts in zip(*enc_t.values(), strict=True)]
    a, b, e = median(ask_t), median(base_t), median(enc_sum)
    ms = lambda x: round(x * 1000, 1)  # noqa: E731
    return {"chunks": n_vecs, "dim": dim, "embedders": names, "queries": len(ask_t),
            "ask_ms": ms(a), "p90_ms": ms(pctl(ask_t, 0.9)), "p90_over_p50": round(pctl(ask_t, 0.9) / a, 2),
            "encoders_ms": ms(e), "encoder_ms": {n: ms(median(ts)) for n, ts in enc_t.items()},
            "ask_over_encoders": round(a / e, 2), "rest_ms": ms(median(rest_t)), "rest_p90_ms": ms(pctl(rest_t, 0.9)),
            "ask_minus_encoders_ms": ms(median([x - y for x, y in zip(ask_t, enc_sum, strict=True)])),
            "numpy_scan_ms": ms(b), "ratio": round(a / b, 2), "first20_ms": ms(median(first))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--cold-chunks", type=int, default=400)
    ap.add_argument("--warm-chunks", type=int, default=100_000)
    ap.add_argument("--warm-queries", type=int, default=40, help="timed warm questions (after 80 untimed)")
    ap.add_argument("--embedders", action="append", metavar="A+B",
                    help="an index's models (repeat to compare indexes; default: the product's ensemble)")
    ap.add_argument("--real-base", type=int, default=20_000,
                    help="real-text embeddings per model behind the warm index (mixes of them beyond)")
    ap.add_argument("--encoder-home", type=Path)
    ap.add_argument("--skip-warm", action="store_true")
    ap.add_argument("--skip-cold", action="store_true")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    a = ap.parse_args()
    sets = index_sets(a.embedders)
    enc = encoder_home(a.encoder_home, sorted({n for s in sets for n in s}))
    res = {"load_average": [round(x, 2) for x in os.getloadavg()], "cold": None, "warm": {}}
    if not a.skip_cold:
        print(f"cold ask, {a.cold_chunks} chunks (~{a.cold_chunks / 400:.1f} h of audio), {a.reps} interleaved runs")
        cands = {}
        for names in sets:
            home = CACHE / f"synth-{label(names)}-{a.cold_chunks}"
            build_home(home, a.cold_chunks, encoder_from=enc, log=lambda *x: None, embedders=names)
            cands[label(names)] = (home, queries(home, 1)[0])
        r = res["cold"] = cold_many(cands, a.reps)
        print(f"  baseline (import numpy, faiss, duckdb): {r['baseline_s']:.3f} s   runs {r['baseline_runs']}")
        for k, c in r["asks"].items():
            print(f"  talkindex ask [{k}]: {c['ask_s']:.3f} s   ratio {c['ratio']:.2f}x   (goal <= 2.5x)"
                  f"   runs {c['ask_runs']}")
    if not a.skip_warm:
        for names in sets:
            print(f"warm Index.ask(), {a.warm_chunks} chunks, {'+'.join(names)}", flush=True)
            home = warm_home(a.warm_chunks, names, a.real_base, encoder_from=enc)
            w = res["warm"][label(names)] = warm(home, a.warm_queries)
            print(f"  steady state ({w['queries']} questions, {w['dim']}-d): Index.ask() p50 {w['ask_ms']} ms, "
                  f"p90 {w['p90_ms']} ms (p90/p50 {w['p90_over_p50']}; goal <= 2)")
            each = ", ".join(f"{n} {t} ms" for n, t in w["encoder_ms"].items())
            print(f"  the query encoders' own time (one question, in process, warm): p50 {w['encoders_ms']} ms "
                  f"({each})")
            print(f"  ask = {w['ask_over_encoders']}x the encoders' own time (goal <= 1.5x); ask - encoders p50 "
                  f"{w['ask_minus_encoders_ms']} ms")
            print(f"  the rest (Index.ask(qvec=) from a precomputed vector: FAISS, sentence vectors, rows, ranking): "
                  f"p50 {w['rest_ms']} ms, p90 {w['rest_p90_ms']} ms (goal <= 10 ms)")
            print(f"  numpy brute-force scan of the same vectors: {w['numpy_scan_ms']} ms (ask / scan {w['ratio']}x)")
            print(f"  first 20 questions of the process: median {w['first20_ms']} ms")
    if a.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
