"""Adding articles from chat (bot/intake.py) against pages served on 127.0.0.1 and the real
index: what is added becomes answerable; what is refused says why and leaves nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fakes.articles import (
    FERRY,
    FERRY_QUESTION,
    KEEPERS_QUESTION,
    article_server,
    tiny_pdf,
)

from bot.answer import Answerer
from bot.egress import AddressPolicy
from bot.intake import Intake, IntakeError, inbox_dir, write_atomically

# The pages are served on 127.0.0.1: fetching them needs the intranet switch
# (DOSSIER_INTAKE_ALLOW_PRIVATE); tests/test_intake_guard.py checks what happens without it.
INTRANET = AddressPolicy(allow_private=True)


def test_a_page_becomes_answerable_and_a_second_copy_is_a_duplicate(
        fresh_answerer: Answerer, corpus_copy: Path) -> None:
    intake = Intake(fresh_answerer, corpus_copy, policy=INTRANET)
    with article_server() as base:
        added = intake.add_url(f"{base}/moved")  # a redirect to /article.html
        assert added.path.parent == corpus_copy / "inbox"
        assert (added.title, added.outlet, added.published) == (
            "Skerryvore keepers vote to unionise", "The Island Courier", "2024-03-05")
        assert added.passages > 0
        assert "Skerryvore keepers vote to unionise" in added.describe()
        answer = fresh_answerer.ask(KEEPERS_QUESTION)
        assert answer.answered and answer.quotes[0].article.id == added.path.stem
        with pytest.raises(IntakeError, match="Already in the dossier"):
            intake.add_url(f"{base}/article.html")
    assert sorted(p.name for p in (corpus_copy / "inbox").iterdir()) == [added.path.name]


def test_an_uploaded_pdf_becomes_answerable(fresh_answerer: Answerer, corpus_copy: Path) -> None:
    added = Intake(fresh_answerer, corpus_copy).add_file(tiny_pdf(FERRY), "ferry.pdf",
                                                         "application/pdf")
    assert added.title == "Tiree ferry timetable changes"
    answer = fresh_answerer.ask(FERRY_QUESTION)
    assert answer.answered and answer.quotes[0].article.id == added.path.stem


@pytest.mark.parametrize(("path", "reason"), [
    ("/missing", "not found (404)"),
    ("/login.html", "No article text"),
    ("/photo.png", "Unsupported type (image/png)"),
    ("/watch", "Unsupported type (video/mp4)"),  # endless: refused on its headers
    ("/huge.html", "too large to add: over the 20 MB limit"),
])
def test_bad_links_get_their_reason_and_leave_nothing(answerer: Answerer, tmp_path: Path,
                                                      path: str, reason: str) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with article_server() as base, pytest.raises(IntakeError, match=reason.replace(
            "(", r"\(").replace(")", r"\)")):
        Intake(answerer, corpus, policy=INTRANET).add_url(base + path)
    assert list(corpus.rglob("*")) == []


@pytest.mark.parametrize(("data", "name", "reason"), [
    (b"MZ\x90\x00" + bytes(300), "setup.exe", "Unsupported type (.exe)"),
    (b"", "notes.txt", "empty"),
    (b"%PDF-1.4 this is not really a PDF", "broken.pdf", "cannot be read|No article text"),
    (b"too short to be an article", "note.md", "No article text"),
])
def test_bad_files_get_their_reason(answerer: Answerer, tmp_path: Path, data: bytes, name: str,
                                    reason: str) -> None:
    with pytest.raises(IntakeError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        Intake(answerer, tmp_path).add_file(data, name)
    assert not (tmp_path / "inbox").exists()


def test_not_a_web_address(answerer: Answerer, tmp_path: Path) -> None:
    for url in ("file:///etc/passwd", "ftp://example.org/a", "article.html"):
        with pytest.raises(IntakeError, match="not a web address"):
            Intake(answerer, tmp_path).add_url(url)


def test_a_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch) -> None:
    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        write_atomically(tmp_path / "inbox", "a.md", b"x" * 1000)
    assert list((tmp_path / "inbox").iterdir()) == []


def test_a_read_only_corpus_gets_its_inbox_beside_it(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    assert inbox_dir(corpus) == corpus / "inbox"
    corpus.chmod(0o555)
    try:
        if os.access(corpus, os.W_OK):
            pytest.skip("running as root: a read-only folder is still writable")
        assert inbox_dir(corpus) == tmp_path / "corpus-inbox"
    finally:
        corpus.chmod(0o755)
