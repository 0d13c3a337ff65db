"""The index on disk: refusing a mismatched index, clear errors for a damaged one, recovery."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import edit_manifest, manifest_path, segment_dir

from bot.answer import Answerer
from index.build import build_index
from index.live import LiveIndex
from index.store import (
    CURRENT,
    FORMAT_VERSION,
    IndexCorrupt,
    IndexDir,
    IndexError_,
    IndexMismatch,
    IndexMissing,
    Manifest,
)

ARTICLE = ("Kazakh customs officers stopped a convoy of forty freight wagons at Khorgos on "
           "Tuesday.\n\n"
           "The wagons carried crates of artillery shells declared as farm machinery.\n\n"
           "Officials in Astana said the shipment had been sent back to China the same day.\n")
OTHER = ("Beijing announced new export rules for drone engines on Friday.\n\n"
         "The rules require a licence for every engine sold abroad.\n")
QUESTION = "How many freight wagons did customs officers stop at Khorgos?"


@pytest.fixture(scope="module")
def base(tmp_path_factory, embedder) -> Path:
    root = tmp_path_factory.mktemp("store-base")
    (root / "corpus").mkdir()
    (root / "corpus" / "001-khorgos.txt").write_text(ARTICLE, encoding="utf-8")
    build_index(root / "corpus", root / "index", embedder)
    return root


@pytest.fixture
def copy(tmp_path, base) -> tuple[Path, Path]:
    shutil.copytree(base / "corpus", tmp_path / "corpus")
    shutil.copytree(base / "index", tmp_path / "index")
    return tmp_path / "corpus", tmp_path / "index"


def assert_one_line_saying_rebuild(exc: BaseException) -> None:
    message = str(exc)
    assert message and "\n" not in message
    assert "dossier-bot index build" in message
    assert "Traceback" not in message


def answers(index_dir: Path, embedder) -> bool:
    got = Answerer(LiveIndex(index_dir, embedder)).ask(QUESTION)
    return got.answered and "forty freight wagons" in got.quotes[0].text


def test_the_base_index_answers(copy, embedder):
    _, index_dir = copy
    assert answers(index_dir, embedder)


# --- a mismatched index is refused --------------------------------------------------------


@pytest.mark.parametrize(("changes", "words"), [
    ({"model_fingerprint": "f" * 64, "model": "someone/other-model"}, "someone/other-model"),
    ({"dimension": 768}, "768"),
    ({"format": FORMAT_VERSION + 1}, f"format {FORMAT_VERSION + 1}"),
])
def test_a_mismatched_index_is_refused_with_a_message_to_rebuild(copy, embedder, changes, words):
    corpus, index_dir = copy
    edit_manifest(index_dir, **changes)

    with pytest.raises(IndexMismatch) as caught:
        LiveIndex(index_dir, embedder).current()

    assert_one_line_saying_rebuild(caught.value)
    assert words in str(caught.value)
    # Following the advice works: the build re-embeds everything and the index serves again.
    report = build_index(corpus, index_dir, embedder)
    assert report.embedded == report.chunks > 0
    assert answers(index_dir, embedder)


def test_a_running_index_keeps_serving_when_a_mismatched_generation_appears(copy, embedder):
    corpus, index_dir = copy
    answerer = Answerer(LiveIndex(index_dir, embedder))
    assert answerer.ask(QUESTION).answered
    (corpus / "002-other.txt").write_text(OTHER, encoding="utf-8")
    build_index(corpus, index_dir, embedder)
    edit_manifest(index_dir, model_fingerprint="0" * 64)

    assert answerer.reload_if_changed() is False
    assert answerer.ask(QUESTION).answered


# --- a damaged index gives one clear error ------------------------------------------------


def _truncate(name: str) -> Callable[[Path], None]:
    def damage(index_dir: Path) -> None:
        path = segment_dir(index_dir) / name
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return damage


def _zero_same_size(name: str) -> Callable[[Path], None]:
    def damage(index_dir: Path) -> None:
        path = segment_dir(index_dir) / name
        path.write_bytes(b"\0" * path.stat().st_size)
    return damage


def _garble_manifest(index_dir: Path) -> None:
    path = manifest_path(index_dir)
    path.write_text(path.read_text()[:-40] + "}{ not json")


def _empty_manifest_object(index_dir: Path) -> None:
    manifest_path(index_dir).write_text("{}")


def _delete_generation(index_dir: Path) -> None:
    manifest_path(index_dir).unlink()


def _delete_segment(index_dir: Path) -> None:
    shutil.rmtree(segment_dir(index_dir))


def _delete_sizes(index_dir: Path) -> None:
    (segment_dir(index_dir) / "sizes.json").unlink()


DAMAGE = {
    "truncated passage vectors": _truncate("passage_vectors.npy"),
    "truncated sentences": _truncate("sentences.npy"),
    "truncated token vectors": _truncate("token_vectors.npy"),
    "truncated faiss": _truncate("passages.faiss"),
    "zeroed faiss": _zero_same_size("passages.faiss"),
    "zeroed sentence vectors": _zero_same_size("sentence_vectors.npy"),
    "zeroed articles": _zero_same_size("articles.json"),
    "zeroed catalog": _zero_same_size("catalog.json"),
    "truncated token scales": _truncate("token_scales.npy"),
    "truncated sentence terms": _truncate("sentence_terms.npy"),
    "garbled manifest": _garble_manifest,
    "manifest without keys": _empty_manifest_object,
    "generation deleted": _delete_generation,
    "segment deleted": _delete_segment,
    "sizes deleted": _delete_sizes,
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_a_damaged_index_raises_one_clear_error(copy, embedder, damage):
    _, index_dir = copy
    DAMAGE[damage](index_dir)

    with pytest.raises(IndexCorrupt) as caught:
        LiveIndex(index_dir, embedder).current()

    assert_one_line_saying_rebuild(caught.value)


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_rebuilding_repairs_a_damaged_index(copy, embedder, damage):
    """The error says to run `index build`; doing so must bring the index back."""
    corpus, index_dir = copy
    DAMAGE[damage](index_dir)

    build_index(corpus, index_dir, embedder)

    assert answers(index_dir, embedder)


def test_a_running_index_keeps_serving_when_a_damaged_generation_appears(copy, embedder):
    corpus, index_dir = copy
    answerer = Answerer(LiveIndex(index_dir, embedder))
    old = answerer.live.current().generation
    (corpus / "002-other.txt").write_text(OTHER, encoding="utf-8")
    report = build_index(corpus, index_dir, embedder)
    new_segment = IndexDir(index_dir).read_manifest().segments[-1]
    (index_dir / "segments" / new_segment / "passages.faiss").write_bytes(b"garbage")

    assert answerer.reload_if_changed() is False
    assert answerer.live.current().generation == old != report.generation
    assert answerer.ask(QUESTION).answered


def test_no_index_says_how_to_build_one(tmp_path, embedder):
    with pytest.raises(IndexMissing) as caught:
        LiveIndex(tmp_path / "nothing-here", embedder).current()
    assert "dossier-bot index build" in str(caught.value)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / CURRENT).write_text("\n")
    with pytest.raises(IndexError_):
        LiveIndex(tmp_path / "empty", embedder).current()


# --- the manifest and generations -----------------------------------------------------------


def test_manifest_round_trips_through_json(copy):
    _, index_dir = copy
    store = IndexDir(index_dir)
    manifest = store.read_manifest()
    again = Manifest.from_json(manifest.to_json(store.catalog), store.catalog)
    assert again == manifest
    assert again.format == FORMAT_VERSION
    assert again.passages == sum(e.passages for e in manifest.articles.values()) > 0
    assert set(manifest.articles) == {"001-khorgos"}


def test_old_generations_are_collected_and_current_is_kept(copy, embedder):
    corpus, index_dir = copy
    names = []
    for i in range(3):
        (corpus / f"01{i}-note.txt").write_text(
            f"Note number {i}: the convoy was inspected again by officers from Astana.\n",
            encoding="utf-8")
        names.append(build_index(corpus, index_dir, embedder).generation)
    kept = sorted(p.stem for p in (index_dir / "generations").glob("*.json"))
    assert names[-1] in kept and len(kept) <= 2
    assert (index_dir / CURRENT).read_text().strip() == names[-1]
    leftovers = [p.name for p in index_dir.rglob("*.tmp")]
    assert leftovers == []
    manifest = IndexDir(index_dir).read_manifest()
    for seg in manifest.segments:
        assert (index_dir / "segments" / seg / "sizes.json").is_file()
    assert answers(index_dir, embedder)
