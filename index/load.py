"""Read corpus files (.md with front matter, .txt, .html, .pdf, .docx) into ``Article`` objects.

Only regular files whose real path lies inside the corpus folder are read, each under a size
limit; everything else in the folder is named, with its reason, by ``scan_corpus``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

from index.documents import (
    DocumentError,
    DocumentText,
    positive_setting,
    read_docx,
    read_html,
    read_pdf,
)
from index.model import Article, Corpus, LoadProblem

INBOX = "inbox"  # articles added from chat (bot/intake.py)
SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx")
# Per-article size limit. Cleaning and sentence splitting are linear, but embedding is not
# cheap: a 20 MB "article" is a data dump, and under --watch it runs in the serving process.
DEFAULT_MAX_ARTICLE_MB = 4.0
MAX_ARTICLE_ENV = "DOSSIER_MAX_ARTICLE_MB"
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*\r?\n", re.DOTALL)
_BYLINE = re.compile(r"^\s*[Bb]y\s+([A-Z][\w.'-]+(?:\s+[A-Z][\w.'-]+){1,3})\s*$", re.MULTILINE)
_MD_HEADING = re.compile(r"^#{1,3}\s+(\S.*?)\s*#*\s*$")
# How much of an article's start is searched for its date: datelines sit near the top, and
# a date deep in the text is usually about an event, not the publication.
_DATE_HEAD = 1500
_DATELINE_WORD = re.compile(r"(?i)^(?:published|updated|last updated|posted|dated|first "
                            r"published)\b")
_FULL_DATE = re.compile(
    r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\b.*\b\d{4}\b"
    r"|\b\d{4}\b.*\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
    r"|\b\d{1,2}[/.]\d{1,2}[/.]\d{4}\b|\b\d{4}-\d{2}-\d{2}\b")


class ArticleError(ValueError):
    """A corpus file could not be turned into an article (``limits``: see LoadProblem)."""

    def __init__(self, message: str, *, limits: str | None = None) -> None:
        super().__init__(message)
        self.limits = limits


def max_article_bytes() -> int:
    """The per-article size limit, from DOSSIER_MAX_ARTICLE_MB (default 4 MB)."""
    return int(positive_setting(MAX_ARTICLE_ENV, DEFAULT_MAX_ARTICLE_MB) * 1024 * 1024)


def scan_corpus(corpus_dir: Path) -> tuple[list[Path], list[LoadProblem]]:
    """The files dossier-bot reads, in a stable order, and every other file with the reason
    it is not read: the corpus folder's own, then those added from chat in ``inbox/`` inside
    it or beside it (beside: next to a read-only corpus). Dotfiles (editor swap files,
    partial downloads) are left out silently; other sub-folders are named as not read."""
    if not corpus_dir.is_dir():
        return [], []
    files: list[Path] = []
    problems: list[LoadProblem] = []
    roots = reading_roots(corpus_dir)
    real = frozenset(os.path.realpath(r) for r in roots)
    for folder in roots:
        found, bad = _scan_folder(folder, "" if folder == corpus_dir else f"{INBOX}/", real)
        files += found
        problems += bad
    # Where chat stored articles beside a read-only corpus before it was named after it.
    legacy = corpus_dir.parent / INBOX
    if legacy.is_dir() and os.path.realpath(legacy) not in map(os.path.realpath, roots) \
            and (n := _articles_in(str(legacy))):
        beside, configured = side_inbox(corpus_dir)
        where = f"{beside} ({INBOX_ENV})" if configured else f"{beside.name}/ (or {INBOX_ENV})"
        problems.append(LoadProblem(f"../{INBOX}/", (
            f"{n} article file(s) in the inbox beside the corpus folder, which is not read: "
            f"articles added from chat now go to {where}; move them there if they belong "
            "to this dossier")))
    return files, problems


def reading_roots(corpus_dir: Path) -> list[Path]:
    """The folders articles are read from: the corpus folder, its ``inbox/``, and the inbox
    beside it (``side_inbox``: where chat adds articles when the corpus is read-only). An
    inbox inside the corpus, or a default one beside it, that is a link to somewhere else
    is not read."""
    roots = [corpus_dir]
    inside = corpus_dir / INBOX
    if inside.is_dir() and os.path.realpath(inside) == os.path.join(
            os.path.realpath(corpus_dir), INBOX):
        roots.append(inside)
    beside, configured = side_inbox(corpus_dir)
    real = os.path.realpath(beside)
    if beside.is_dir() and real not in map(os.path.realpath, roots) and (configured or real == (
            os.path.join(os.path.realpath(corpus_dir.parent), beside.name))):
        roots.append(beside)
    return roots


INBOX_ENV = "DOSSIER_INBOX_DIR"


def side_inbox(corpus_dir: Path) -> tuple[Path, bool]:
    """The inbox outside the corpus folder, and whether DOSSIER_INBOX_DIR names it. By
    default ``<corpus>-inbox`` beside the corpus: named after it, so that two dossiers kept
    side by side never read each other's additions."""
    configured = os.environ.get(INBOX_ENV, "").strip()
    if configured:
        return Path(configured), True
    return corpus_dir.parent / f"{corpus_dir.name}-{INBOX}", False


