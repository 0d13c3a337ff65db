"""Read corpus files (.md with front matter, .txt, .html, .pdf) into ``Article`` objects."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

import yaml

from index.model import Article, Corpus, LoadProblem

INBOX = "inbox"  # articles added from chat (bot/intake.py)
SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".pdf")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*\r?\n", re.DOTALL)
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december"]
_DATE_WORDS = re.compile(
    r"\b(" + "|".join(m.capitalize() for m in _MONTHS) + r")\s+(\d{1,2}),\s*(\d{4})\b")
_BYLINE = re.compile(r"^\s*[Bb]y\s+([A-Z][\w.'-]+(?:\s+[A-Z][\w.'-]+){1,3})\s*$", re.MULTILINE)


class ArticleError(ValueError):
    """A corpus file could not be turned into an article."""


def corpus_files(corpus_dir: Path) -> list[Path]:
    """The files of a corpus folder that dossier-bot reads, in a stable order: its own, then
    those added from chat in ``inbox/`` inside it or beside it (beside: a read-only corpus)."""
    if not corpus_dir.is_dir():
        return []
    folders = (corpus_dir, corpus_dir / INBOX, corpus_dir.parent / INBOX)
    return [p for folder in dict.fromkeys(folders) if folder.is_dir()
            for p in _files_in(folder)]


def _files_in(folder: Path) -> list[Path]:
    # scandir: the file type comes with the listing, no stat per file (25k files at 1M passages)
    with os.scandir(folder) as entries:
        return sorted(
            Path(e.path) for e in entries
            if not e.name.startswith(".") and os.path.splitext(e.name)[1].lower()
            in SUPPORTED_SUFFIXES and e.is_file()
        )


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_corpus(corpus_dir: Path, paths: Iterable[Path] | None = None) -> Corpus:
    """Load every readable article; a file that cannot be read is reported and skipped."""
    articles: list[Article] = []
    problems: list[LoadProblem] = []
    seen: set[str] = set()
    for path in corpus_files(corpus_dir) if paths is None else paths:
        try:
            article = load_article(path, corpus_dir)
        except (ArticleError, OSError) as exc:
            problems.append(LoadProblem(path=path.name, reason=str(exc)))
            continue
        if article.id in seen:
            problems.append(LoadProblem(path=path.name, reason=(
                f"another file is also named {article.id!r}; rename one of them")))
            continue
        seen.add(article.id)
        articles.append(article)
    return Corpus(articles=tuple(articles), problems=tuple(problems))


def load_article(path: Path, corpus_dir: Path | None = None) -> Article:
    data = path.read_bytes()
    if not data.strip():
        raise ArticleError("the file is empty")
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        fields = _from_html(data)
    elif suffix == ".pdf":
        fields = _from_pdf(path)
    else:
        text = _decode(data)
        parse = _from_markdown if suffix in (".md", ".markdown") else _from_text
        fields = parse(text)
    body = fields.pop("body")
    if not body or not body.strip():
        raise ArticleError("no article text was found in the file")
    rel = path.name if corpus_dir is None else os.path.relpath(path, corpus_dir)
    title = fields.get("title")
    if title is None and not fields.get("front_matter"):
        title = _title_from_name(path.stem)
    return Article(
        id=path.stem,
        path=rel,
        body=body,
        sha256=hashlib.sha256(data).hexdigest(),
        title=title,
        outlet=fields.get("outlet"),
        author=fields.get("author"),
        published=fields.get("published"),
        url=fields.get("url"),
    )


def _decode(data: bytes) -> str:
    if b"\x00" in data[:4096]:
        raise ArticleError("the file looks binary (it holds NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ArticleError(f"the file is not valid UTF-8 text (byte {exc.start}); "
                           "save it as UTF-8") from None


def _from_markdown(text: str) -> dict[str, str | None]:
    match = _FRONT_MATTER.match(text)
    if not match:
        fields = _from_text(text)
        return fields
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        raise ArticleError(f"its YAML front matter cannot be parsed{where}") from None
    if not isinstance(meta, dict):
        raise ArticleError("its front matter is not a set of `key: value` lines")
    body = text[match.end():]
    return {
        "body": body,
        "front_matter": "yes",
        "title": _clean_field(meta.get("title")),
        "outlet": _clean_field(meta.get("outlet")),
        "author": _clean_field(meta.get("author")),
        "published": _normalise_date(meta.get("published")),
        "url": _clean_field(meta.get("url")),
    }


def _from_text(text: str) -> dict[str, str | None]:
    head = text[:3000]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    title = lines[0] if lines and len(lines[0]) <= 150 and not lines[0].endswith(".") else None
    date = _DATE_WORDS.search(head)
    byline = _BYLINE.search(head)
    return {
        "body": text,
        "title": title,
        "published": _date_from_match(date) if date else None,
        "author": byline.group(1) if byline else None,
    }


def _from_html(data: bytes) -> dict[str, str | None]:
    import trafilatura

    doc = trafilatura.bare_extraction(
        data.decode("utf-8", errors="replace"), with_metadata=True, include_comments=False,
        include_tables=False, favor_precision=True,
    )
    if doc is None:
        raise ArticleError("no article text could be extracted from the HTML")
    get = (lambda k: getattr(doc, k, None)) if not isinstance(doc, dict) else doc.get
    return {
        "body": get("text") or "",
        "title": _clean_field(get("title")),
        "outlet": _clean_field(get("sitename")),
        "author": _clean_field(get("author")),
        "published": _normalise_date(get("date")),
        "url": _clean_field(get("url")),
    }


def _from_pdf(path: Path) -> dict[str, str | None]:
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    # A damaged PDF is reported once, as a skipped file; pypdf's own warnings would repeat it.
    logging.getLogger("pypdf").setLevel(logging.ERROR)

    try:
        reader = PdfReader(path)
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata or {}
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise ArticleError(f"the PDF cannot be read ({exc})") from None
    body = "\n\n".join(p.strip() for p in pages if p.strip())
    created = getattr(info, "creation_date", None) if info else None
    return {
        "body": body,
        "title": _clean_field(info.get("/Title")) if info else None,
        "author": _clean_field(info.get("/Author")) if info else None,
        "published": created.date().isoformat() if isinstance(created, dt.datetime) else None,
    }


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
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return text
    match = _DATE_WORDS.search(text)
    if match:
        return _date_from_match(match)
    match = re.match(r"(\d{4}-\d{2}-\d{2})", text)
    return match.group(1) if match else None


def _date_from_match(match: re.Match[str]) -> str | None:
    month = _MONTHS.index(match.group(1).lower()) + 1
    try:
        return dt.date(int(match.group(3)), month, int(match.group(2))).isoformat()
    except ValueError:
        return None


def _title_from_name(stem: str) -> str | None:
    words = re.sub(r"^\d+[-_]?", "", stem).replace("_", " ").replace("-", " ").strip()
    if not words or re.fullmatch(r"[0-9a-f ]+", words):
        return None
    return words[:1].upper() + words[1:]
