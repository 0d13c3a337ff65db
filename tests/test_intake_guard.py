"""Links added from chat reach public addresses only (bot/egress.py): no fetching of
127.0.0.1, the cloud metadata service or the office network on a chat user's say-so.

Everything stays on loopback: refused addresses are refused before any connection, and a
"public" server is the fake on 127.0.0.1 under a name a test policy treats as public.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
from fakes.articles import ARTICLE_HTML, article_server, serving

from bot.answer import Answerer
from bot.config import Settings
from bot.egress import AddressPolicy, non_public, system_resolver
from bot.intake import Intake, IntakeError

PUBLIC_NAME = "news.example"  # never resolved by the system: only by the test resolver


@dataclass(frozen=True)
class PublicStandIn(AddressPolicy):
    """The default policy, except that PUBLIC_NAME resolves to 127.0.0.1 and counts as a
    public site: the fake server stands in for one on the internet."""

    def refusal(self, host: str, address: str) -> str | None:
        return None if host == PUBLIC_NAME else super().refusal(host, address)


def _stand_in_resolver(host: str, port: int) -> list[str]:
    return ["127.0.0.1"] if host == PUBLIC_NAME else system_resolver(host, port)


STAND_IN = PublicStandIn(resolver=_stand_in_resolver)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    return folder


def _refused(intake: Intake, url: str, kind: str) -> str:
    with pytest.raises(IntakeError, match=f"a {kind} address") as caught:
        intake.add_url(url)
    return str(caught.value)


@pytest.mark.parametrize(("host", "kind"), [
    ("127.0.0.1", "loopback"),
    ("localhost", "loopback"),  # a name: resolved, then refused
    ("[::1]", "loopback"),
    ("[::ffff:127.0.0.1]", "loopback"),  # IPv4-mapped IPv6
    ("0.0.0.0", "unspecified"),  # reaches this machine on Linux
    ("127.1", "loopback"),  # short form
])
def test_loopback_is_refused_by_default_before_any_request(answerer: Answerer, corpus: Path,
                                                           host: str, kind: str) -> None:
    requests: list[str] = []
    with article_server(requests) as base:
        port = base.rsplit(":", 1)[1]
        message = _refused(Intake(answerer, corpus), f"http://{host}:{port}/article.html", kind)
    assert requests == []  # nothing reached the server
    assert "DOSSIER_INTAKE_ALLOW_PRIVATE" in message and "nothing added" in message
    assert list(corpus.rglob("*")) == []


@pytest.mark.parametrize(("url", "kind"), [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),  # cloud metadata
    ("http://[fe80::1]/", "link-local"),
    ("http://10.0.0.1/", "private"),
    ("http://192.168.1.1:8080/admin", "private"),
    ("http://[fd00::1]/", "private"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "private"),  # reserved 240/4: Python files it under private
    ("http://100.64.0.1/", "non-public"),  # carrier-grade NAT
    ("https://[::ffff:a9fe:a9fe]/", "link-local"),  # 169.254.169.254, IPv4-mapped
])
def test_private_and_special_addresses_are_refused(answerer: Answerer, corpus: Path, url: str,
                                                   kind: str) -> None:
    # Literal addresses: refused before a connection is tried, nothing leaves this machine.
    _refused(Intake(answerer, corpus), url, kind)


def test_the_switch_allows_private_addresses(fresh_answerer: Answerer, corpus_copy: Path,
                                             tmp_path: Path) -> None:
    settings = Settings.from_env({"DOSSIER_INTAKE_ALLOW_PRIVATE": "true",
                                  "DOSSIER_CORPUS_DIR": str(corpus_copy)})
    assert Settings.from_env({}).intake_allow_private is False  # off unless set
    requests: list[str] = []
    with article_server(requests) as base:
        added = Intake.from_settings(fresh_answerer, settings).add_url(f"{base}/article.html")
    assert added.title == "Skerryvore keepers vote to unionise"
    assert requests == ["/article.html"]


def test_a_redirect_to_loopback_is_refused(answerer: Answerer, corpus: Path) -> None:
    requests: list[str] = []
    with article_server(requests) as base:
        port = base.rsplit(":", 1)[1]
        public = f"http://{PUBLIC_NAME}:{port}"
        # The stand-in site is fetched like any public one (a same-site redirect followed)...
        with pytest.raises(IntakeError, match="No article text"):
            Intake(answerer, corpus, policy=STAND_IN).add_url(f"{public}/login.html")
        assert requests == ["/login.html"]
        # ...but its redirects to this machine are not, whatever the address is called.
        for target in (f"http://127.0.0.1:{port}/article.html",
                       f"http://localhost:{port}/article.html",
                       f"http://[::ffff:127.0.0.1]:{port}/article.html"):
            requests.clear()
            hop = f"{public}/redirect?to={quote(target, safe='')}"
            _refused(Intake(answerer, corpus, policy=STAND_IN), hop, "loopback")
            assert requests == [f"/redirect?to={quote(target, safe='')}"]
    assert list(corpus.rglob("*")) == []


def test_the_connection_goes_to_the_address_that_was_checked(fresh_answerer: Answerer,
                                                             corpus_copy: Path) -> None:
    # news.example has no address in DNS: the page can only be fetched if the connection
    # uses the address the policy resolved and checked, not a second look-up of the name.
    asked: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return _stand_in_resolver(host, port)

    requests: list[str] = []
    with article_server(requests) as base:
        port = base.rsplit(":", 1)[1]
        intake = Intake(fresh_answerer, corpus_copy, policy=PublicStandIn(resolver=resolver))
        added = intake.add_url(f"http://{PUBLIC_NAME}:{port}/moved")  # a same-site redirect
    assert added.title == "Skerryvore keepers vote to unionise"
    assert requests == ["/moved", "/article.html"]
    # The fake speaks HTTP/1.0, so each request is a new connection, each resolved and checked.
    assert asked == [PUBLIC_NAME, PUBLIC_NAME]


@pytest.mark.parametrize("addresses", [
    ["10.0.0.1"],
    ["93.184.215.14", "10.0.0.1"],  # one private address among public ones is enough
    ["::ffff:10.0.0.1"],
    ["64:ff9b::a00:1"],  # NAT64 form of 10.0.0.1
])
def test_a_name_resolving_to_a_private_address_is_refused(answerer: Answerer, corpus: Path,
                                                          addresses: list[str]) -> None:
    asked: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return addresses

    intake = Intake(answerer, corpus, policy=AddressPolicy(resolver=resolver))
    message = _refused(intake, "https://intranet.example/report.html", "private")
    assert asked == [("intranet.example", 443)]
    assert "intranet.example" in message and "10.0.0.1" not in message  # no network map


def test_other_schemes_are_refused(answerer: Answerer, corpus: Path) -> None:
    for url in ("file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://example.org/a"):
        with pytest.raises(IntakeError, match="not a web address"):
            Intake(answerer, corpus).add_url(url)


def test_a_redirect_to_another_scheme_is_refused(answerer: Answerer, corpus: Path) -> None:
    with article_server() as base:
        port = base.rsplit(":", 1)[1]
        hop = f"http://{PUBLIC_NAME}:{port}/redirect?to={quote('file:///etc/passwd')}"
        with pytest.raises(IntakeError, match="not a web address"):
            Intake(answerer, corpus, policy=STAND_IN).add_url(hop)


@pytest.mark.parametrize(("address", "kind"), [
    ("8.8.8.8", None),
    ("2606:4700:4700::1111", None),
    ("::ffff:8.8.8.8", None),  # IPv4-mapped: judged by the IPv4 inside
    ("64:ff9b::808:808", None),  # NAT64 to a public address
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ("::", "unspecified"),
    ("ff02::1", "multicast"),
    ("fe80::1%eth0", "link-local"),
    ("not an address", "unreadable"),
])
def test_address_kinds(address: str, kind: str | None) -> None:
    assert non_public(address) == kind


@pytest.fixture
def tls_site(tmp_path: Path) -> Iterator[tuple[int, ssl.SSLContext]]:
    """An HTTPS server on 127.0.0.1 with a certificate for PUBLIC_NAME only, and a client
    context that trusts that certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={PUBLIC_NAME}", "-addext", f"subjectAltName=DNS:{PUBLIC_NAME}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(cert, key)
    server.socket = served.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], ssl.create_default_context(cafile=str(cert))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_https_is_verified_against_the_name_not_the_pinned_address(
        tls_site: tuple[int, ssl.SSLContext]) -> None:
    import httpx

    from bot.egress_http import GuardedTransport

    port, trusted = tls_site
    # Connected to the checked 127.0.0.1, yet TLS asks for and verifies news.example.
    with httpx.Client(transport=GuardedTransport(STAND_IN, verify=trusted)) as client:
        assert client.get(f"https://{PUBLIC_NAME}:{port}/").text == "ok"
    # The same server under its address: the certificate does not name it, so it fails.
    with httpx.Client(transport=GuardedTransport(AddressPolicy(allow_private=True),
                                                 verify=trusted)) as client, \
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        client.get(f"https://127.0.0.1:{port}/")


