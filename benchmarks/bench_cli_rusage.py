"""Where a one-shot `talkindex ask` spends its time beside an ingest (issue 23 goal 4, the CLI reader):
back-to-back CLI asks on a copy of the 100k home, each with its wall, user and system seconds, major
faults and involuntary context switches (os.wait4), before and during an ingest of 3 episodes
(transcripts, as bench_concurrent.py). Usage:

    PYTHONPATH=src python benchmarks/bench_cli_rusage.py [--home HOME]

(HOME: the 100k home bench_ask.py builds; default benchmarks/.cache/synth-real-…-100000)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from bench_ask import CACHE, queries  # noqa: E402
from bench_concurrent import timed_ingest  # noqa: E402
from bench_transcripts import make_site  # noqa: E402

DEFAULT = CACHE / "synth-real-all-MiniLM-L6-v2+all-mpnet-base-v2-100000"


def asker(home: str, qs: list[str], stop: Path) -> None:
    """The child: CLI asks back to back until `stop` exists; prints their rusage as JSON."""
    out, i = [], 0
    while not stop.exists():
        t0 = time.time()
        p = subprocess.Popen([sys.executable, "-m", "talkindex", "ask", qs[i % len(qs)], "--json", "--home", home],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, _, ru = os.wait4(p.pid, 0)
        out.append((t0, time.time() - t0, ru.ru_utime, ru.ru_stime, ru.ru_majflt, ru.ru_nivcsw))
        i += 1
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=DEFAULT)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return asker(a.child[0], json.loads(a.child[1]), Path(a.child[2]))
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src"), "NO_COLOR": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        home = tmp / "home"
        shutil.copytree(a.home, home)
        site, stop = tmp / "site", tmp / "stop"
        site.mkdir()
        make_site(site)
        r = subprocess.Popen([sys.executable, __file__, "--child", str(home), json.dumps(queries(home, 50)), str(stop)],
                             stdout=subprocess.PIPE, text=True, env=env)
        time.sleep(15)
        t0, t1, p = timed_ingest(site, home, env)
        time.sleep(3)
        stop.touch()
        lat = json.loads(r.communicate(timeout=120)[0])
    if p.returncode != 0:
        raise SystemExit(f"ingest failed: {p.stderr[-500:]}")
    print(f"ingest {t1 - t0:.1f} s; load average at the end {os.getloadavg()[0]:.2f}")
    during = [x for x in lat if x[0] < t1 and x[0] + x[1] > t0]
    for name, sel in (("before", [x for x in lat if x[0] + x[1] < t0]), ("during", during)):
        def med(k, sel=sel):
            return statistics.median(x[k] for x in sel)
        print(f"{name}: {len(sel)} asks, p50 wall {med(1) * 1000:.0f} ms, user {med(2) * 1000:.0f} ms, "
              f"sys {med(3) * 1000:.0f} ms, major faults {med(4):.0f}, involuntary switches {med(5):.0f}")
    for x in sorted(during, key=lambda x: -x[1])[:5]:
        print(f"  slow: wall {x[1] * 1000:.0f} ms, user {x[2] * 1000:.0f}, sys {x[3] * 1000:.0f}, "
              f"major faults {x[4]}, involuntary switches {x[5]}, started {x[0] - t0:.1f} s into the ingest")


if __name__ == "__main__":
    main()
