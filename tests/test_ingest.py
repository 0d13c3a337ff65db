"""Loaders on generated files of every kind, containment, size limits and linear cleaning."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest

from index.chunk import make_passages, split_sentences
from index.clean import indexable_spans
from index.load import MAX_ARTICLE_ENV, load_article, load_corpus, scan_corpus

PARAGRAPH = ("The regulator said on Tuesday that the complaint against the shipping company "
             "was plausible, which makes enforcement slow. Inspectors will visit the port of "
             "Piraeus next month to examine the cargo records of forty vessels. The company "
             "denied any wrongdoing and said it would cooperate with the inquiry.")


def quotes(article) -> list[str]:
    """Every passage a build would quote, checked to be an exact span of the body."""
    sentences = split_sentences(article)
    out = []
    for p in make_passages(article, sentences):
        assert article.body[p.start:p.end] == p.text
        out.append(p.text)
    return out


def make_pdf(path: Path) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(dt.datetime(2026, 11, 27, tzinfo=dt.UTC))
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, "Port inquiry opens", new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 6, "20 March 2022", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.multi_cell(0, 6, PARAGRAPH, new_x="LMARGIN", new_y="NEXT")  # wrapped by fpdf
    pdf.output(str(path))
    return path


def test_pdf_date_comes_from_the_text_and_wrapped_lines_make_whole_sentences(tmp_path):
    article = load_article(make_pdf(tmp_path / "inquiry.pdf"), tmp_path)
    assert "\n" in article.body[article.body.index("The regulator"):]  # really hard-wrapped
    assert article.published == "2022-03-20"  # not the file's creation date (2026-11-27)
    sentences = [article.body[s.start:s.end] for s in split_sentences(article)]
    first = next(s for s in sentences if "plausible" in s)
    assert first.startswith("The regulator said on Tuesday")
    assert first.endswith("enforcement slow.")
    assert not any(s.startswith("plausible") for s in sentences)
    assert all(not q.startswith("plausible") for q in quotes(article))


def test_pdf_without_a_date_in_its_text_falls_back_to_its_creation_date(tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(dt.datetime(2021, 5, 4, tzinfo=dt.UTC))
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, PARAGRAPH)
    pdf.output(str(tmp_path / "undated.pdf"))
    assert load_article(tmp_path / "undated.pdf").published == "2021-05-04"


def test_docx_is_read_with_its_heading_as_title(tmp_path):
    import docx

    document = docx.Document()
    document.add_heading("Port inquiry opens", level=1)
    document.add_paragraph("Published 20 March 2022")
    document.add_paragraph(PARAGRAPH)
    document.save(str(tmp_path / "inquiry.docx"))
    article = load_article(tmp_path / "inquiry.docx", tmp_path)
    assert article.title == "Port inquiry opens"
    assert article.published == "2022-03-20"
    found = quotes(article)
    assert found and all("Port inquiry opens" not in q and "Published" not in q for q in found)
    assert any(q.startswith("The regulator said") for q in found)


def test_headline_txt_gives_the_title_and_is_never_quoted(tmp_path):
    body = ("Standard Life concern at LSE bid\n\n"
            "Standard Life is the latest shareholder in Deutsche Boerse to express concern at "
            "the German stock market operator's plans to buy the London Stock Exchange. "
            "It said the bid was not in the best interests of shareholders.\n\n"
            "Other investors have voiced similar worries in recent weeks.\n")
    (tmp_path / "001-lse.txt").write_text(body)
    article = load_article(tmp_path / "001-lse.txt", tmp_path)
    assert article.title == "Standard Life concern at LSE bid"
    assert article.body == body  # the stored body stays the file
    found = quotes(article)
    assert found and all("LSE bid" not in q for q in found)
    assert found[0].startswith("Standard Life is the latest shareholder")


def test_markdown_with_an_empty_title_takes_its_heading_then_its_name(tmp_path):
    (tmp_path / "004-will-china-give-aid.md").write_text(
        "---\ntitle:\noutlet: Monitor\n---\n# Will China give Russia aid?\n\n" + PARAGRAPH)
    article = load_article(tmp_path / "004-will-china-give-aid.md", tmp_path)
    assert article.title == "Will China give Russia aid?"
    assert all("Will China" not in q for q in quotes(article))
    (tmp_path / "005-sofrep-requests.md").write_text("---\ntitle: ''\n---\n" + PARAGRAPH)
    assert load_article(tmp_path / "005-sofrep-requests.md").title == "Sofrep requests"


def test_byline_and_dateline_stay_out_of_quotes(tmp_path):
    body = ("Claude Forthomme - Senior EditorbyClaude Forthomme - Senior Editor\n"
            "March 15, 2022\n\nBy Jane Roe\n\n" + PARAGRAPH + "\n")
    (tmp_path / "a.md").write_text("---\ntitle: T\nauthor: Claude Forthomme\n---\n" + body)
    article = load_article(tmp_path / "a.md")
    assert article.published == "2022-03-15"
    assert all("Forthomme" not in q and "Jane Roe" not in q and "March 15" not in q
               for q in quotes(article))


def test_unknown_types_links_out_of_the_corpus_and_big_files_are_named_with_a_reason(
        tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("Headline\n\nroot:x:0:0:root:/root:/bin/bash is the password line.\n")
    (corpus / "passwd.txt").symlink_to(secret)
    (corpus / "inside.txt").write_text("Headline\n\n" + PARAGRAPH)
    (corpus / "alias.txt").symlink_to(corpus / "inside.txt")  # a link inside is fine
    (corpus / "photo.png").write_bytes(b"\x89PNG")
    (corpus / ".swap.txt").write_text("editor swap file")
    monkeypatch.setenv(MAX_ARTICLE_ENV, "1")
    (corpus / "huge.txt").write_text("Headline\n\n" + "All work and no play. " * 60_000)
    files, problems = scan_corpus(corpus)
    assert [f.name for f in files] == ["alias.txt", "inside.txt"]
    reasons = {p.path: p.reason for p in problems}
    assert set(reasons) == {"passwd.txt", "photo.png", "huge.txt"}
    assert "outside the corpus" in reasons["passwd.txt"]
    assert "unsupported file type .png" in reasons["photo.png"]
    assert "over the 1 MB limit" in reasons["huge.txt"]
    loaded = load_corpus(corpus)
    assert all("root:x" not in a.body for a in loaded.articles)
    assert {p.path for p in loaded.problems} == set(reasons)
    # Even when asked for the link by name, its target is not read.
    with pytest.raises(ValueError, match="outside the corpus"):
        load_article(corpus / "passwd.txt", corpus)


def test_cleaning_is_linear_in_the_article_length():
    def lines(n: int) -> str:
        return "\n\n".join(f"Line {i} tells of shipment {i * 7} sent from port {i % 97} to "
                           f"depot {i * 13} under contract {i * 31} last year." for i in range(n))

    small, big = lines(2_000), lines(16_000)
    t0 = time.perf_counter()
    assert len(indexable_spans(small)) == 2_000
    t1 = time.perf_counter()
    assert len(indexable_spans(big)) == 16_000
    t2 = time.perf_counter()
    # Quadratic cleaning took 64 times longer for 8 times the text; linear takes about 8.
    assert t2 - t1 < 20 * max(t1 - t0, 0.01), (t1 - t0, t2 - t1)


def test_near_duplicates_are_still_dropped():
    para = ("Russia has asked China for military equipment since the invasion began, according "
            "to officials in Washington.")
    body = f"{para}\n\nSomething else happened in the port today, officials said.\n\n{para} Yes."
    texts = [body[s.start:s.end] for s in indexable_spans(body)]
    assert len(texts) == 2


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_a_link_swapped_in_after_the_scan_is_not_read(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (tmp_path / "outside.txt").write_text("Secret\n\nThe secret is here, in full.\n")
    path = corpus / "a.txt"
    path.symlink_to(tmp_path / "outside.txt")
    with pytest.raises(ValueError, match="outside the corpus"):
        load_article(path, corpus)


def test_a_date_inside_a_sentence_or_caption_is_not_the_publication_date(tmp_path):
    (tmp_path / "a.txt").write_text(
        "Leaders meet\n\nPutin meets Xi in Beijing, China February 4, 2022. (Reuters)\n\n"
        + PARAGRAPH)
    assert load_article(tmp_path / "a.txt").published is None
    (tmp_path / "b.txt").write_text("Leaders meet\n\nUpdated 5 March 2022, 14:02 GMT\n\n"
                                    + PARAGRAPH)
    assert load_article(tmp_path / "b.txt").published == "2022-03-05"
