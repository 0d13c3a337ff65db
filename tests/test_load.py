"""Loading the corpus: every supported format, unreadable files, and the corpus itself."""

from __future__ import annotations

import hashlib
import io
import logging
import random
import re
from pathlib import Path

import pytest
from fakes.articles import heavy_pdf
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from index.documents import PDF_MEMORY_ENV, PDF_SECONDS_ENV
from index.load import ArticleError, corpus_files, load_article, load_corpus

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
RAW_DOSSIER = REPO.parent / "shared" / "dossier"

GOOD_TEXT = (
    "Kazakh customs officers stopped a convoy of forty freight wagons at Khorgos on Tuesday.\n\n"
    "The wagons carried crates of artillery shells that the manifest described as farm "
    "machinery.\n\n"
    "Officials in Astana said the shipment had been sent back to the Chinese side of the border.\n"
)

HTML_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Beijing weighs drone sales to Moscow | The Daily Ledger</title>
<meta name="author" content="Maria Keller">
<meta property="og:site_name" content="The Daily Ledger">
<meta property="article:published_time" content="2023-03-02T08:00:00Z">
<link rel="canonical" href="https://ledger.example/news/beijing-drones">
</head><body>
<header><nav><ul>
<li><a href="/">Home</a></li><li><a href="/world">World</a></li>
<li><a href="/sydney">Sydney desk</a></li><li><a href="/privacy">Privacy Policy</a></li>
</ul></nav></header>
<main><article>
<h1>Beijing weighs drone sales to Moscow</h1>
<p>Chinese officials have discussed selling reconnaissance drones to Russia, according to three
diplomats briefed on the talks in Geneva last week.</p>
<p>The diplomats said the proposal covered about two hundred airframes and spare parts, to be
delivered through a trading company registered in Hong Kong.</p>
<p>A spokesman for the Chinese foreign ministry said Beijing had never supplied lethal weapons to
either side and would not start now.</p>
<p>Analysts in Washington cautioned that commercial drones could be fitted with munitions within
weeks of delivery, blurring the line between civilian and military aid.</p>
</article></main>
<aside><h3>Related posts</h3><ul>
<li><a href="/a">Ten best beaches in Sydney</a></li>
<li><a href="/b">Only 16% of Large Companies on Track for Net Zero</a></li>
</ul></aside>
<footer><p>&copy; 2023 The Daily Ledger. All rights reserved.</p>
<a href="/privacy">Privacy Policy</a></footer>
</body></html>
"""

PDF_PAGES = [
    ["Russia asked China for armoured vehicles in March, officials said.",
     "Beijing denied receiving any such request."],
    ["On the second page, analysts doubted that China would risk sanctions."],
]


def make_pdf(pages: list[list[str]], *, title: str | None = None,
             author: str | None = None, created: str | None = None) -> bytes:
    """A real PDF with one text line per string, written with pypdf alone."""
    writer = PdfWriter()
    for lines in pages:
        page = writer.add_blank_page(612, 792)
        font = DictionaryObject({
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        })
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 720 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = DecodedStreamObject()
        stream.set_data("\n".join(ops).encode("latin-1"))
        page.replace_contents(stream)
    meta = {"/Title": title, "/Author": author, "/CreationDate": created}
    writer.add_metadata({k: v for k, v in meta.items() if v})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- formats -------------------------------------------------------------------------------


def test_markdown_front_matter_gives_metadata_and_the_body_after_it(tmp_path):
    body = "Russia asked China for help.\n\nBeijing said it knew nothing of the request.\n"
    text = ("---\n"
            'title: "Russia asks for help"\n'
            "outlet: The Ledger\n"
            "author: Jane Roe\n"
            "published: 2022-03-15\n"
            "url: https://ledger.example/a\n"
            "# source: a comment line, ignored\n"
            "---\n" + body)
    path = write(tmp_path / "010-russia-asks.md", text)

    article = load_article(path, tmp_path)

    assert article.body == body
    assert article.id == "010-russia-asks"
    assert article.path == "010-russia-asks.md"
    assert article.prefix == "010"
    assert article.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert (article.title, article.outlet, article.author) == (
        "Russia asks for help", "The Ledger", "Jane Roe")
    assert article.published == "2022-03-15"
    assert article.url == "https://ledger.example/a"


@pytest.mark.parametrize("value", ['"March 15, 2022"', "2022-03-15T09:30:00Z", "'2022-03-15'"])
def test_front_matter_dates_are_normalised(tmp_path, value):
    path = write(tmp_path / "a.md", f"---\npublished: {value}\n---\nSome text here.\n")
    assert load_article(path).published == "2022-03-15"


def test_empty_front_matter_fields_are_none_and_the_title_comes_from_the_name(tmp_path):
    path = write(tmp_path / "001-x.md",
                 "---\ntitle:\noutlet:\nauthor:\npublished:\nurl:\n---\nA sentence.\n")
    article = load_article(path)
    assert article.meta() == {"id": "001-x", "title": "X", "outlet": None, "author": None,
                              "published": None, "url": None, "path": "001-x.md"}
    assert article.body == "A sentence.\n"


def test_markdown_without_front_matter_keeps_the_whole_text(tmp_path):
    text = "China's answer\n\nBeijing declined to comment on the reports.\n"
    article = load_article(write(tmp_path / "b.md", text))
    assert article.body == text
    assert article.title == "China's answer"


def test_plain_text_body_is_the_file_and_metadata_is_guessed(tmp_path):
    text = ("Russia Turns to Beijing\n"
            "By Jane Roe\n"
            "March 14, 2022\n\n"
            "Russia has asked China for military equipment, officials said on Sunday.\n")
    article = load_article(write(tmp_path / "020_notes.txt", text))
    assert article.body == text
    assert article.title == "Russia Turns to Beijing"
    assert article.author == "Jane Roe"
    assert article.published == "2022-03-14"


def test_plain_text_with_crlf_and_bom_is_read(tmp_path):
    text = "Headline here\r\n\r\nThe first sentence. The second one.\r\n"
    article = load_article(write(tmp_path / "c.txt", b"\xef\xbb\xbf" + text.encode()))
    assert article.body == text


def test_html_article_text_is_extracted_without_the_page_furniture(tmp_path):
    article = load_article(write(tmp_path / "030-ledger.html", HTML_PAGE), tmp_path)

    for sentence in (
        "Chinese officials have discussed selling reconnaissance drones to Russia",
        "a trading company registered in Hong Kong.",
        "Beijing had never supplied lethal weapons to either side and would not start now.",
        "blurring the line between civilian and military aid.",
    ):
        assert sentence in " ".join(article.body.split())
    for furniture in ("Privacy Policy", "Sydney", "Only 16%", "All rights reserved", "Home"):
        assert furniture not in article.body
    assert article.title is not None and "Beijing weighs drone sales to Moscow" in article.title
    assert article.author == "Maria Keller"
    assert article.outlet == "The Daily Ledger"
    assert article.published == "2023-03-02"
    assert article.url == "https://ledger.example/news/beijing-drones"
    assert article.path == "030-ledger.html"


def test_pdf_text_of_every_page_and_its_metadata_are_read(tmp_path):
    data = make_pdf(PDF_PAGES, title="Armoured vehicles", author="Jane Roe",
                    created="D:20220316090000Z")
    article = load_article(write(tmp_path / "040-report.pdf", data))

    for line in (*PDF_PAGES[0], *PDF_PAGES[1]):
        assert line in article.body
    assert article.body.index(PDF_PAGES[0][1]) < article.body.index(PDF_PAGES[1][0])
    assert (article.title, article.author, article.published) == (
        "Armoured vehicles", "Jane Roe", "2022-03-16")
    assert article.sha256 == hashlib.sha256(data).hexdigest()


def test_corpus_files_are_the_supported_ones_in_a_stable_order(tmp_path):
    for name in ("b.md", "a.txt", "c.html", "d.pdf", "e.markdown", "notes.docx", ".hidden.md",
                 "image.png"):
        write(tmp_path / name, "x")
    (tmp_path / "sub.md").mkdir()
    assert [p.name for p in corpus_files(tmp_path)] == [
        "a.txt", "b.md", "c.html", "d.pdf", "e.markdown", "notes.docx"]
    assert corpus_files(tmp_path / "missing") == []


# --- unreadable files ----------------------------------------------------------------------

BAD_FILES: dict[str, bytes] = {
    "junk.txt": random.Random(3).randbytes(3000) + b"\x00\x00",
    "latin1.txt": "Le café de la gare a fermé à Kyiv.\n".encode("latin-1"),
    "empty.md": b"",
    "blank.txt": b" \n\n\t\n",
    "broken-front-matter.md": b'---\ntitle: "unclosed\nauthor: [a, b\n---\nSome body text.\n',
    "list-front-matter.md": b"---\n- just\n- a list\n---\nSome body text.\n",
    "corrupt.pdf": b"%PDF-1.4\n" + random.Random(4).randbytes(2000),
    "truncated.pdf": make_pdf(PDF_PAGES)[:400],
    "no-text.pdf": make_pdf([[]]),
    "only-front-matter.md": b"---\ntitle: Nothing else\n---\n\n\n",
}


def _bad_corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write(corpus / "001-good.txt", GOOD_TEXT)
    write(corpus / "002-good.pdf", make_pdf(PDF_PAGES, title="Good PDF"))
    for name, data in BAD_FILES.items():
        write(corpus / name, data)
    return corpus


def test_unreadable_files_are_reported_by_name_and_the_rest_is_loaded(tmp_path):
    corpus = _bad_corpus(tmp_path)

    loaded = load_corpus(corpus)

    assert sorted(a.path for a in loaded.articles) == ["001-good.txt", "002-good.pdf"]
    assert sorted(p.path for p in loaded.problems) == sorted(BAD_FILES)
    for problem in loaded.problems:
        assert problem.reason.strip(), problem
        assert "\n" not in problem.reason
        assert "Traceback" not in problem.reason


@pytest.mark.parametrize(("name", "words"), [
    ("junk.txt", "binary"),
    ("latin1.txt", "UTF-8"),
    ("empty.md", "empty"),
    ("broken-front-matter.md", "front matter"),
    ("list-front-matter.md", "front matter"),
    ("corrupt.pdf", "PDF"),
])
def test_each_problem_says_what_is_wrong(tmp_path, name, words):
    path = write(tmp_path / name, BAD_FILES[name])
    with pytest.raises(ArticleError, match=re.escape(words)):
        load_article(path)


@pytest.mark.parametrize(("costly", "env", "reason"), [
    # About 20 s of pypdf's time, from a 10 KB file: given up after 1 s.
    (heavy_pdf(operations=1_000_000), {PDF_SECONDS_ENV: "1"}, "took over 1 s to read"),
    # 60 MB of content stream from a 60 KB file, against a 128 MB limit.
    (heavy_pdf(padding_mb=60), {PDF_MEMORY_ENV: "128"}, "more than 128 MB of memory"),
], ids=["time", "memory"])
def test_a_pdf_too_costly_to_read_is_given_up_and_the_rest_is_loaded(
        tmp_path, monkeypatch, costly, env, reason):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    write(tmp_path / "001-good.txt", GOOD_TEXT)
    write(tmp_path / "002-crafted.pdf", costly)
    write(tmp_path / "003-good.pdf", make_pdf(PDF_PAGES, title="Good PDF"))

    loaded = load_corpus(tmp_path)

    assert [a.path for a in loaded.articles] == ["001-good.txt", "003-good.pdf"]
    (problem,) = loaded.problems
    assert problem.path == "002-crafted.pdf"
    assert reason in problem.reason
    assert env.popitem()[0] in problem.reason  # names the setting that would let it through


def test_junk_saved_as_html_is_reported_once_not_logged_by_the_parser(tmp_path, caplog):
    write(tmp_path / "001-good.txt", GOOD_TEXT)
    write(tmp_path / "002-junk.html", random.Random(1).randbytes(3000))
    with caplog.at_level(logging.DEBUG):
        loaded = load_corpus(tmp_path)
    assert [(p.path, p.reason) for p in loaded.problems] == [
        ("002-junk.html", "no article text was found there (a menu, a login page or an "
                          "empty document?)")]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("trafilatura")] == []


def test_an_html_page_without_article_text_is_reported_and_the_rest_is_loaded(tmp_path):
    write(tmp_path / "001-good.txt", GOOD_TEXT)
    write(tmp_path / "002-menu.html", "<html><head><title>Menu</title></head><body><nav><ul>"
                                      "<li>Home</li><li>World</li></ul></nav></body></html>")
    write(tmp_path / "003-page.html", HTML_PAGE)

    loaded = load_corpus(tmp_path)

    assert [a.path for a in loaded.articles] == ["001-good.txt", "003-page.html"]
    assert [p.path for p in loaded.problems] == ["002-menu.html"]
    assert "HTML" in loaded.problems[0].reason or "text" in loaded.problems[0].reason


def test_two_files_with_one_name_are_not_both_loaded(tmp_path):
    write(tmp_path / "005-same.md", "A sentence in markdown.\n")
    write(tmp_path / "005-same.txt", "A sentence in text.\n")
    loaded = load_corpus(tmp_path)
    assert [a.path for a in loaded.articles] == ["005-same.md"]
    assert [p.path for p in loaded.problems] == ["005-same.txt"]
    assert "005-same" in loaded.problems[0].reason


def test_two_names_that_differ_only_in_unicode_form_are_one_name(tmp_path):
    composed, decomposed = "006-caf\u00e9.md", "006-cafe\u0301.md"  # print alike
    write(tmp_path / composed, "A sentence about the café.\n")
    write(tmp_path / decomposed, "Another sentence about the café.\n")
    loaded = load_corpus(tmp_path)
    assert len(loaded.articles) == 1 and len(loaded.problems) == 1
    assert "another Unicode form" in loaded.problems[0].reason
    assert "rename one" in loaded.problems[0].reason


def test_build_skips_unreadable_files_reports_them_and_indexes_the_rest(tmp_path, embedder):
    from bot.answer import Answerer
    from index.build import build_index
    from index.live import LiveIndex

    corpus = _bad_corpus(tmp_path)
    index_dir = tmp_path / "index"

    report = build_index(corpus, index_dir, embedder)

    assert report.articles == 2
    assert sorted(p.path for p in report.problems) == sorted(BAD_FILES)
    assert report.as_dict()["problems"] and all(
        p["reason"] for p in report.as_dict()["problems"])
    answer = Answerer(LiveIndex(index_dir, embedder)).ask(
        "How many freight wagons did customs officers stop at Khorgos?")
    assert answer.answered, answer.reason
    assert answer.quotes[0].article.path == "001-good.txt"
    assert "forty freight wagons" in answer.quotes[0].text

    # Still unreadable on the next build: reported again, nothing else changes.
    again = build_index(corpus, index_dir, embedder)
    assert (again.embedded, again.removed, again.articles) == (0, 0, 2)
    assert sorted(p.path for p in again.problems) == sorted(BAD_FILES)


def test_build_reports_a_second_file_with_the_same_name(tmp_path, embedder):
    from index.build import build_index

    write(tmp_path / "005-same.md", GOOD_TEXT)
    write(tmp_path / "005-same.txt", "Another article that shares the file name.\n")

    report = build_index(tmp_path, tmp_path / "index", embedder)

    assert report.articles == 1
    assert [p.path for p in report.problems] == ["005-same.txt"]


def test_build_reports_a_name_written_in_another_unicode_form(tmp_path, embedder):
    from index.build import build_index

    write(tmp_path / "006-caf\u00e9.md", GOOD_TEXT)  # é composed
    write(tmp_path / "006-cafe\u0301.md", "Another article that shares the name.\n")

    report = build_index(tmp_path, tmp_path / "index", embedder)

    assert report.articles == 1
    [problem] = report.problems
    # The first in the folder's order (e + accent sorts before é) is indexed, the other named.
    assert problem.path == "006-caf\u00e9.md"
    assert "another Unicode form" in problem.reason and "rename one" in problem.reason


def test_an_article_that_becomes_unreadable_is_reported_and_its_indexed_text_kept(
        tmp_path, embedder):
    """Bad input loses nothing: a broken save keeps the last good version in service."""
    from bot.answer import Answerer
    from index.build import build_index
    from index.live import LiveIndex

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write(corpus / "001-good.txt", GOOD_TEXT)
    write(corpus / "002-other.txt", "Beijing announced new export rules for drone engines.\n")
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir, embedder)

    write(corpus / "001-good.txt", GOOD_TEXT.encode("utf-16"))  # saved in the wrong encoding
    report = build_index(corpus, index_dir, embedder)

    assert [p.path for p in report.problems] == ["001-good.txt"]
    answer = Answerer(LiveIndex(index_dir, embedder)).ask(
        "How many freight wagons did customs officers stop at Khorgos?")
    assert answer.answered, answer.reason
    assert answer.quotes[0].article.path == "001-good.txt"


# --- the dossier in corpus/ ----------------------------------------------------------------

_FRONT = re.compile(rb"\A---\n(.*?\n)---\n", re.DOTALL)


def _corpus_file_for(raw: Path) -> Path:
    prefix = raw.name.split("_", 1)[0]
    matches = sorted(CORPUS.glob(f"{prefix}-*.md"))
    assert len(matches) == 1, (raw.name, matches)
    return matches[0]


RAW_FILES = sorted(RAW_DOSSIER.glob("*.txt"))


def test_the_corpus_holds_one_file_per_dossier_article():
    assert len(RAW_FILES) == 5
    assert len(corpus_files(CORPUS)) == 5
    assert sorted(_corpus_file_for(raw).name for raw in RAW_FILES) == sorted(
        p.name for p in corpus_files(CORPUS))


@pytest.mark.parametrize("raw", RAW_FILES, ids=lambda p: p.name[:3])
def test_corpus_body_is_byte_for_byte_the_raw_article(raw):
    stored = _corpus_file_for(raw).read_bytes()
    match = _FRONT.match(stored)
    assert match, "the corpus file starts with YAML front matter"
    assert stored[match.end():] == raw.read_bytes()
    comments = [line for line in match.group(1).decode().splitlines() if line.startswith("#")]
    assert any(raw.name in line for line in comments), comments

    article = load_article(_corpus_file_for(raw), CORPUS)
    assert article.body.encode("utf-8") == raw.read_bytes()
    assert article.sha256 == hashlib.sha256(stored).hexdigest()
    assert article.prefix == raw.name[:3]


def test_corpus_loads_without_problems_and_with_metadata():
    loaded = load_corpus(CORPUS)
    assert loaded.problems == ()
    by_prefix = {a.prefix: a for a in loaded.articles}
    assert sorted(by_prefix) == ["000", "001", "002", "003", "004"]
    impakter = by_prefix["000"]
    assert impakter.title == "Ukraine War: Why Is Russia Asking China for Military Aid?"
    assert impakter.outlet == "Impakter"
    assert impakter.author == "Claude Forthomme"
    assert impakter.published == "2022-03-15"
    for article in loaded.articles:
        assert article.published is None or re.fullmatch(r"\d{4}-\d{2}-\d{2}", article.published)



def test_a_sub_folder_of_articles_is_named_not_silently_ignored(tmp_path):
    from index.load import scan_corpus

    corpus = tmp_path / "corpus"
    write(corpus / "001-good.txt", GOOD_TEXT)
    write(corpus / "2005" / "002-old.txt", GOOD_TEXT)
    (corpus / "notes").mkdir()  # no articles in it: nothing to say
    write(corpus / "notes" / "todo.json", "{}")
    files, problems = scan_corpus(corpus)
    assert [f.name for f in files] == ["001-good.txt"]
    assert [(p.path, p.reason.split(":")[0]) for p in problems] == [
        ("2005/", "a sub-folder with 1 article file(s)")]


def test_the_inbox_beside_a_read_only_corpus_is_read_and_a_linked_inbox_is_not(
        tmp_path, embedder):
    from bot.status import index_status
    from index.build import build_index
    from index.load import scan_corpus

    corpus = tmp_path / "corpus"
    write(corpus / "001-good.txt", GOOD_TEXT)
    # Chat adds articles beside a read-only corpus (bot/intake.py): they must be indexed.
    write(tmp_path / "corpus-inbox" / "kalvik.md", "# Kalvik lighthouse\n\nThe lighthouse on "
          "Kalvik island was repainted orange in 2022.\n")
    # Another dossier's, kept beside it, is not this one's.
    write(tmp_path / "other-inbox" / "elsewhere.md", "# Elsewhere\n\nAnother story.\n")
    write(tmp_path / "inbox" / "shared.md", "# Shared\n\nNo dossier's own.\n")
    # Named where an operator will find it, not as if it were in the corpus folder.
    assert index_status(corpus, tmp_path / "index")["added"] == ["001-good.txt",
                                                                 "inbox/kalvik.md"]
    report = build_index(corpus, tmp_path / "index", embedder)
    assert report.articles == 2
    # The inbox of earlier versions is named, not read: its articles may be this dossier's.
    (problem,) = report.problems
    assert problem.path == "../inbox/" and "move them there" in problem.reason
    assert "corpus-inbox/" in problem.reason
    # An inbox inside the corpus that links elsewhere is not read (nor hashed).
    outside = tmp_path / "elsewhere"
    write(outside / "secret.md", "# Secret\n\nNot for the dossier.\n")
    (corpus / "inbox").symlink_to(outside, target_is_directory=True)

    files, _ = scan_corpus(corpus)
    assert "secret.md" not in {f.name for f in files}


def test_the_configured_inbox_is_read_with_the_corpus(tmp_path, monkeypatch):
    from index.load import scan_corpus

    corpus = tmp_path / "data" / "corpus"
    write(corpus / "001-good.txt", GOOD_TEXT)
    write(tmp_path / "data" / "inbox" / "added.md", "# Added\n\nFrom chat.\n")
    assert [f.name for f in scan_corpus(corpus)[0]] == ["001-good.txt"]
    monkeypatch.setenv("DOSSIER_INBOX_DIR", str(tmp_path / "data" / "inbox"))
    assert [f.name for f in scan_corpus(corpus)[0]] == ["001-good.txt", "added.md"]
    # Named again, in another spelling, it is still read once.
    monkeypatch.setenv("DOSSIER_INBOX_DIR", str(corpus / "inbox"))
    (corpus / "inbox").mkdir()
    (corpus / "inbox" / "x.md").write_text("# X\n\nText.\n")
    monkeypatch.chdir(tmp_path)
    files, problems = scan_corpus(Path("data") / "corpus")
    assert [f.name for f in files] == ["001-good.txt", "x.md"]
    assert [p.path for p in problems] == ["../inbox/"]  # data/inbox, no longer named


def test_a_link_switched_between_check_and_read_cannot_slip_an_outside_file_in(
        tmp_path, monkeypatch):
    import index.load
    from index.load import ArticleError, load_article

    corpus = tmp_path / "corpus"
    write(corpus / "001-good.txt", GOOD_TEXT)
    write(tmp_path / "secret.txt", "The password is hunter2.\n")
    (corpus / "002-link.txt").symlink_to(tmp_path / "secret.txt")
    real = index.load.os.path.realpath

    def switched(path, *args, **kwargs):
        # The link pointed outside when it was opened, and inside when it was checked.
        found = real(path, *args, **kwargs)
        return real(corpus / "001-good.txt") if found == real(tmp_path / "secret.txt") else found

    monkeypatch.setattr(index.load.os.path, "realpath", switched)
    with pytest.raises(ArticleError, match="outside the corpus"):
        load_article(corpus / "002-link.txt", corpus)
    assert "hunter2" not in load_article(corpus / "001-good.txt", corpus).body


def test_a_name_clash_with_the_inbox_says_which_copy_is_skipped(tmp_path):
    from index.diff import corpus_diff

    corpus = tmp_path / "corpus"
    write(corpus / "001-x.md", GOOD_TEXT)
    write(corpus / "inbox" / "001-x.md", "Another article under the same name.\n")
    problems = [(p.path, p.reason) for p in corpus_diff(corpus, None).ignored]
    assert ("inbox/001-x.md", "001-x.md has the same name; rename one of them") in problems


def test_a_configured_inbox_inside_the_corpus_is_read_not_reported(tmp_path, monkeypatch):
    from index.load import scan_corpus

    write(tmp_path / "corpus" / "001-good.txt", GOOD_TEXT)
    write(tmp_path / "corpus" / "added" / "kalvik.md", "# Kalvik\n\nThe lighthouse.\n")
    monkeypatch.setenv("DOSSIER_INBOX_DIR", str(tmp_path / "corpus" / "added"))
    files, problems = scan_corpus(tmp_path / "corpus")
    assert [f.name for f in files] == ["001-good.txt", "kalvik.md"] and problems == []


def test_a_page_in_another_encoding_keeps_its_accents_and_quotation_marks(tmp_path):
    page = ("<html><head><meta charset='windows-1252'><title>Café owners</title></head><body>"
            "<article><p>" + "Café owners said “we hired three people”, the mayor added. " * 8
            + "</p></article></body></html>")
    article = load_article(write(tmp_path / "cafe.html", page.encode("cp1252")))
    assert "Café owners said “we hired three people”" in article.body


def test_inbox_files_are_not_read_again_when_unchanged(tmp_path, embedder, monkeypatch):
    import index.diff
    from index.build import build_index

    monkeypatch.setattr(index.diff, "RACY_NS", 0)  # every stamp trusted at once
    write(tmp_path / "corpus" / "001-good.txt", GOOD_TEXT)
    write(tmp_path / "corpus" / "inbox" / "kalvik.md", "# Kalvik\n\nThe lighthouse on Kalvik "
          "island was repainted orange in March 2022.\n")
    build_index(tmp_path / "corpus", tmp_path / "index", embedder)
    read: list[str] = []
    hashing = index.diff.file_sha256
    monkeypatch.setattr(index.diff, "file_sha256", lambda p: read.append(p.name) or hashing(p))
    build_index(tmp_path / "corpus", tmp_path / "index", embedder)
    assert read == []


def test_a_short_article_in_mixed_paragraph_markup_keeps_every_paragraph(tmp_path):
    # trafilatura's precision mode keeps only the <p> half of this page; read_html then
    # keeps the default extraction, which has it all.
    paras = [f"Paragraph {i} tells how the walkers crossed the moor near Hebden Bridge on day "
             f"{i}, guided by a ranger." for i in range(8)]
    body = "".join(f"<p>{p}</p>" if i % 2 == 0 else f"<div class='para'>{p}</div>"
                   for i, p in enumerate(paras))
    page = (f"<html><head><title>Moor walk</title></head><body><article><h1>Moor walk</h1>"
            f"{body}</article><footer>About us</footer></body></html>")
    article = load_article(write(tmp_path / "walk.html", page))
    assert all(p in article.body for p in paras)
    assert "About us" not in article.body