def _scan_folder(folder: Path, prefix: str,
                 read_too: frozenset[str] = frozenset()) -> tuple[list[Path], list[LoadProblem]]:
    """``read_too``: the real paths of the other folders read, which a sub-folder may be
    (a DOSSIER_INBOX_DIR inside the corpus): not named as unread."""
    root = os.path.realpath(folder)
    limit = max_article_bytes()
    files: list[Path] = []
    problems: list[LoadProblem] = []
    # scandir: the file type comes with the listing, no stat per file (25k files at 1M passages)
    with os.scandir(folder) as entries:
        for e in sorted(entries, key=lambda e: e.name):
            if e.name.startswith((".", "~")):
                continue
            if not _utf8(e.name):
                # Article ids, the index's catalog and every report are UTF-8 text.
                shown = os.fsencode(e.name).decode("utf-8", "replace")
                problems.append(LoadProblem(prefix + shown, (
                    "the file name is not valid UTF-8 (a name made on another system?); "
                    "rename it")))
                continue
            if e.is_symlink():
                reason = _link_problem(e.path, root)
                if reason:
                    problems.append(LoadProblem(prefix + e.name, reason))
                    continue
            if not e.is_file():
                if not e.is_dir():
                    problems.append(LoadProblem(prefix + e.name, "not a regular file"))
                elif (prefix or e.name != INBOX) and os.path.realpath(e.path) not in read_too \
                        and (n := _articles_in(e.path)):
                    # Named only when it holds articles someone may expect to be read (not,
                    # say, an index folder kept inside the corpus).
                    problems.append(LoadProblem(prefix + e.name + "/", (
                        f"a sub-folder with {n} article file(s): only the corpus folder "
                        "itself (and inbox/) is read; move them up")))
                continue
            suffix = os.path.splitext(e.name)[1].lower()
            if suffix not in SUPPORTED_SUFFIXES:
                problems.append(LoadProblem(prefix + e.name, (
                    f"unsupported file type {suffix or '(no extension)'}; dossier-bot reads "
                    + ", ".join(SUPPORTED_SUFFIXES))))
                continue
            size = e.stat().st_size
            if size > limit:
                problems.append(LoadProblem(prefix + e.name, _too_large(size, limit)))
                continue
            files.append(Path(e.path))
    return files, problems


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, which Python keeps as lone surrogates
        return False
    return True


def _articles_in(folder: str) -> int:
    """Files of a supported type directly in ``folder`` (0 when it cannot be listed)."""
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if not e.name.startswith((".", "~"))
                       and os.path.splitext(e.name)[1].lower() in SUPPORTED_SUFFIXES)
    except OSError:
        return 0


def shown_path(path: Path, corpus_dir: Path) -> str:
    """A corpus file as reports name it: its name, or ``inbox/`` and its name for a file
    added from chat (so two files of one name can be told apart)."""
    return path.name if path.parent == corpus_dir else f"{INBOX}/{path.name}"


def corpus_files(corpus_dir: Path) -> list[Path]:
    """The files of a corpus folder that dossier-bot reads, in a stable order."""
    return scan_corpus(corpus_dir)[0]


def _link_problem(path: str, root: str) -> str | None:
    """Why a symbolic link in the corpus is not read (None when it stays inside the corpus:
    a link to ``/etc/passwd`` must never be quoted in a chat channel)."""
    target = os.path.realpath(path)
    if os.path.commonpath([root, target]) != root:
        return "a link to a file outside the corpus folder; copy the file in instead"
    if not os.path.exists(target):
        return "a link whose target does not exist"
    return None


