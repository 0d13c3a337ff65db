"""Adding articles from chat: a link or an uploaded file becomes a corpus file, then the index
is rebuilt incrementally. Shared by the Slack and Discord adapters.

Everything lands in ``inbox/`` inside the corpus folder, or beside it when the corpus is a
read-only mount (index/load.py reads both). A file is written to a hidden temporary name and
renamed into place, so a crash or a refusal never leaves half an article for the indexer.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import yaml

from bot.egress import PUBLIC_ONLY, AddressPolicy, BlockedAddress
from index.documents import DocumentError, DocumentText, read_docx, read_html, read_pdf
from index.load import (
    INBOX,
    ArticleError,
    article_date,
    max_article_bytes,
    read_markdown,
    side_inbox,
)

if TYPE_CHECKING:
    from bot.answer import Answerer
    from bot.config import Settings

log = logging.getLogger(__name__)

MAX_BYTES = 20 * 1024 * 1024
TIMEOUT_S = 30.0
MIN_TEXT_CHARS = 200  # less than this is a menu, a login wall or an error page, not an article
FILE_KINDS = {".md": "md", ".markdown": "md", ".txt": "txt", ".html": "html", ".htm": "html",
              ".pdf": "pdf", ".docx": "docx"}
_MIME_KINDS = {"text/html": "html", "application/xhtml+xml": "html", "text/plain": "txt",
               "text/markdown": "md", "application/pdf": "pdf",
               "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx"}
USER_AGENT = "dossier-bot (adds an article a colleague shared)"


class IntakeError(Exception):
    """Why an article was not added, in words for the person who asked."""


@dataclass(frozen=True)
class Added:
    """An article stored and indexed."""

    path: Path
    title: str
    outlet: str | None
    published: str | None
    passages: int

    def describe(self) -> str:
        where = " · ".join(x for x in (self.outlet, self.published) if x)
        return (f"Added “{self.title}”" + (f" ({where})" if where else "")
                + f": {self.passages} passages, now answerable.")


def inbox_dir(corpus_dir: Path) -> Path:
    """Where articles added from chat go: DOSSIER_INBOX_DIR when set; else ``inbox/`` in the
    corpus folder when it is writable, else ``<corpus>-inbox`` beside it (read with the
    corpus: ``index.load.reading_roots``)."""
    beside, configured = side_inbox(corpus_dir)
    if configured:
        return beside
    inside = corpus_dir / INBOX
    if os.access(inside if inside.is_dir() else corpus_dir, os.W_OK):
        return inside
    return beside


# -- getting the bytes ------------------------------------------------------------------------


def fetch(url: str, *, policy: AddressPolicy = PUBLIC_ONLY,
          headers: dict[str, str] | None = None, max_bytes: int = MAX_BYTES,
          timeout: float = TIMEOUT_S,
          accept: Callable[[str, str], object] | None = None) -> tuple[bytes, str, str]:
    """GET ``url`` (following redirects): its body, content type and final URL.

    Every connection, redirects included, goes only where ``policy`` allows (by default
    public addresses: see bot/egress.py). Stops reading at ``max_bytes`` so an endless or
    huge response costs nothing more. ``accept`` sees the final URL and content type before
    the body is read, and refuses it by raising ``IntakeError``.
    """
    import httpx

    from bot.egress_http import GuardedTransport

    parts = urlsplit(url.strip("<> "))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise IntakeError(f"“{url[:200]}” is not a web address; give a link that starts with "
                          "http:// or https://.")
    deadline = time.monotonic() + timeout * 2  # the whole fetch; each read gets ``timeout``
    try:
        # identity first: a compressed body is inflated here, counted as it grows (httpx
        # would inflate each layer of a stacked "gzip, gzip" in full before we could count).
        with httpx.Client(transport=GuardedTransport(policy), follow_redirects=True,
                          max_redirects=5, timeout=timeout,
                          headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, identity",
                                   **(headers or {})}) as client, \
                client.stream("GET", parts.geturl()) as response:
            if response.status_code == 404:
                raise IntakeError(f"The page was not found (404): {url[:200]}")
            if response.status_code >= 400:
                raise IntakeError(f"The site answered {response.status_code} "
                                  f"{response.reason_phrase} for {url[:200]}; nothing added.")
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if accept is not None:
                accept(str(response.url), kind)
            declared = response.headers.get("content-length", "")
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if declared.isdigit() and int(declared) > max_bytes and encoding == "identity":
                raise IntakeError(too_large(int(declared), max_bytes))
            inflate = _inflater(encoding)
            chunks, size = [], 0
            for raw in response.iter_raw():
                if time.monotonic() > deadline:
                    raise IntakeError(f"The site took longer than {timeout * 2:.0f} s to send "
                                      "the page; nothing added.")
                chunk = inflate(raw, max_bytes + 1 - size) if inflate else raw
                size += len(chunk)
                if size > max_bytes:
                    raise IntakeError(too_large(size, max_bytes, at_least=True))
                chunks.append(chunk)
            return b"".join(chunks), kind, str(response.url)
    except BlockedAddress as exc:
        # The address goes to the log for the operator, not to chat: it maps the network.
        log.warning("intake: refused to fetch %s: %s", url[:200], exc)
        raise IntakeError(f"That link leads to {exc.host}, a {exc.kind} address; links into "
                          "private networks are not fetched, nothing added. (An intranet "
                          "deployment can allow them: DOSSIER_INTAKE_ALLOW_PRIVATE.)") from None
    except httpx.TimeoutException:
        raise IntakeError(f"The site took longer than {timeout:.0f} s to answer; nothing "
                          "added.") from None
    except httpx.TooManyRedirects:
        raise IntakeError("The link redirects too many times; nothing added.") from None
    except httpx.UnsupportedProtocol:
        raise IntakeError("The link redirects to something that is not a web address "
                          "(http:// or https://); nothing added.") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise IntakeError(f"The page could not be fetched ({type(exc).__name__}: {exc}); "
                          "nothing added.") from None


def _inflater(encoding: str) -> _Inflater | None:
    """What inflates a body sent with ``encoding``: None for identity; one layer of gzip or
    deflate; anything else (stacked layers, br, zstd) is refused: a few KB of stacked gzip
    inflate to gigabytes."""
    if encoding in ("identity", ""):
        return None
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise IntakeError(f"The site sent the page encoded as “{encoding[:40]}”, which is not "
                          "read; nothing added.")
    return _Inflater(deflate=encoding == "deflate")


class _Inflater:
    """One gzip or deflate layer, inflated chunk by chunk, never past the room asked for."""

    def __init__(self, *, deflate: bool) -> None:
        import zlib

        self._zlib = zlib
        # gzip's header for gzip; deflate comes zlib-wrapped or raw (servers send either).
        self._deflate = deflate
        self._z = zlib.decompressobj(15 if deflate else 47)

    def __call__(self, chunk: bytes, room: int) -> bytes:
        try:
            out = self._z.decompress(chunk, max(1, room))
        except self._zlib.error:
            if self._deflate:  # not zlib-wrapped: read it as raw deflate, once
                self._deflate = False
                self._z = self._zlib.decompressobj(-15)
                return self(chunk, room)
            raise IntakeError("The site sent a damaged compressed page; nothing added.") \
                from None
        # More left than the room: the caller stops at the limit; say so by overflowing.
        return out + b"\0" if self._z.unconsumed_tail else out


def too_large(size: int, limit: int, *, at_least: bool = False) -> str:
    mb = 1024 * 1024
    if at_least:  # stopped reading at the limit: the true size is unknown
        return f"That is too large to add: over the {limit / mb:.0f} MB limit."
    return f"That is too large to add: {size / mb:.1f} MB (the limit is {limit / mb:.0f} MB)."


MAX_FILES = 5  # files added from one chat message


def can_read(name: str | None, content_type: str | None) -> bool:
    """Whether a file of this name and type can be added (``kind_of`` does not refuse it)."""
    try:
        kind_of(name, content_type)
    except IntakeError:
        return False
    return True


def files_left_out(count: int) -> list[str]:
    """The line reporting the files of one message past ``MAX_FILES`` (none when none)."""
    extra = count - MAX_FILES
    return [f"{extra} more file(s) not added: at most {MAX_FILES} at a time."] if extra > 0 \
        else []


def kind_of(name: str | None, content_type: str | None) -> str:
    """"md" | "txt" | "html" | "pdf" | "docx" from a file name, else its content type."""
    suffix = Path(name or "").suffix.lower()
    if suffix in FILE_KINDS:
        return FILE_KINDS[suffix]
    kind = _MIME_KINDS.get((content_type or "").split(";")[0].strip().lower())
    if kind is None or (suffix and suffix not in (".php", ".aspx", ".asp", ".jsp")):
        shown = suffix or content_type or "unknown"
        raise IntakeError(f"Unsupported type ({shown}): add an article as a web page or a "
                          ".md, .txt, .html, .pdf or .docx file.")
    return kind


def kind_of_link(url: str, content_type: str) -> str:
    """The kind of what a link serves: by the file name its (final) URL ends in, else by its
    content type; a page that names none is taken as HTML."""
    path = urlsplit(url).path
    return kind_of(path if Path(path).suffix.lower() in FILE_KINDS else None,
                   content_type or "text/html")


# -- reading the text -------------------------------------------------------------------------


def extract(data: bytes, kind: str, *, url: str | None = None,
            name: str | None = None) -> DocumentText:
    """The article text and metadata in ``data`` of ``kind``, its date settled as the
    corpus loader settles it (``article_date``)."""
    if not data.strip():
        raise IntakeError("The file is empty; nothing added.")
    if kind == "html":
        found = _from_document(functools.partial(read_html, url=url), data)
    elif kind == "pdf":
        found = _from_document(read_pdf, data)
    elif kind == "docx":
        found = _from_document(read_docx, data)
    elif kind == "md":
        found = _from_markdown(_decode(data))
    else:
        found = DocumentText(body=_decode(data))
    if len(" ".join(found.body.split())) < MIN_TEXT_CHARS:
        raise IntakeError("No article text was found there (a menu, a login page or an "
                          "empty document?); nothing added.")
    title = found.title or (Path(name).stem.replace("-", " ").replace("_", " ") if name
                            else None) or found.body.strip().splitlines()[0][:120]
    # Plain str: pypdf and trafilatura hand back their own string types, which YAML refuses.
    return DocumentText(body=str(found.body), title=_text(title), outlet=_text(found.outlet),
                        author=_text(found.author), published=_text(article_date(found)),
                        url=_text(found.url or url))


def _text(value: object) -> str | None:
    return " ".join(str(value).split()) or None if value else None


def _from_markdown(text: str) -> DocumentText:
    # As the corpus loader reads it: front matter is metadata, not article text (else the
    # copy of a corpus file would pass the duplicate check and quote its YAML).
    try:
        return read_markdown(text)
    except ArticleError as exc:
        raise IntakeError(f"That Markdown file cannot be read: {exc}; nothing added.") \
            from None


def _from_document(read: Callable[[bytes], DocumentText], data: bytes) -> DocumentText:
    try:
        return read(data)
    except DocumentError as exc:
        reason = str(exc)
        raise IntakeError(f"{reason[:1].upper()}{reason[1:]}; nothing added.") from None


def _decode(data: bytes) -> str:
    if b"\x00" in data[:4096]:
        raise IntakeError("The file looks binary, not text; nothing added.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise IntakeError("The file is not UTF-8 text; save it as UTF-8 and add it again.") \
            from None


# -- storing ----------------------------------------------------------------------------------


def body_hash(text: str) -> str:
    """The content hash duplicates are found by: the words, whatever the file format."""
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()


def _slug(text: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:60].rstrip("-") or "article"


def write_atomically(folder: Path, name: str, data: bytes) -> Path:
    """Write ``folder/name`` whole or not at all: a hidden temp file (ignored by the loader)
    renamed into place."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".adding-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        target = folder / name
        os.replace(tmp, target)
        return target
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def as_markdown(found: DocumentText) -> bytes:
    meta = {k: v for k, v in (("title", found.title), ("outlet", found.outlet),
                              ("author", found.author), ("published", found.published),
                              ("url", found.url)) if v}
    head = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False, width=1000)
    return f"---\n{head}---\n\n{found.body.strip()}\n".encode()


