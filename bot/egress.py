"""Where the bot may connect when a chat user hands it a link: public addresses only.

``/dossier add http://169.254.169.254/…`` would otherwise make the bot fetch the cloud's
metadata service (credentials), an admin page on 127.0.0.1 or a host on the office network,
and post what it found back into chat: server-side request forgery.

The check sits where the connection is made, in an httpcore network backend
(bot/egress_http.py, imported with httpx only when a link is fetched): every
connection, the first and each redirect hop to a new host, resolves the name once, refuses it
when any of its addresses is not public, and connects to the very address it checked. So a
name cannot resolve to a public address for the check and to 127.0.0.1 for the connection
(DNS rebinding), and a redirect cannot lead past the check.

Where HTTP_PROXY / HTTPS_PROXY name a proxy (and NO_PROXY does not exempt the host), the
destination gets the same check and the request then goes through the proxy, which resolves
the name again itself: pinning cannot reach past a proxy, so such a deployment should have
its proxy refuse internal destinations too (bot/egress_http.py). The operator switch
``DOSSIER_INTAKE_ALLOW_PRIVATE`` lets intranet deployments reach private addresses on purpose.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# (host, port) -> the IP addresses a connection to it may use, as text.
Resolver = Callable[[str, int], Sequence[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# NAT64's well-known prefix carries an IPv4 address in its last 32 bits (RFC 6052).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def environment_proxy(url: str) -> str | None:
    """The proxy HTTPS_PROXY / HTTP_PROXY name for ``url``'s scheme (urllib's rules), unless
    NO_PROXY exempts its host; None to connect directly. The one decision for every
    outgoing client that does not make it itself (links from chat, discord.py)."""
    parts = urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme) or None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host``, in its order, once each."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _judged(ip: IPAddress) -> list[IPAddress]:
    """The addresses whose kind decides for ``ip``: an IPv6 address that stands for an IPv4
    one is judged by it (``::ffff:127.0.0.1`` is 127.0.0.1 to the kernel, NAT64's
    ``64:ff9b::a00:1`` is 10.0.0.1 behind the gateway); 6to4 and Teredo by both."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return [ip.ipv4_mapped]
        if ip in _NAT64:
            return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
        if ip.sixtofour is not None:
            return [ip.sixtofour, ip]
        if ip.teredo is not None:
            return [*ip.teredo, ip]
    return [ip]


def non_public(address: str) -> str | None:
    """What kind of non-public address ``address`` is ("loopback", "private", …), or None
    when it is public."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # fe80::1%eth0: drop the scope
    except ValueError:
        return "unreadable"
    for candidate in _judged(ip):
        for kind in ("unspecified", "loopback", "link_local", "multicast", "private",
                     "reserved"):
            if getattr(candidate, f"is_{kind}"):
                return kind.replace("_", "-")
        if not candidate.is_global:  # shared address space (100.64.0.0/10) and the like
            return "non-public"
    return None


class Unresolvable(OSError):
    """The name has no address (or the resolver failed)."""


class BlockedAddress(Exception):
    """A link leads to an address the bot will not connect to."""

    def __init__(self, host: str, address: str, kind: str) -> None:
        super().__init__(f"{host} resolves to {address}, a {kind} address")
        self.host = host
        self.address = address
        self.kind = kind


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses fetches for chat users may connect to; public ones unless
    ``allow_private`` (the operator's switch for intranet deployments)."""

    allow_private: bool = False
    # Injected by tests (a name that resolves to 10.0.0.1 without a DNS server).
    resolver: Resolver = field(default=system_resolver, repr=False)

    def refusal(self, host: str, address: str) -> str | None:
        """Why connecting to ``address`` for ``host`` is refused (the kind of address), or
        None when it is allowed."""
        return None if self.allow_private else non_public(address)

    def addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host``; raises BlockedAddress when any address
        it resolves to is refused, so a name with one public and one private address cannot
        be steered to the private one."""
        try:
            found = list(self.resolver(host, port))
        except (OSError, UnicodeError) as exc:
            raise Unresolvable(f"cannot resolve {host}: {exc}") from None
        if not found:
            raise Unresolvable(f"{host} has no address")
        for address in found:
            kind = self.refusal(host, address)
            if kind is not None:
                raise BlockedAddress(host, address, kind)
        return found


PUBLIC_ONLY = AddressPolicy()
