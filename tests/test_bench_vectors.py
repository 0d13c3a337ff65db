"""The vector index chosen by size: exact while small, IVF above the threshold, and a
segment written with either kind loads, searches and fails loudly when damaged."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import faiss
import numpy as np
import pytest

from bench.synth import Pool, PoolVectors, segment_data, synth_articles
from index import vectors
from index.segment import FAISS_FILE, SIZES, SegmentError, load_segment, write_segment

DIM = 32


def clustered(n: int, seed: int = 0, topics: int = 100) -> np.ndarray:
    """Unit vectors grouped by topic, as sentence embeddings are (noise as large as the
    topic signal), rather than uniform noise, on which no ANN index does well."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(topics, DIM)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    x = base[rng.integers(0, topics, n)] + rng.normal(0, 1 / np.sqrt(DIM), (n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact_top(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    return -np.sort(-(q @ x.T), axis=1)[:, :k]


def recall(index: faiss.Index, x: np.ndarray, q: np.ndarray, k: int = 10) -> float:
    got, _ = index.search(q, k)
    kth = exact_top(x, q, k)[:, k - 1:k]
    return float(((got >= kth - 1e-5).sum(axis=1) / k).mean())


def test_small_collections_get_exact_search():
    x = clustered(500)
    index = vectors.build_vector_index(x, exact_max=1000)
    assert isinstance(index, faiss.IndexFlatIP)
    assert index.ntotal == 500
    q = x[:5]
    _, ids = index.search(q, 1)
    assert ids[:, 0].tolist() == list(range(5))  # each vector is its own nearest neighbour
    assert vectors.describe(index) == "Flat (exact)"


def test_empty_collection_gives_an_empty_exact_index():
    index = vectors.build_vector_index(np.zeros((0, DIM), np.float32))
    assert isinstance(index, faiss.IndexFlatIP) and index.ntotal == 0 and index.d == DIM


def test_large_collections_get_ivf_with_high_recall():
    both = clustered(20_200)  # queries drawn like the data: near its topics, not on it
    x, queries = both[:20_000], both[20_000:]
    index = vectors.build_vector_index(x, exact_max=5_000)
    ivf = faiss.extract_index_ivf(index)
    assert ivf.nlist == vectors.n_lists(20_000) == 128
    assert ivf.nprobe == vectors.n_probes(ivf.nlist) < ivf.nlist
    assert index.ntotal == 20_000
    assert recall(index, x, queries) >= 0.95
    ivf.nprobe = 1  # the check can tell: one list alone misses neighbours
    assert recall(index, x, queries) < 0.95
    assert vectors.describe(index).startswith("IVF128,Flat nprobe=")


def test_the_threshold_follows_the_module_setting(monkeypatch):
    x = clustered(3_000)
    assert isinstance(vectors.build_vector_index(x), faiss.IndexFlatIP)
    monkeypatch.setattr(vectors, "EXACT_MAX", 1_000)
    assert faiss.try_extract_index_ivf(vectors.build_vector_index(x)) is not None


def test_search_parameters_are_restored_when_an_index_is_read(tmp_path):
    x = clustered(8_000)
    index = vectors.build_vector_index(x, exact_max=1_000)
    path = tmp_path / "ivf.faiss"
    faiss.write_index(index, str(path))
    loaded = faiss.read_index(str(path))
    faiss.extract_index_ivf(loaded).nprobe = 1  # as an older build might have left it
    vectors.configure_search(loaded)
    assert faiss.extract_index_ivf(loaded).nprobe == vectors.n_probes(
        faiss.extract_index_ivf(loaded).nlist)
    q = clustered(20, seed=3)
    assert np.array_equal(index.search(q, 10)[1], loaded.search(q, 10)[1])


@cache
def _corpus_pool() -> Pool:
    return Pool.from_corpus(Path(__file__).resolve().parents[1] / "corpus")


def _fake_pool(n: int = 40) -> tuple[Pool, PoolVectors]:
    """Real sentences; random vectors and word pieces instead of the model's (not needed)."""
    real = _corpus_pool()
    pool = Pool(real.sentences[:n], real.words[:n], "test")
    rng = np.random.default_rng(0)
    vecs = clustered(n, topics=10)
    ids = [rng.integers(1000, 2000, size=int(w)).astype(np.int32) for w in pool.words]
    tok = [np.asarray(clustered(len(i), seed=k), np.float16) for k, i in enumerate(ids)]
    return pool, PoolVectors(vecs, ids, tok)


def _segment(tmp_path: Path, n: int) -> Path:
    pool, pv = _fake_pool()
    data = segment_data(pool, pv, list(synth_articles(pool, n, seed=1, mean_len=20)))
    path = tmp_path / "seg"
    write_segment(path, data)
    return path


def test_a_segment_above_the_threshold_is_written_and_loaded_with_ivf(tmp_path, monkeypatch):
    monkeypatch.setattr(vectors, "EXACT_MAX", 300)
    path = _segment(tmp_path, 1_200)
    seg = load_segment(path)
    ivf = faiss.extract_index_ivf(seg.vector_index)
    assert seg.vector_index.ntotal == seg.n_passages == 1_200
    assert ivf.nprobe == vectors.n_probes(ivf.nlist)
    # Every stored passage vector finds itself among its ten nearest neighbours.
    q = np.asarray(seg.passage_vectors[:50], np.float32)
    sims, _ = seg.vector_index.search(q, 10)
    assert np.all(sims[:, 0] >= np.einsum("ij,ij->i", q, q) - 1e-4)


def test_a_truncated_vector_index_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(vectors, "EXACT_MAX", 300)
    path = _segment(tmp_path, 800)
    data = (path / FAISS_FILE).read_bytes()
    (path / FAISS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(SegmentError, match="bytes, expected"):
        load_segment(path)


def test_a_vector_index_of_the_wrong_size_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(vectors, "EXACT_MAX", 300)
    path = _segment(tmp_path, 800)
    short = vectors.build_vector_index(clustered(700), exact_max=300)
    faiss.write_index(short, str(path / FAISS_FILE))
    sizes = json.loads((path / SIZES).read_text())
    sizes[FAISS_FILE] = (path / FAISS_FILE).stat().st_size
    (path / SIZES).write_text(json.dumps(sizes))
    with pytest.raises(SegmentError, match="inconsistent"):
        load_segment(path)