# -- through the environment's proxy -------------------------------------------------------


@contextmanager
def proxy_server(seen: list[str]) -> Iterator[str]:
    """An HTTP proxy on loopback that answers for every site itself: an absolute-form GET of
    an ``…/article.html`` gets the test article, a CONNECT (an https link) is refused with
    403. Each request line is appended to ``seen``."""

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(f"GET {self.path}")
            found = self.path.startswith("http://") and self.path.endswith("/article.html")
            body = ARTICLE_HTML if found else b"not found"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_CONNECT(self) -> None:
            seen.append(f"CONNECT {self.path}")
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Proxy) as base:
        yield base


def _public(host: str, port: int) -> list[str]:
    return ["93.184.215.14"]  # a public address nobody connects to: the proxy answers


def _add_through_proxy(answerer: Answerer, corpus: Path, monkeypatch: pytest.MonkeyPatch,
                       resolver, url: str):
    """Add ``url`` with HTTP_PROXY set to the loopback proxy: (what was added, what the
    proxy saw)."""
    seen: list[str] = []
    with proxy_server(seen) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        added = Intake(answerer, corpus, policy=AddressPolicy(resolver=resolver)).add_url(url)
    return added, seen


def test_a_link_goes_through_the_environments_proxy_after_the_destination_check(
        fresh_answerer: Answerer, corpus_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return _public(host, port)

    added, seen = _add_through_proxy(fresh_answerer, corpus_copy, monkeypatch, resolver,
                                     "http://news.example/article.html")
    assert added.title == "Skerryvore keepers vote to unionise"
    assert seen == ["GET http://news.example/article.html"]
    assert asked == ["news.example"], "the destination is checked before the proxy is asked"


@pytest.mark.parametrize(("url", "addresses", "kind"), [
    ("http://intranet.example/article.html", ["10.0.0.1"], "private"),
    ("http://127.0.0.1:8080/article.html", ["127.0.0.1"], "loopback"),
    ("http://169.254.169.254/latest/meta-data/", ["169.254.169.254"], "link-local"),
])
def test_a_refused_destination_never_reaches_the_proxy(
        answerer: Answerer, corpus: Path, monkeypatch: pytest.MonkeyPatch, url: str,
        addresses: list[str], kind: str) -> None:
    seen: list[str] = []
    with proxy_server(seen) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        policy = AddressPolicy(resolver=lambda host, port: addresses)
        _refused(Intake(answerer, corpus, policy=policy), url, kind)
    assert seen == []
    assert list(corpus.rglob("*")) == []


def test_a_name_only_the_proxy_can_resolve_is_left_to_it(
        fresh_answerer: Answerer, corpus_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    added, seen = _add_through_proxy(fresh_answerer, corpus_copy, monkeypatch, resolver,
                                     "http://outside.example/article.html")
    assert added.title == "Skerryvore keepers vote to unionise"
    assert seen == ["GET http://outside.example/article.html"]


def test_https_links_tunnel_through_the_proxy(answerer: Answerer, corpus: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    with proxy_server(seen) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        intake = Intake(answerer, corpus, policy=AddressPolicy(resolver=_public))
        with pytest.raises(IntakeError, match="could not be fetched"):
            intake.add_url("https://news.example/report.html")
    assert seen == ["CONNECT news.example:443"]


def test_no_proxy_hosts_and_unsupported_proxies_connect_directly_and_stay_guarded(
        fresh_answerer: Answerer, corpus_copy: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []
    requests: list[str] = []
    with proxy_server(seen) as proxy, article_server(requests) as base:
        port = base.rsplit(":", 1)[1]
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("NO_PROXY", f"{PUBLIC_NAME},localhost")
        added = Intake(fresh_answerer, corpus_copy, policy=STAND_IN).add_url(
            f"http://{PUBLIC_NAME}:{port}/article.html")
        assert added.title == "Skerryvore keepers vote to unionise"
        assert requests == ["/article.html"] and seen == []
        # Direct is still pinned and checked: loopback under its own name is refused.
        _refused(Intake(fresh_answerer, corpus_copy, policy=STAND_IN),
                 f"http://localhost:{port}/article.html", "loopback")
        assert requests == ["/article.html"] and seen == []
        monkeypatch.delenv("NO_PROXY")
        monkeypatch.setenv("HTTP_PROXY", "socks5://127.0.0.1:1080")
        requests.clear()
        with caplog.at_level("WARNING", logger="bot.egress_http"), \
                pytest.raises(IntakeError, match="Already in the dossier"):  # fetched, direct
            Intake(fresh_answerer, corpus_copy, policy=STAND_IN).add_url(
                f"http://{PUBLIC_NAME}:{port}/article.html")
        assert requests == ["/article.html"] and seen == []
    assert any("only http:// and https:// proxies" in r.getMessage() for r in caplog.records)
