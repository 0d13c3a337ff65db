"""The httpx side of bot/egress.py: a transport whose every connection, redirects included,
goes only to an address the policy allowed, and to exactly that address; or, where the
environment names a proxy for the link's scheme, through that proxy once the destination
has passed the same check.

Its own module so that httpx and httpcore are imported when a link is fetched, not when the
adapters start.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpcore
import httpx

from bot.egress import AddressPolicy, Unresolvable, environment_proxy

log = logging.getLogger(__name__)


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to addresses the policy allows, and to
    exactly the address that was checked."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                    ) -> httpcore.NetworkStream:
        try:
            addresses = self.policy.addresses(host, port)  # raises BlockedAddress
        except Unresolvable as exc:
            raise httpcore.ConnectError(str(exc)) from None  # httpx: "could not be fetched"
        failure: Exception | None = None
        for address in addresses:
            try:
                # TLS still verifies the certificate against the name (httpcore passes the
                # origin's host as server_hostname), only the socket goes to the address.
                return super().connect_tcp(address, port, timeout, local_address,
                                           socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # like socket.create_connection: try the next address
        assert failure is not None
        raise failure


class PinnedTransport(httpx.HTTPTransport):
    """httpx's transport over a ``GuardedBackend``: direct connections only."""

    def __init__(self, policy: AddressPolicy, *, verify: ssl.SSLContext | bool = True) -> None:
        # verify: the default trust store; a test hands in a context trusting its own CA.
        super().__init__()
        # httpx has no public way to hand its connection pool a network backend, so the pool
        # it made is replaced by one with ours. Should httpx rename the attribute, refuse to
        # run rather than fetch unguarded.
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):
            raise RuntimeError("httpx.HTTPTransport changed: cannot install the address guard")
        self._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(verify),
                                             network_backend=GuardedBackend(policy))


class GuardedTransport(httpx.BaseTransport):
    """Each request (each redirect hop) goes direct, pinned to checked addresses
    (``PinnedTransport``), or through the proxy that HTTP_PROXY / HTTPS_PROXY name for its
    scheme unless NO_PROXY covers its host, as other HTTP clients do.

    Through a proxy the destination gets the same check first, but the proxy resolves the
    name again and connects itself: the pinning that stops DNS rebinding cannot reach past
    it, so a deployment that sets a proxy should have the proxy refuse internal
    destinations too. A name this machine cannot resolve is left to the proxy (networks that
    only reach out through a proxy often resolve outside names there alone). The proxy's own
    address is the operator's choice and is not checked.
    """

    def __init__(self, policy: AddressPolicy, *, verify: ssl.SSLContext | bool = True) -> None:
        self.policy = policy
        self.verify = verify
        self.direct = PinnedTransport(policy, verify=verify)
        self.proxied: dict[str, httpx.HTTPTransport] = {}  # proxy URL -> its transport
        self._ignored: set[str] = set()  # proxies of a kind httpx cannot use, warned once

    def _through(self, url: str) -> httpx.HTTPTransport | None:
        proxy = environment_proxy(url)
        if proxy is None:
            return None
        if not proxy.startswith(("http://", "https://")):
            if proxy not in self._ignored:
                self._ignored.add(proxy)
                log.warning("intake: ignoring the %s proxy %s (only http:// and https:// "
                            "proxies are supported); connecting directly",
                            urlsplit(url).scheme, proxy.split("@")[-1])
            return None
        if proxy not in self.proxied:
            self.proxied[proxy] = httpx.HTTPTransport(proxy=proxy, verify=self.verify)
        return self.proxied[proxy]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        proxy = self._through(str(url))
        if proxy is None:
            return self.direct.handle_request(request)
        # BlockedAddress for a refused destination; a name this machine cannot resolve is
        # the proxy's to resolve.
        with contextlib.suppress(Unresolvable):
            self.policy.addresses(url.host, url.port or (443 if url.scheme == "https" else 80))
        return proxy.handle_request(request)

    def close(self) -> None:
        self.direct.close()
        for proxy in self.proxied.values():
            proxy.close()
