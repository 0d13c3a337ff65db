"""Rows of a large on-disk ``.npy`` array, read with ``pread`` instead of a memory map.

A question reads a few hundred rows (candidate sentences, their token vectors) scattered over
gigabytes. Through a memory map every page touched for the first time costs a page fault,
which in a virtual machine costs more than copying the bytes (about 25 ms per new question at
a million passages, page cache warm); a ``pread`` per run of consecutive rows costs a few
microseconds. Memory then follows the page cache, not the process.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from math import prod
from pathlib import Path

import numpy as np


class RowFile:
    """Read-only array-like over a C-ordered ``.npy`` file: ``shape``, ``dtype``, ``len`` and
    indexing by int, slice or integer array (rows come back as a new ndarray)."""

    def __init__(self, path: Path) -> None:
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(fh)
            self._offset = fh.tell()
        if fortran or not shape:
            raise ValueError(f"{path.name}: expected a C-ordered array with rows")
        self.path = path
        self.shape: tuple[int, ...] = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self._row_shape = self.shape[1:]
        self._row_bytes = self.dtype.itemsize * prod(self._row_shape)
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self._run(0, self.shape[0])
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self.shape[0] if key < 0 else 0)
            if not 0 <= i < self.shape[0]:
                raise IndexError(f"row {key} out of range")
            return self._run(i, i + 1)[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            if step == 1:
                return self._run(start, max(start, stop))
            key = np.arange(start, stop, step)
        return self.take(np.asarray(key))

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows in the order given; one read per run of consecutive rows."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64, copy=False).ravel()
        if rows.size and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError("row index out of range")
        out = np.empty((rows.size, *self._row_shape), self.dtype)
        if not rows.size:
            return out
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        starts = np.concatenate([[0], breaks])
        ends = np.concatenate([breaks, [rows.size]])
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            out[a:b] = self._run(int(rows[a]), int(rows[a]) + (b - a))
        return out

    def _run(self, start: int, stop: int) -> np.ndarray:
        n = stop - start
        data = os.pread(self._fd, n * self._row_bytes, self._offset + start * self._row_bytes)
        if len(data) != n * self._row_bytes:
            raise OSError(f"{self.path.name}: short read (file truncated?)")
        return np.frombuffer(data, dtype=self.dtype).reshape(n, *self._row_shape).copy()


_PREFETCH_SHARE = 0.75  # of physical memory that page-cache warming may claim, per process
_prefetch_lock = threading.Lock()
_prefetched: dict[str, int] = {}  # bytes scheduled per file, in this process
_threads: list[threading.Thread] = []


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # pragma: no cover - not POSIX
        return 0


def warm_page_cache(files: list[RowFile], *, chunk: int = 8 << 20) -> threading.Thread | None:
    """Read ``files`` once, in order, in a low-priority background thread.

    Questions read a few hundred scattered rows; the first read of each from disk costs far
    more than the search (114 ms instead of 46 ms per new question at a million passages).
    Reading the files sequentially once puts them in the page cache, so a freshly started
    bot answers at its steady-state speed within a minute. Nothing is warmed beyond
    ``_PREFETCH_SHARE`` of physical memory (it would only evict itself); set
    ``DOSSIER_PREFETCH=0`` to turn it off.
    """
    if os.environ.get("DOSSIER_PREFETCH", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    budget = int(_physical_memory() * _PREFETCH_SHARE)
    chosen: list[RowFile] = []
    with _prefetch_lock:
        for f in files:
            key = str(f.path.resolve())
            if key in _prefetched:  # a reload of the same segment: already warm
                continue
            size = os.fstat(f._fd).st_size
            if sum(_prefetched.values()) + size > budget:
                break
            _prefetched[key] = size
            chosen.append(f)
    if not chosen:
        return None

    def run() -> None:
        # Lowest CPU priority for this thread only (on Linux a thread has its own).
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        buf = bytearray(chunk)
        for f in chosen:
            offset = 0
            try:
                while n := os.preadv(f._fd, [buf], offset):
                    offset += n
            except OSError:  # closed (segment dropped by a reload) or unreadable: not needed
                continue

    thread = threading.Thread(target=run, name="dossier-prefetch", daemon=True)
    thread.start()
    _threads.append(thread)
    return thread


def wait_warm(timeout: float | None = None) -> bool:
    """Wait for this process's page-cache warming to finish (benchmarks measure after it)."""
    for thread in list(_threads):
        thread.join(timeout)
    return not any(t.is_alive() for t in _threads)
