"""What keeps an add cheap at scale: files not re-read, a manifest that names segments, tiered
compaction, per-segment statistics, and compact token vectors; all without changing answers."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import index.diff as diff_module
from index import compact
from index.build import build_index
from index.live import LiveIndex
from index.segment import load_segment, quantise
from index.store import CURRENT, IndexDir
from index.text import terms

REPO = Path(__file__).resolve().parent.parent
ARTICLES = ("001-russia-asks-for-help-from-china.md",
            "003-us-news-china-signals-disinterest-in-providing-weapons-to-russia.md")
NOTE = "Note {i}: customs officers in Khorgos inspected convoy number {i} on Tuesday.\n"


# A file changed this close to its hashing is hashed again next time (index.diff.RACY_NS,
# 2 s); the tests shorten that window rather than wait it out.
RACY_S = 0.2


@pytest.fixture(autouse=True)
def short_racy_window(monkeypatch) -> None:
    monkeypatch.setattr(diff_module, "RACY_NS", int(RACY_S * 1e9))


def age(path: Path, seconds: int = 3600) -> None:
    """Date a file back, as files that were not just written are (its change time stays
    now: it cannot be set back)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns - seconds * 10**9, st.st_mtime_ns - seconds * 10**9))


@pytest.fixture
def corpus(tmp_path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    for name in ARTICLES:
        shutil.copy(REPO / "corpus" / name, root / name)
        age(root / name)
    time.sleep(RACY_S * 1.5)
    return root


def counting_hashes(monkeypatch) -> list[str]:
    read: list[str] = []
    original = diff_module.file_sha256

    def counted(path: Path) -> str:
        read.append(path.name)
        return original(path)

    monkeypatch.setattr(diff_module, "file_sha256", counted)
    return read


def test_an_add_reads_only_the_new_file_and_a_changed_one_is_still_seen(
        corpus, tmp_path, embedder, monkeypatch):
    index = tmp_path / "index"
    build_index(corpus, index, embedder)
    read = counting_hashes(monkeypatch)
    (corpus / "010-note.txt").write_text(NOTE.format(i=1), encoding="utf-8")
    time.sleep(RACY_S * 1.5)

    report = build_index(corpus, index, embedder)

    assert read == ["010-note.txt"]
    assert report.added == 1
    # Same size, new content and a new modification time: hashed again and re-embedded.
    path = corpus / ARTICLES[0]
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("Russia", "Rossia", 1), encoding="utf-8")
    assert path.stat().st_size == len(text.encode())
    read.clear()
    report = build_index(corpus, index, embedder)
    assert ARTICLES[0] in read and report.updated == 1


def test_the_manifest_names_segments_and_tombstones_not_every_article(
        corpus, tmp_path, embedder):
    index = tmp_path / "index"
    build_index(corpus, index, embedder)
    store = IndexDir(index)
    # Remove the shorter article: under half the segment dies, so it is not rewritten.
    entries = store.read_manifest().articles
    gone, stays = sorted(entries, key=lambda aid: entries[aid].passages)
    (corpus / entries[gone].path).unlink()
    build_index(corpus, index, embedder)
    name = (index / CURRENT).read_text().strip()
    raw = json.loads((index / "generations" / f"{name}.json").read_text())

    assert stays not in json.dumps(raw)
    assert raw["dead"] == {raw["segments"][0]: [gone]}
    assert set(store.read_manifest().articles) == {stays}
    live = LiveIndex(index, embedder).current()
    assert [a.id for a in live.articles] == [stays]


def test_tiers_merge_small_segments_and_leave_a_big_one_alone():
    big = {"big": 1_000_000}
    small = {f"s{i}": 40 for i in range(4)}
    live = {**big, **small}
    assert compact.plan(["big", "s0", "s1", "s2"], live, live) == []
    assert compact.plan(["big", *small], live, live) == list(small)
    # A big segment is rewritten only once most of it is dead.
    assert compact.plan(["big", "s0"], live, {**live, "big": 400_000}) == ["big"]
    assert compact.plan(["big", "s0"], live, {**live, "big": 600_000}) == []
    assert compact.tier(40) < compact.tier(20_000) < compact.tier(1_000_000)


def test_adding_articles_one_by_one_never_rewrites_the_big_segment(
        corpus, tmp_path, embedder, monkeypatch):
    monkeypatch.setattr(compact, "SMALL", 20)  # the two articles form a "big" segment here
    index = tmp_path / "index"
    build_index(corpus, index, embedder)
    store = IndexDir(index)
    first = store.read_manifest().segments[0]
    for i in range(9):
        (corpus / f"02{i}-note.txt").write_text(NOTE.format(i=i), encoding="utf-8")
        build_index(corpus, index, embedder)
        segments = store.read_manifest().segments
        assert segments[0] == first
        assert len(segments) <= 1 + 2 * (compact.MERGE_FACTOR - 1)
    manifest = store.read_manifest()
    assert len(manifest.articles) == 2 + 9
    ans = LiveIndex(index, embedder).current().search("Which convoy number did officers in "
                                                      "Khorgos inspect?")
    assert ans.covered


def test_segments_store_sentence_terms_and_compact_token_vectors(corpus, tmp_path, embedder):
    index = tmp_path / "index"
    build_index(corpus, index, embedder)
    store = IndexDir(index)
    seg = load_segment(store.segments_dir / store.read_manifest().segments[0])
    for row in range(len(seg.sentences)):
        assert seg.sentence_terms(row) == frozenset(terms(seg.sentence_text(row)))
    assert seg.piece_counts.sum() == seg.token_ids.size
    # int8 on disk; within half a quantisation step of the model's vectors.
    on_disk = np.load(seg.path / "token_vectors.npy", mmap_mode="r")
    assert on_disk.dtype == np.int8
    sentence = seg.sentence_text(3)
    _, toks = embedder.embed_with_tokens([sentence])
    a, b = seg.token_offsets[3], seg.token_offsets[4]
    exact = toks[0].vectors.astype(np.float32)
    stored = seg.token_matrix(np.arange(a, b))
    assert stored.shape == exact.shape
    assert np.abs(stored - exact).max() <= np.abs(exact).max() / 127


def test_quantise_keeps_every_vector_within_half_a_step():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 384)).astype(np.float32)
    v[7] = 0  # a zero vector stays zero
    q, scale = quantise(v)
    back = q.astype(np.float32) * scale[:, None]
    assert q.dtype == np.int8 and np.all(back[7] == 0)
    assert np.all(np.abs(back - v) <= scale[:, None] / 2 + 1e-6)


def test_row_file_reads_the_same_rows_as_numpy(tmp_path):
    from index.rows import RowFile

    rng = np.random.default_rng(1)
    array = rng.normal(size=(1000, 8)).astype(np.float16)
    np.save(tmp_path / "a.npy", array)
    rows = RowFile(tmp_path / "a.npy")
    pick = np.array([5, 6, 7, 900, 3, 3, 999, 0])
    assert rows.shape == array.shape and len(rows) == 1000 and rows.dtype == np.float16
    assert np.array_equal(rows[pick], array[pick])
    assert np.array_equal(rows[10:20], array[10:20]) and np.array_equal(rows[-1], array[-1])
    assert np.array_equal(np.asarray(rows), array)
    assert rows[np.zeros(0, np.int64)].shape == (0, 8)
    with pytest.raises(IndexError):
        rows[np.array([1000])]
