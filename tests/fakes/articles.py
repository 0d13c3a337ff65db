"""Articles to add from chat in tests: a news page, a PDF written by hand, and a web server on
127.0.0.1 that serves them (and a 404, a page with no article, an endless download)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

KEEPERS = ("The lighthouse keepers of Skerryvore voted on Tuesday to form a union, the first "
           "in the history of the Northern Lighthouse Board. “We keep the lamps lit through "
           "every storm, and we want a say in our rota,” said Morag Tulloch, the head keeper, "
           "after the ballot in Tobermory. The board said it would meet the keepers' "
           "representatives next month to discuss pay, leave and the supply boat's schedule.")
KEEPERS_QUESTION = "Why did the Skerryvore lighthouse keepers form a union?"

ARTICLE_HTML = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Skerryvore keepers vote to unionise | The Island Courier</title>
<meta property="og:title" content="Skerryvore keepers vote to unionise">
<meta property="og:site_name" content="The Island Courier">
<meta name="author" content="Iona MacLeod">
<meta property="article:published_time" content="2024-03-05T09:00:00Z">
</head><body>
<nav><a href="/">Home</a> <a href="/news">News</a> <a href="/sport">Sport</a></nav>
<article><h1>Skerryvore keepers vote to unionise</h1>
<p>{KEEPERS}</p>
<p>Keepers on three other rocks are expected to hold their own ballots before the summer,
according to people familiar with the plans, and the union hopes to be recognised by the
board before the autumn gales begin.</p>
</article>
<footer>© The Island Courier</footer>
</body></html>""".encode()

NOT_AN_ARTICLE = b"""<!doctype html><html><head><title>Log in</title></head><body>
<form><input name="user"><input name="password" type="password"><button>Log in</button>
</form></body></html>"""

FERRY = ("The Tiree ferry timetable changes from Monday: the morning crossing to Oban leaves "
         "at half past seven instead of eight, because the harbour master wants the pier "
         "clear before the fishing fleet lands its catch. Islanders said the earlier sailing "
         "would make hospital appointments on the mainland easier to reach.")
FERRY_QUESTION = "Why does the Tiree ferry to Oban leave earlier?"


def tiny_pdf(text: str, title: str = "Tiree ferry timetable changes") -> bytes:
    """A one-page PDF whose text pypdf can extract: lines of Helvetica, offsets computed."""
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) > 80:
            lines.append(line)
            line = ""
        line = f"{line} {w}".strip()
    lines.append(line)
    body = "BT /F1 11 Tf 14 TL 50 780 Td " + " ".join(
        "(" + ln.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") '"
        for ln in lines) + " ET"
    return _one_page_pdf(body.encode("latin-1"), title)


def heavy_pdf(*, operations: int = 0, padding_mb: int = 0) -> bytes:
    """A small PDF that is costly to read: its one page's content stream, deflated, holds
    the FERRY article, then ``operations`` text-showing operators that show nothing (CPU:
    about 2 s per 100,000 for pypdf) and ``padding_mb`` MB of blanks (memory)."""
    import zlib

    body = (f"BT /F1 11 Tf 50 780 Td ({FERRY}) Tj\n".encode("latin-1")
            + b"() Tj\n" * operations + b" " * (padding_mb * 1024 * 1024) + b" ET")
    return _one_page_pdf(zlib.compress(body, 9), "Heavy", deflated=True)


def _one_page_pdf(content: bytes, title: str, *, deflated: bool = False) -> bytes:
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 "
        b"4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Length {len(content)}{' /Filter /FlateDecode' if deflated else ''} >>\nstream\n"
        .encode() + content + b"\nendstream",
        f"<< /Title ({title}) >>".encode("latin-1"),
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for n, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\nstartxref\n"
            f"{xref}\n%%EOF\n").encode()
    return out


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        requests = getattr(self.server, "requests", None)
        if requests is not None:
            requests.append(self.path)
        if self.path == "/article.html":
            self._send(ARTICLE_HTML, "text/html; charset=utf-8")
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/article.html")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path.startswith("/redirect?to="):  # to anywhere, as an attacker's page would
            self.send_response(302)
            self.send_header("Location", unquote(self.path.split("=", 1)[1]))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/login.html":
            self._send(NOT_AN_ARTICLE, "text/html")
        elif self.path == "/photo.png":
            self._send(b"\x89PNG\r\n\x1a\n" + bytes(500), "image/png")
        elif self.path == "/huge.html":
            # No Content-Length: the client must stop reading by itself at its limit.
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            chunk = b"<p>" + b"x" * (1 << 20) + b"</p>"
            try:
                for _ in range(25):
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif self.path == "/watch":
            # A live video: endless, so only a client that looks at the type first gets away.
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.end_headers()
            try:
                while True:
                    self.wfile.write(bytes(1 << 16))
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            self._send(b"not found", "text/plain", status=404)

    def _send(self, body: bytes, content_type: str, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], **attributes: object) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` served by ``handler`` for the length of the block (the
    ``attributes`` are set on the server, where handlers find them as ``self.server.X``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    for name, value in attributes.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def article_server(requests: list[str] | None = None) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` serving the pages above, for the length of the block; the
    path of every request it receives is appended to ``requests``."""
    with serving(_Pages, requests=requests) as base:
        yield base
