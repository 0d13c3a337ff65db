"""Reading the article formats that need a parser: web pages, PDF and Word, behind limits.

Both the corpus loader (``index.load``) and articles added from chat (``bot.intake``) read
them here, so a file reads the same whichever way it arrives.

A PDF is parsed in a child process (``python -m index.documents``) under a time and a memory
limit: a crafted PDF can keep pypdf busy for minutes (deep object graphs, thousands of pages
of maximal streams), and the parser runs inside the serving bot during a rebuild. The child
costs about 0.2 s per PDF. A Word file is a zip: the sizes its parts would unpack to are
checked before any is unpacked, then python-docx reads it in this process.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Far above what a news article takes (well under a second), far below a stuck parse.
PDF_SECONDS_ENV = "DOSSIER_PDF_SECONDS"
DEFAULT_PDF_SECONDS = 60.0
# The PDF child's address space. pypdf caps each decoded stream at 75 MB; this caps the sum.
PDF_MEMORY_ENV = "DOSSIER_PDF_MEMORY_MB"
DEFAULT_PDF_MEMORY_MB = 1024
# Far above any article, far below what a few-MB zip bomb would take (gigabytes).
MAX_UNPACKED_MB = 64


class DocumentError(ValueError):
    """A page or file that cannot be read; the message says why, for the user. ``limits``:
    set when it failed on the reading limits (``limits_key``) rather than on its bytes, so
    that it is tried again once the limits change."""

    def __init__(self, message: str, *, limits: str | None = None) -> None:
        super().__init__(message)
        self.limits = limits


def limits_key() -> str:
    """The reading limits in force, as recorded beside a file that failed on them."""
    return f"pdf {pdf_seconds():g} s, {pdf_memory_mb()} MB"


@dataclass(frozen=True)
class DocumentText:
    """What a page or file holds: its text and the metadata it carries."""

    body: str
    title: str | None = None
    author: str | None = None
    outlet: str | None = None
    published: str | None = None  # as the page states it (not yet normalised)
    url: str | None = None
    # The file's creation date (ISO): a fallback only, as files are often made long after
    # the article was published.
    file_date: str | None = None


def read_html(data: bytes, *, url: str | None = None) -> DocumentText:
    """The main text and metadata of a web page (trafilatura), without menus, footers,
    comments or tables. Raises ``DocumentError`` when it holds no article text."""
    import trafilatura

    # A page without an article is reported once, by the caller; trafilatura would log it
    # three times over, as errors.
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)

    def extract(precise: bool):  # bytes: trafilatura finds the page's own encoding
        return trafilatura.bare_extraction(
            data, url=url, with_metadata=True, include_comments=False, include_tables=False,
            favor_precision=precise)

    doc = extract(True)
    if doc is not None and len(_text_of(doc)) < SHORT_PAGE_CHARS:
        # Precision can drop paragraphs of a short article laid out in mixed <p>/<div>: the
        # default extraction then keeps the longer text. (A page where precision finds no
        # article at all, a menu, stays without one.)
        other = extract(False)
        if len(_text_of(other)) > len(_text_of(doc)):
            doc = other
    if doc is None:
        raise DocumentError("no article text was found there (a menu, a login page or an "
                            "empty document?)")
    get = doc.get if isinstance(doc, dict) else (lambda key: getattr(doc, key, None))
    # str(): trafilatura hands back its own string types, which YAML refuses.
    return DocumentText(body=str(get("text") or ""), title=_field(get("title")),
                        author=_field(get("author")), outlet=_field(get("sitename")),
                        published=_field(get("date")), url=_field(get("url")) or url)


def pdf_seconds() -> float:
    """The time one PDF may take to read, from DOSSIER_PDF_SECONDS (default 60)."""
    return positive_setting(PDF_SECONDS_ENV, DEFAULT_PDF_SECONDS)


def pdf_memory_mb() -> int:
    """The memory one PDF may take to read, from DOSSIER_PDF_MEMORY_MB (default 1024)."""
    return int(positive_setting(PDF_MEMORY_ENV, DEFAULT_PDF_MEMORY_MB))


def positive_setting(name: str, default: float) -> float:
    """A positive number from the environment variable ``name``, else ``default``. The few
    limits the index package reads itself; `config check` reports a bad value, and reading
    goes on with the default meanwhile."""
    try:
        value = float(os.environ.get(name, "").strip() or default)
    except ValueError:
        return default
    return value if value > 0 else default


# The exit statuses of a child killed on its limits (the negated signal numbers).
_LIMIT_SIGNALS = {-getattr(signal, name) for name in ("SIGXCPU", "SIGKILL")
                  if hasattr(signal, name)}


# Below this many characters an extraction is tried both ways (see read_html).
SHORT_PAGE_CHARS = 1500


def _text_of(doc: object) -> str:
    if doc is None:
        return ""
    text = doc.get("text") if isinstance(doc, dict) else getattr(doc, "text", None)
    return text or ""


def read_pdf(data: bytes, *, seconds: float | None = None) -> DocumentText:
    """The text and metadata of a PDF, parsed in a child process under a time and memory
    limit. Raises ``DocumentError`` for a damaged PDF, or one that takes too long or too
    much memory to read."""
    seconds = pdf_seconds() if seconds is None else seconds
    try:
        # -P: the working folder is not put on the child's import path (an index.py or a
        # json.py there would be run in place of ours).
        done = subprocess.run([sys.executable, "-P", "-m", "index.documents", "pdf"],
                              input=data, capture_output=True, timeout=seconds, check=False)
    except subprocess.TimeoutExpired:
        raise DocumentError(f"the PDF took over {seconds:g} s to read; it was given up "
                            f"(a damaged or crafted file?); {PDF_SECONDS_ENV} sets the "
                            "limit", limits=limits_key()) from None
    try:
        found = json.loads(done.stdout)
    except ValueError:
        found = None
    if done.returncode != 0 or not isinstance(found, dict):
        if done.returncode in _LIMIT_SIGNALS or b"MemoryError" in done.stderr:
            # Out of memory, or killed for its CPU time (SIGXCPU; SIGKILL past the hard limit).
            raise DocumentError(f"the PDF needs more than {pdf_memory_mb()} MB of memory or "
                                "too much work to read (a damaged or crafted file?); "
                                f"{PDF_MEMORY_ENV} sets the limit", limits=limits_key())
        log.warning("the PDF reader failed (exit %s): %s", done.returncode,
                    done.stderr.decode("utf-8", "replace")[-500:])
        raise DocumentError(f"the PDF reader failed (exit {done.returncode}; see the log)",
                            limits=limits_key())
    if "error" in found:
        raise DocumentError(f"the PDF cannot be read ({found['error']})")
    return DocumentText(**found)


def zip_bomb_problem(data: bytes) -> str | None:
    """Why a Word file is refused before unpacking it (None: it may be read): its parts
    would unpack past ``MAX_UNPACKED_MB``. zipfile reads a part only up to the size its
    directory declares, so the declared sizes bound the memory."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError) as exc:
        return f"it is not a Word file ({exc})"
    if total > MAX_UNPACKED_MB * 1024 * 1024:
        return (f"it would unpack to {total / 1048576:,.0f} MB, over the {MAX_UNPACKED_MB} MB "
                "a Word article may hold")
    return None