def _too_large(size: int, limit: int) -> str:
    return (f"{size / 1048576:.1f} MB, over the {limit / 1048576:g} MB limit per article; "
            f"split it, or raise {MAX_ARTICLE_ENV}")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_corpus(corpus_dir: Path, paths: Iterable[Path] | None = None) -> Corpus:
    """Load every readable article; a file that cannot be read is reported and skipped."""
    articles: list[Article] = []
    problems: list[LoadProblem] = []
    seen: dict[str, str] = {}  # name_key of each id taken -> the id as written
    if paths is None:
        paths, problems = scan_corpus(corpus_dir)
    roots = real_roots(corpus_dir)  # once for the corpus, not once per file
    for path in paths:
        try:
            article = load_article(path, corpus_dir, roots=roots)
        except (ArticleError, OSError) as exc:
            problems.append(LoadProblem(path=path.name, reason=str(exc),
                                        limits=getattr(exc, "limits", None)))
            continue
        key = name_key(article.id)
        if key in seen:
            problems.append(LoadProblem(path=shown_path(path, corpus_dir), reason=(
                f"another file is also named {article.id!r}{alike(seen[key], article.id)}; "
                "rename one of them")))
            continue
        seen[key] = article.id
        articles.append(article)
    return Corpus(articles=tuple(articles), problems=tuple(problems))


def name_key(stem: str) -> str:
    """What two article names are compared by: Unicode's composed form. "café" made on one
    system and copied from another (é, or e + accent) are two names on disk that print
    alike, not two articles."""
    return unicodedata.normalize("NFC", stem)


def alike(first: str, second: str) -> str:
    """How a second file of ``first``'s name (by ``name_key``) differs from it, for the
    report: nothing, or that only the Unicode form does."""
    return "" if first == second else " (the same letters, written in another Unicode form)"


def load_article(path: Path, corpus_dir: Path | None = None, *,
                 roots: list[str] | None = None) -> Article:
    """The article in ``path``; with ``corpus_dir``, only a file inside it (``roots``: its
    ``real_roots``, when the caller has them)."""
    limit = max_article_bytes()
    with path.open("rb") as fh:
        if corpus_dir is not None:
            _check_inside(fh.fileno(), path, roots or real_roots(corpus_dir))
        # Everything below reads these bytes, never the path again.
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ArticleError(_too_large(path.stat().st_size, limit))
    if not data.strip():
        raise ArticleError("the file is empty")
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        found = _from_document(read_html, data)
    elif suffix == ".pdf":
        found = _from_document(read_pdf, data)
    elif suffix == ".docx":
        found = _from_document(read_docx, data)
    elif suffix in (".md", ".markdown"):
        found = read_markdown(_decode(data))
    else:
        found = DocumentText(body=_decode(data))
    body = found.body
    if not body or not body.strip():
        raise ArticleError("no article text was found in the file")
    rel = path.name if corpus_dir is None else os.path.relpath(path, corpus_dir)
    return Article(
        id=path.stem,
        path=rel,
        body=body,
        sha256=hashlib.sha256(data).hexdigest(),
        # Title: the file's own (front matter, metadata), else its headline, else its name.
        title=found.title or headline(body) or title_from_name(path.stem),
        outlet=found.outlet,
        author=found.author or _byline(body),
        published=article_date(found),
        url=found.url,
    )


def article_date(found: DocumentText) -> str | None:
    """An article's date: the file's own (front matter, page metadata), else the first full
    date near the top of the text; a PDF's or Word file's creation date only when the text
    names none."""
    return (_normalise_date(found.published) or date_in_text(found.body)
            or found.file_date)


def search_title(article: Article) -> str | None:
    """The title as evidence for search: None when it was only made from the file name."""
    title = article.title
    return None if not title or title == title_from_name(article.id) else title


def headline(body: str) -> str | None:
    """The article's headline when its text opens with one: a Markdown ``#`` heading, or a
    short first line without closing punctuation followed by a blank line (the shape of a
    plain-text news article: headline, blank line, body)."""
    lines = body.lstrip("\ufeff").splitlines()
    i = next((n for n, line in enumerate(lines) if line.strip()), None)
    if i is None:
        return None
    first = lines[i].strip()
    heading = _MD_HEADING.match(first)
    if heading:
        return heading.group(1).strip() or None
    from index.clean import is_byline_or_dateline

    # A headline is followed by a blank line, or by its byline or dateline.
    followed_by_blank = (i + 1 >= len(lines) or not lines[i + 1].strip()
                         or is_byline_or_dateline(lines[i + 1]))
    words = first.split()
    if (followed_by_blank and 1 < len(words) <= 25 and len(first) <= 150
            and not first.endswith((".", ",", ";", ":")) and not first.startswith(("•", "-"))):
        return first
    return None


