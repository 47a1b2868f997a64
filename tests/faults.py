"""Run the real CLI with one injected fault (tests only; nothing in src/ reads these variables).

    TALKINDEX_FAULT="talkindex.index.store:Store.save_chunks:exit-after:1" \
        python tests/faults.py ingest urls.txt --home H

`module:Qualname:action[:n]` wraps that function; on its n-th call (default 1):
  exit-before / exit-after — `os._exit(137)` before / after the call, as abruptly as `kill -9`
                             (no finally blocks, no flush, no atexit; open files and locks just drop);
  enospc                   — raise OSError(ENOSPC), as a full disk would, instead of calling it.
"""

from __future__ import annotations

import errno
import functools
import importlib
import os
import sys
import threading


def install(spec: str) -> None:
    module, qualname, action, *rest = spec.split(":")
    nth = int(rest[0]) if rest else 1
    owner = importlib.import_module(module)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    calls = [0]
    lock = threading.Lock()

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        with lock:
            calls[0] += 1
            hit = calls[0] == nth
        if hit and action == "exit-before":
            os._exit(137)
        if hit and action == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        result = original(*args, **kwargs)
        if hit and action == "exit-after":
            os._exit(137)
        return result

    setattr(owner, name, wrapper)


if __name__ == "__main__":
    spec = os.environ.get("TALKINDEX_FAULT")
    if spec:
        install(spec)
    from talkindex.cli.app import main

    sys.argv = ["talkindex", *sys.argv[1:]]
    main()
