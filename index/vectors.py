"""The FAISS index of a segment's passage vectors, chosen by size.

Small segments (every incremental build writes one) use exact inner-product search: at
this size a scan costs a few milliseconds and recall is perfect. Above ``EXACT_MAX`` an
inverted-file index (IVF, inner product) is used instead: a scan over 1M 384-d vectors
takes ~50-100 ms on two cores, while IVF reads only the few lists nearest the question.
IVF rather than HNSW because it builds an order of magnitude faster on a small machine
(compaction rewrites the big segment) and keeps the memory of a flat index.

Search parameters (``nprobe``) are set when an index is built and again when it is loaded,
so a tuned value here applies to indexes written by older builds too.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

EXACT_MAX = 50_000  # passages; below this a flat scan is cheap and exact
TRAIN_PER_LIST = 40  # k-means points per list (faiss warns below 39)
NITER = 12  # k-means iterations: beyond ~10 the lists barely move for this purpose
PROBE_FRACTION = 1 / 20  # share of lists scanned per question: recall@10 >= 0.95 (benchmarks)
MIN_PROBES = 48  # small indexes have few lists; fewer probes than this lose recall
ADD_CHUNK = 65_536  # vectors converted and added at a time, so a memory-mapped input stays lazy


def build_vector_index(vectors: np.ndarray, *, exact_max: int | None = None,
                       seed: int = 1234) -> faiss.Index:
    """Inner product on unit vectors = cosine similarity; exact while small, IVF above."""
    exact_max = EXACT_MAX if exact_max is None else exact_max
    dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 1
    n = int(vectors.shape[0]) if vectors.ndim == 2 else 0
    if n <= exact_max:
        index = faiss.IndexFlatIP(dim)
        if n:
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return index
    nlist = n_lists(n)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = NITER
    index.cp.spherical = True  # centroids on the unit sphere, like the vectors
    index.cp.seed = seed
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, TRAIN_PER_LIST * nlist), replace=False))
    index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
    for start in range(0, n, ADD_CHUNK):
        index.add(np.ascontiguousarray(vectors[start:start + ADD_CHUNK], dtype=np.float32))
    configure_search(index)
    return index


def n_lists(n: int) -> int:
    """About sqrt(n) lists of ~sqrt(n) vectors: training and probing both stay cheap."""
    return max(64, 1 << round(math.log2(math.sqrt(n))))


def n_probes(nlist: int) -> int:
    return min(nlist, max(MIN_PROBES, round(nlist * PROBE_FRACTION)))


def configure_search(index: faiss.Index) -> faiss.Index:
    """Set the search-time parameters of an approximate index (no-op for exact ones)."""
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = n_probes(ivf.nlist)
    return index


def describe(index: faiss.Index) -> str:
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        return f"IVF{ivf.nlist},Flat nprobe={ivf.nprobe}"
    return "Flat (exact)"