def read_docx(data: bytes) -> DocumentText:
    """The text and metadata of a Word (.docx) file. Raises ``DocumentError``."""
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from lxml.etree import LxmlError

    if (problem := zip_bomb_problem(data)):
        raise DocumentError(f"the Word file cannot be read: {problem}")
    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, LxmlError) as exc:
        raise DocumentError(f"the Word file cannot be read ({exc})") from None
    paragraphs = [p for p in document.paragraphs if p.text.strip()]
    title = None
    if paragraphs and paragraphs[0].style is not None and (
            paragraphs[0].style.name or "").lower().startswith(("title", "heading")):
        title = paragraphs[0].text.strip()
    props = document.core_properties
    return DocumentText(
        # Paragraphs apart by a blank line: the body's shape is then the plain-text one.
        body="\n\n".join(p.text.strip() for p in paragraphs),
        title=_field(props.title) or title,
        author=_field(props.author),
        file_date=_iso_date(props.created),
    )


def _field(value: object) -> str | None:
    text = " ".join(str(value).split()) if value is not None else ""
    return text or None


def _iso_date(value: object) -> str | None:
    return value.date().isoformat() if isinstance(value, dt.datetime) else None


# -- the PDF child -------------------------------------------------------------------------------

def _parse_pdf(data: bytes) -> dict[str, str | None]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    # A damaged PDF is reported once, by the parent; pypdf's own warnings would repeat it.
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError, OSError) as exc:
        return {"error": str(exc) or type(exc).__name__}
    try:
        created = info.creation_date if info else None
    except (ValueError, TypeError):
        created = None
    return {
        "body": "\n\n".join(p.strip() for p in pages if p.strip()),
        "title": _field(info.get("/Title")) if info else None,
        "author": _field(info.get("/Author")) if info else None,
        "file_date": _iso_date(created),
    }


def _limit_child(seconds: float) -> None:
    """Lower the child's address space and CPU time to the limits, never raising one the
    host set lower (ulimit, systemd), and leaving out what the system refuses: macOS does
    not enforce RLIMIT_AS, and refuses some values. The parent's timeout always applies."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return
    wanted = [(resource.RLIMIT_CPU, int(seconds) + 5)]
    if sys.platform != "darwin":
        wanted.append((resource.RLIMIT_AS, pdf_memory_mb() * 1024 * 1024))
    for kind, value in wanted:
        try:
            soft, hard = resource.getrlimit(kind)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            if soft == resource.RLIM_INFINITY or value < soft:
                resource.setrlimit(kind, (value, hard))
        except (ValueError, OSError):
            pass


def _child(argv: list[str]) -> int:
    if argv != ["pdf"]:
        print("usage: python -m index.documents pdf < file.pdf > text.json", file=sys.stderr)
        return 2
    _limit_child(pdf_seconds())
    data = sys.stdin.buffer.read()
    json.dump(_parse_pdf(data), sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(_child(sys.argv[1:]))
