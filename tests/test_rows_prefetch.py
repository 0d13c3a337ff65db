"""Warming the page cache for segments that stay on disk."""

from __future__ import annotations

import numpy as np
import pytest

from index import rows
from index.rows import RowFile, warm_page_cache


@pytest.fixture()
def row_file(tmp_path, monkeypatch):
    monkeypatch.setattr(rows, "_prefetched", {})
    path = tmp_path / "vectors.npy"
    np.save(path, np.arange(64 * 8, dtype=np.float32).reshape(64, 8))
    return RowFile(path)


def test_a_file_is_read_once_in_the_background(row_file, monkeypatch):
    reads: list[int] = []
    real = rows.os.preadv

    def counting(fd, buffers, offset):
        n = real(fd, buffers, offset)
        reads.append(n)
        return n

    monkeypatch.setattr(rows.os, "preadv", counting)
    thread = warm_page_cache([row_file], chunk=1024)
    assert thread is not None
    thread.join(timeout=10)
    assert sum(reads) == row_file.path.stat().st_size  # the whole file, header included
    assert reads[-1] == 0  # read to the end
    assert warm_page_cache([row_file]) is None  # a reload of the same segment: nothing to do


def test_nothing_is_warmed_beyond_the_memory_share(row_file, monkeypatch):
    monkeypatch.setattr(rows, "_physical_memory", lambda: row_file.path.stat().st_size)
    assert warm_page_cache([row_file]) is None


@pytest.mark.parametrize("off", ["0", "false", "No", "off"])
def test_it_can_be_turned_off(row_file, monkeypatch, off):
    monkeypatch.setenv("DOSSIER_PREFETCH", off)
    assert warm_page_cache([row_file]) is None
    # Rows still read as before.
    assert np.array_equal(row_file[3], np.arange(24, 32, dtype=np.float32))
