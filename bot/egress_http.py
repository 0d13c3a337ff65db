"""The httpx side of bot/egress.py: a transport whose every connection, redirects included,
goes only to an address the policy allowed, and to exactly that address.

Its own module so that httpx and httpcore are imported when a link is fetched, not when the
adapters start.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

import httpcore
import httpx

from bot.egress import AddressPolicy, Unresolvable


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


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over a ``GuardedBackend``: direct connections only, no proxy."""

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