def date_in_text(body: str) -> str | None:
    """The publication date written near the top of an article, YYYY-MM-DD: the first full
    date (day, month and year) on a dateline, that is a short line ("20 March 2022",
    "Claire Roe, 14 March 2022") or one that says "Published", "Updated" or "Posted". A
    date inside a sentence or a photo caption is about an event, not the article."""
    from dateparser.search import search_dates

    for line in body[:_DATE_HEAD].splitlines():
        text = line.strip()
        if not text or not (len(text.split()) <= 8 or _DATELINE_WORD.match(text)):
            continue
        if not _FULL_DATE.search(text):
            continue
        try:
            found = search_dates(text, languages=["en"], settings={
                "REQUIRE_PARTS": ["day", "month", "year"], "STRICT_PARSING": True,
                "PREFER_DATES_FROM": "past"})
        except (ValueError, OverflowError, TypeError):
            continue
        for part, when in found or ():
            # dateparser also reads "now", "the 1960s" and "40 years" as dates: only a
            # written day, month and year count (a month by name, 20/03/2022, 2022-03-20).
            if _FULL_DATE.search(part) and 1900 <= when.year <= 2100:
                return when.date().isoformat()
    return None


def _byline(body: str) -> str | None:
    match = _BYLINE.search(body[:3000])
    return match.group(1) if match else None


def _decode(data: bytes) -> str:
    if b"\x00" in data[:4096]:
        raise ArticleError("the file looks binary (it holds NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ArticleError(f"the file is not valid UTF-8 text (byte {exc.start}); "
                           "save it as UTF-8") from None


def read_markdown(text: str) -> DocumentText:
    """The body and metadata of a Markdown article: its YAML front matter, if any, gives the
    title, outlet, author, published and url; the body is what follows it."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return DocumentText(body=text)
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        # Where the faulty value starts (an unclosed quote is noticed lines later), counted
        # in the file: its first line is the opening "---".
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        raise ArticleError(f"its YAML front matter cannot be parsed{where}") from None
    if not isinstance(meta, dict):
        raise ArticleError("its front matter is not a set of `key: value` lines")
    return DocumentText(
        body=text[match.end():],
        title=_clean_field(meta.get("title")),
        outlet=_clean_field(meta.get("outlet")),
        author=_clean_field(meta.get("author")),
        # YAML reads a bare 2022-03-15 as a date: normalised to text here.
        published=_normalise_date(meta.get("published")),
        url=_clean_field(meta.get("url")),
    )


def real_roots(corpus_dir: Path) -> list[str]:
    """``reading_roots`` with links resolved: where a corpus file may really live."""
    return [os.path.realpath(r) for r in reading_roots(corpus_dir)]


def _check_inside(fd: int, path: Path, roots: list[str]) -> None:
    """Refuse an opened file unless it is the file found, right now, at ``path``'s real
    location inside one of ``roots``. Checked on the open file, so a link switched between
    the check and the read cannot slip an outside file in."""
    real = os.path.realpath(path)
    opened = os.fstat(fd)
    try:
        there = os.stat(real)
    except OSError:
        there = None
    if not any(os.path.commonpath([root, real]) == root for root in roots) or there is None \
            or (there.st_dev, there.st_ino) != (opened.st_dev, opened.st_ino):
        raise ArticleError("a link to a file outside the corpus folder; copy the file in "
                           "instead")


def _from_document(read: Callable[[bytes], DocumentText], data: bytes) -> DocumentText:
    try:
        return read(data)
    except DocumentError as exc:
        raise ArticleError(str(exc), limits=exc.limits) from None


def _clean_field(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _normalise_date(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    match = re.match(r"(\d{4}-\d{2}-\d{2})", text)
    if match:
        return match.group(1)
    import dateparser

    when = dateparser.parse(text, languages=["en"],
                            settings={"REQUIRE_PARTS": ["day", "month", "year"]})
    return when.date().isoformat() if when else None


def title_from_name(stem: str) -> str | None:
    """A readable title made from a file name ("004-will-china-give-aid" -> "Will china
    give aid"), for articles that carry none. It only names the article: search does not
    read it as the article's words (see ``search_title``)."""
    words = re.sub(r"^\d+[-_]?", "", stem).replace("_", " ").replace("-", " ").strip()
    if not words or re.fullmatch(r"[0-9a-f ]+", words):
        return None
    return words[:1].upper() + words[1:]
