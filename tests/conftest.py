"""Shared fixtures: the real model, a real FAISS index of the real corpus, built once."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
SHARED = REPO.parent / "shared"
DEV_SET = SHARED / "eval" / "dev_questions.jsonl"
RAW_DOSSIER = SHARED / "dossier"

T = TypeVar("T")


# Index helpers shared by the build, store and CLI tests.
def manifest_path(index_dir: Path) -> Path:
    from index.store import CURRENT

    name = (index_dir / CURRENT).read_text().strip()
    return index_dir / "generations" / f"{name}.json"


def segment_dir(index_dir: Path) -> Path:
    from index.store import IndexDir

    manifest = IndexDir(index_dir).read_manifest()
    return index_dir / "segments" / manifest.segments[0]


def edit_manifest(index_dir: Path, **changes: object) -> None:
    path = manifest_path(index_dir)
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


def passages_of(path: Path) -> int:
    """Passages the chunker makes of one article file."""
    from index.chunk import make_passages, split_sentences
    from index.load import load_article

    article = load_article(path)
    return len(make_passages(article, split_sentences(article)))


def poll(probe: Callable[[], T], timeout: float, what: str) -> T:
    """Wait until ``probe()`` returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout} s")


@pytest.fixture(autouse=True)
def _no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests reach loopback only: a proxy in the developer's or CI's environment must not
    catch their requests (tests that use a proxy set one themselves)."""
    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(name)
    # Read by the corpus loader itself: a developer's setting would move every test's inbox.
    monkeypatch.delenv("DOSSIER_INBOX_DIR", raising=False)


@pytest.fixture(scope="session")
def embedder():
    """The embedder the bot runs (the packaged model through onnxruntime)."""
    from index.embed import load_embedder

    return load_embedder()


@pytest.fixture(scope="session")
def built_index(tmp_path_factory, embedder) -> Path:
    """An index of corpus/ built once per test session (read-only for tests)."""
    from index.build import build_index

    index_dir = tmp_path_factory.mktemp("index") / "index"
    build_index(CORPUS, index_dir, embedder)
    return index_dir


@pytest.fixture(scope="session")
def answerer(built_index, embedder):
    """A real Answerer over a real FAISS index of the five dossier articles."""
    from bot.answer import Answerer
    from index.live import LiveIndex

    return Answerer(LiveIndex(built_index, embedder))


@pytest.fixture
def fake():
    """The fake Slack Web API on loopback; on the way out, no post it received can ping."""
    from fakes.fake_slack import FakeSlack
    from fakes.slack_helpers import assert_cannot_ping

    with FakeSlack() as fake:
        yield fake
        assert_cannot_ping(fake.posts())


@pytest.fixture
def corpus_copy(tmp_path) -> Path:
    """A writable copy of corpus/ for tests that add, change or remove articles."""
    dst = tmp_path / "corpus"
    shutil.copytree(CORPUS, dst)
    return dst


@pytest.fixture
def fresh_answerer(tmp_path, corpus_copy, built_index, embedder):
    """A real Answerer over its own writable index (a copy of the session index) and corpus."""
    from bot.answer import Answerer
    from index.live import LiveIndex

    index_dir = tmp_path / "index"
    shutil.copytree(built_index, index_dir)
    return Answerer(LiveIndex(index_dir, embedder))