# One add at a time in the process: Slack and Discord each have an Intake, and two adds of
# one article at once would both pass the duplicate check.
_ADDING = threading.Lock()


@contextmanager
def _inbox_lock(folder: Path) -> Iterator[None]:
    """One add at a time across processes sharing ``folder`` (two bots on one corpus): an
    advisory lock on the folder above it, which exists before the inbox does and is the same
    for every process; nothing is written. Without fcntl (Windows), or without that folder,
    it locks nothing."""
    try:
        import fcntl
        fd = os.open(folder.parent, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without locks (some network mounts)
            log.debug("intake: cannot lock %s; adds are serialised in this process only",
                      folder.parent)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class Intake:
    """Adds articles to the corpus and the index. One at a time: a second waits."""

    def __init__(self, answerer: Answerer, corpus_dir: Path, *, max_bytes: int = MAX_BYTES,
                 timeout: float = TIMEOUT_S, policy: AddressPolicy = PUBLIC_ONLY) -> None:
        self.answerer = answerer
        self.corpus_dir = Path(corpus_dir)
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.policy = policy

    @classmethod
    def from_settings(cls, answerer: Answerer, settings: Settings) -> Intake:
        """The chat adapters' intake: the corpus folder and the address policy configured."""
        return cls(answerer, settings.corpus_dir,
                   policy=AddressPolicy(allow_private=settings.intake_allow_private))

    def fetch(self, url: str, headers: dict[str, str] | None = None,
              accept: Callable[[str, str], object] | None = None) -> tuple[bytes, str, str]:
        """``fetch`` with this intake's size limit, timeout and address policy."""
        return fetch(url, policy=self.policy, headers=headers, max_bytes=self.max_bytes,
                     timeout=self.timeout, accept=accept)

    def add_url(self, url: str) -> Added:
        # An unsupported type (a video, a zip) is refused on its headers, before its body.
        data, content_type, final = self.fetch(url, accept=kind_of_link)
        return self.add(extract(data, kind_of_link(final, content_type), url=final, name=None))

    def add_file(self, data: bytes, name: str, content_type: str | None = None) -> Added:
        if len(data) > self.max_bytes:
            raise IntakeError(too_large(len(data), self.max_bytes))
        return self.add(extract(data, kind_of(name, content_type), name=name))

    def add(self, found: DocumentText) -> Added:
        digest = body_hash(found.body)
        stored_bytes = as_markdown(found)
        if len(stored_bytes) > max_article_bytes():  # the corpus loader would skip it
            raise IntakeError(too_large(len(stored_bytes), max_article_bytes()))
        if not self.corpus_dir.is_dir():
            raise IntakeError(f"The corpus folder {self.corpus_dir} does not exist; ask an "
                              "admin to check DOSSIER_CORPUS_DIR.")
        folder = inbox_dir(self.corpus_dir)
        ending = f"-{digest[:8]}.md"  # a stored article's file name carries its text's hash
        with _ADDING, _inbox_lock(folder):
            for source in self.answerer.sources():
                if body_hash(source.article.body) == digest:
                    raise IntakeError(f"Already in the dossier: “{source.article.label}” has the "
                                      "same text; nothing added.")
            # Another process sharing the inbox may have stored it before this one's index
            # has seen it.
            if folder.is_dir() and (twin := next(folder.glob(f"*{ending}"), None)):
                raise IntakeError(f"Already in the dossier: {twin.name} in the inbox has the "
                                  "same text; nothing added.")
            name = _slug(found.title or "article") + ending
            try:
                path = write_atomically(folder, name, stored_bytes)
            except OSError as exc:
                log.warning("intake: cannot store in %s: %s", folder, exc)
                raise IntakeError(f"Articles cannot be stored in {folder} "
                                  f"({exc.strerror or exc}); an admin can point "
                                  "DOSSIER_INBOX_DIR at a writable folder. Nothing added.") \
                    from None
            log.info("intake: stored %s; rebuilding the index", path)
            try:
                report = self.answerer.rebuild(self.corpus_dir)
            except Exception:
                path.unlink(missing_ok=True)  # not indexed: not half-added either
                self._forget(path)
                raise
        stored = next((s for s in self.answerer.sources() if s.article.id == path.stem), None)
        if stored is None:
            path.unlink(missing_ok=True)
            why = next((p.reason for p in getattr(report, "problems", ())
                        if Path(p.path).name == path.name), None)
            raise IntakeError("The article was stored but could not be indexed"
                              + (f" ({why})" if why else "") + "; nothing added.")
        return Added(path=path, title=stored.article.title or found.title or path.stem,
                     outlet=stored.article.outlet, published=stored.article.published,
                     passages=stored.passages)

    def _forget(self, path: Path) -> None:
        """After a failed add: the watcher may have indexed the file before this rebuild
        failed. The user is told nothing was added, so the article must not stay
        answerable; one more rebuild drops it (if that fails too, the next one will)."""
        if not any(s.article.id == path.stem for s in self.answerer.sources()):
            return
        try:
            self.answerer.rebuild(self.corpus_dir)
        except Exception:
            log.exception("intake: %s stays indexed until the next rebuild", path.name)
