"""Rows of an array stored in an uncompressed .npz, read on demand with pread.

Why: ranking needs the sentence vectors of ~50 candidate windows per question (a few rows each), in
as many episodes. Loading each episode's whole member (np.load: ~1.2 MB read and CRC-checked per
hour of audio) cost ~2 ms an episode, and a home of 1M chunks (2500 episodes, ~4 GB of sentence
vectors) cannot keep them all in memory: a warm question spent ~120 ms there. np.savez stores members
uncompressed, so a member's rows sit at a fixed offset in the file: this reads just the rows asked
for and leaves caching to the OS page cache (no file descriptor is kept open).
"""

from __future__ import annotations

import os
import struct
import zipfile

import numpy as np

# What reading a damaged .npz raises (np.load: BadZipFile for a cut file, EOFError, ValueError, ...):
# every reader of embeddings files catches exactly these.
NPZ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


class NpzRows:
    """A read-only view of one member: `len()`, `shape`, `dtype`, slicing by rows, `np.asarray`."""

    def __init__(self, path: str, offset: int, shape: tuple[int, ...], dtype: np.dtype):
        self.path, self.offset, self.shape, self.dtype = path, offset, shape, dtype
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:  # what it holds in memory (for cache accounting): nothing but itself
        return 0

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            return np.asarray(self)[key]
        lo, hi, _ = key.indices(self.shape[0])
        return self._read(lo, max(lo, hi))

    def __array__(self, dtype=None, copy=None):
        a = self._read(0, self.shape[0])
        return a if dtype is None else a.astype(dtype)

    def astype(self, dtype) -> np.ndarray:
        return np.asarray(self).astype(dtype)

    def _read(self, lo: int, hi: int) -> np.ndarray:
        n = (hi - lo) * self.row_bytes
        fd = os.open(self.path, os.O_RDONLY)
        try:
            buf = os.pread(fd, n, self.offset + lo * self.row_bytes) if n else b""
        finally:
            os.close(fd)
        if len(buf) != n:
            raise OSError(f"{self.path}: short read")
        return np.frombuffer(buf, self.dtype).reshape((hi - lo,) + tuple(self.shape[1:]))


def member_rows(path: str, name: str) -> NpzRows | None:
    """`name` of the .npz at `path` as NpzRows; None when it is absent, compressed or not a plain
    array (callers then np.load it). Raises OSError/ValueError for a damaged file."""
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(name + ".npy")
    except KeyError:
        return None
    except zipfile.BadZipFile as e:
        raise ValueError(f"{path}: {e}") from None
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        head = f.read(30)
        if len(head) != 30 or head[:4] != b"PK\x03\x04":
            raise ValueError(f"{path}: bad zip member header")
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    if fortran or dtype.hasobject or not shape:
        return None
    if offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > os.path.getsize(path):
        raise ValueError(f"{path}: {name} is truncated")
    return NpzRows(path, offset, tuple(shape), dtype)
