"""Pages and files added from chat cannot cost the bot more than their limits: compressed
bodies are inflated as they are counted, a page that drips is cut off, a Word file that
would unpack to gigabytes is refused unopened, a PDF that would keep the reader busy is
given up. Loopback only."""

from __future__ import annotations

import gzip
import io
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from fakes.articles import ARTICLE_HTML, heavy_pdf, serving

from bot.egress import AddressPolicy
from bot.intake import IntakeError, extract, fetch, inbox_dir
from index.documents import PDF_SECONDS_ENV

LOOPBACK_OK = AddressPolicy(allow_private=True)


@contextmanager
def site(routes: dict[str, tuple[dict[str, str], bytes, float]]) -> Iterator[str]:
    """path -> (headers, body, seconds between bytes; 0 sends the body at once)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers, body, drip = routes[self.path]
            self.send_response(200)
            for k, v in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(k, v)
            self.end_headers()
            try:
                if not drip:
                    self.wfile.write(body)
                for i in range(len(body) if drip else 0):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(drip)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as base:
        yield base


HTML = {"Content-Type": "text/html; charset=utf-8"}


def test_a_gzipped_page_is_read_and_a_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(bytes(64 * 1024 * 1024))  # 64 MB of zeros in ~64 KB
    with site({"/page": ({**HTML, "Content-Encoding": "gzip"}, gzip.compress(ARTICLE_HTML), 0),
               "/bomb": ({**HTML, "Content-Encoding": "gzip"}, bomb, 0)}) as base:
        data, kind, _ = fetch(f"{base}/page", policy=LOOPBACK_OK)
        assert data == ARTICLE_HTML and kind == "text/html"
        started = time.perf_counter()
        with pytest.raises(IntakeError, match="too large"):
            fetch(f"{base}/bomb", policy=LOOPBACK_OK, max_bytes=1 << 20)
        assert time.perf_counter() - started < 5  # stopped at 1 MB, not after 64


def test_stacked_or_unknown_encodings_are_refused_unread() -> None:
    twice = gzip.compress(gzip.compress(bytes(16 * 1024 * 1024)))  # ~1000x twice over
    with site({"/twice": ({**HTML, "Content-Encoding": "gzip, gzip"}, twice, 0),
               "/br": ({**HTML, "Content-Encoding": "br"}, b"\x0b\x02\x80hello\x03", 0)}) as base:
        for path in ("/twice", "/br"):
            with pytest.raises(IntakeError, match="encoded as"):
                fetch(f"{base}{path}", policy=LOOPBACK_OK)


def test_a_page_that_drips_is_cut_off_at_the_deadline() -> None:
    with site({"/drip": (HTML, ARTICLE_HTML, 0.2)}) as base:
        started = time.perf_counter()
        with pytest.raises(IntakeError, match="took longer"):
            fetch(f"{base}/drip", policy=LOOPBACK_OK, timeout=0.5)  # each byte within 0.5 s
        assert time.perf_counter() - started < 5


def test_a_host_httpx_cannot_read_is_a_clear_refusal() -> None:
    with pytest.raises(IntakeError, match="could not be fetched"):
        fetch("http://ｌｏｃａｌｈｏｓｔ/", policy=LOOPBACK_OK)


def test_a_word_file_that_would_unpack_to_gigabytes_is_refused_unopened() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b" " * (80 * 1024 * 1024))
    assert len(buf.getvalue()) < 1024 * 1024
    with pytest.raises(IntakeError, match="would unpack to 80 MB"):
        extract(buf.getvalue(), "docx", name="report.docx")


def test_a_pdf_that_would_keep_the_reader_busy_for_long_is_given_up(monkeypatch) -> None:
    monkeypatch.setenv(PDF_SECONDS_ENV, "1")
    with pytest.raises(IntakeError, match=r"^The PDF took over 1 s to read.*nothing added"):
        extract(heavy_pdf(operations=1_000_000), "pdf", name="report.pdf")


def test_an_unwritable_inbox_inside_the_corpus_falls_back_beside_it(tmp_path: Path,
                                                                   monkeypatch) -> None:
    import bot.intake

    corpus = tmp_path / "corpus"
    (corpus / "inbox").mkdir(parents=True)
    assert inbox_dir(corpus) == corpus / "inbox"
    writable = bot.intake.os.access
    monkeypatch.setattr(bot.intake.os, "access",
                        lambda path, mode: False if Path(path).is_relative_to(corpus)
                        else writable(path, mode))
    assert inbox_dir(corpus) == tmp_path / "corpus-inbox"
    # Configured, it is used whatever the corpus allows (the image's /data/inbox).
    monkeypatch.setenv("DOSSIER_INBOX_DIR", str(tmp_path / "chat-added"))
    assert inbox_dir(corpus) == tmp_path / "chat-added"
