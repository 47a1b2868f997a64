"""npzrows reads rows of .npz members in place: equal to np.load, and loud on damage."""

from __future__ import annotations

import numpy as np
import pytest

from talkindex.index.npzrows import member_rows

pytestmark = pytest.mark.fast


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.int64])
def test_rows_equal_np_load(tmp_path, dtype):
    rng = np.random.default_rng(0)
    arrays = {"a": rng.standard_normal((1601, 384)).astype(dtype), "b": np.arange(7, dtype=dtype),
              "name": np.array("all-MiniLM-L6-v2")}
    f = tmp_path / "e.npz"
    np.savez(f, **arrays)
    for key in ("a", "b"):
        rows = member_rows(str(f), key)
        assert rows is not None and len(rows) == len(arrays[key]) and rows.shape == arrays[key].shape
        for lo, hi in ((0, 1), (5, 9), (len(rows) - 3, len(rows)), (0, len(rows)), (4, 4), (3, 10**6)):
            np.testing.assert_array_equal(rows[lo:hi], arrays[key][lo:hi])
        np.testing.assert_array_equal(np.asarray(rows), arrays[key])
        np.testing.assert_array_equal(rows.astype(np.float32), arrays[key].astype(np.float32))
    assert member_rows(str(f), "missing") is None
    assert member_rows(str(f), "name") is None  # 0-d: callers np.load it


def test_compressed_falls_back_and_truncated_is_loud(tmp_path):
    f = tmp_path / "c.npz"
    np.savez_compressed(f, a=np.ones((10, 4), np.float32))
    assert member_rows(str(f), "a") is None
    g = tmp_path / "t.npz"
    np.savez(g, a=np.ones((1000, 384), np.float16), b=np.ones(3))
    data = g.read_bytes()
    g.write_bytes(data[: len(data) // 2])
    with pytest.raises((OSError, ValueError)):
        member_rows(str(g), "a")
