"""SSRF guard: webhook URLs must not reach internal addresses unless an operator allows it.

Checked when an endpoint is created (``resolve``) and again each time a delivery opens a
connection (``addresses_to_connect``, called by the HTTP client's resolver): the socket
connects to an address that was just checked, never to a name resolved again later, so DNS
rebinding cannot slip past an earlier check. The URL keeps its host name, so TLS checks the
certificate against it as usual.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from billing_svc.domain.errors import shown

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# IPv6 prefixes that carry an IPv4 address a gateway may forward to: NAT64 (RFC 6052, RFC 8215)
# and 6to4 (RFC 3056). The embedded IPv4 address must be public too.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_6TO4 = ipaddress.ip_network("2002::/16")


class UnsafeURL(ValueError):
    """The URL is malformed, not https, or reaches an address that is not public."""


@dataclass(frozen=True)
class Target:
    """A checked URL: the address to connect to and the host name the URL named."""

    url: str
    host: str
    address: str
    port: int


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if any(ip in network for network in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _6TO4:
        return ip.sixtofour
    return None


def is_public(address: str) -> bool:
    """Whether ``address`` is a public unicast address (not loopback, RFC 1918, CGNAT,
    link-local, multicast, reserved, unspecified or IPv6 ULA, nor one of those embedded in an
    IPv6 address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            ip = embedded
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return False
    return ip.is_global and not (
        ip.is_multicast
        or ip.is_reserved
        or ip.is_link_local
        or ip.is_loopback
        or ip.is_private
        or ip.is_unspecified
    )


def check_url(url: str, *, allow_private: bool) -> tuple[str, str, int]:
    """Syntax checks; returns ``(scheme, host, port)``. Raises ``UnsafeURL``."""
    if len(url) > 2000:
        raise UnsafeURL("is longer than 2,000 characters")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not allow_private):
        raise UnsafeURL("must be an https:// URL")
    if not parts.hostname:
        raise UnsafeURL("has no host")
    if parts.username or parts.password:
        raise UnsafeURL("must not carry credentials; authenticate by the signature instead")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeURL("has an invalid port") from exc
    return parts.scheme, parts.hostname, port


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def is_literal(host: str) -> bool:
    """Whether ``host`` is an IP address rather than a name."""
    return _literal(host) is not None


def _checked(host: str, addresses: list[str], *, allow_private: bool) -> list[str]:
    if not addresses:
        raise UnsafeURL(f"host {shown(host)} does not resolve")
    if not allow_private:
        # Every address, not only the first: the socket layer may try any of them.
        blocked = [a for a in addresses if not is_public(a)]
        if blocked:
            raise UnsafeURL(
                f"host {shown(host)} resolves to a non-public address ({blocked[0]}); "
                "internal addresses are refused"
            )
    return list(dict.fromkeys(addresses))


def resolve(url: str, *, allow_private: bool) -> Target:
    """Resolve the URL's host and pick an address it may reach; raises ``UnsafeURL``."""
    _, host, port = check_url(url, allow_private=allow_private)
    literal = _literal(host)
    if literal is not None:  # nothing to resolve
        if not allow_private and not is_public(literal):
            raise UnsafeURL(f"{host} is not a public address; internal addresses are refused")
        return Target(url=url, host=host, address=literal, port=port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURL(f"host {shown(host)} does not resolve") from exc
    addresses = _checked(host, [str(info[4][0]) for info in infos], allow_private=allow_private)
    return Target(url=url, host=host, address=addresses[0], port=port)


async def addresses_to_connect(
    host: str, port: int, *, allow_private: bool, timeout: float
) -> list[str]:
    """The addresses a delivery may open a connection to for ``host``, resolved now (within
    ``timeout`` seconds) and checked; raises ``UnsafeURL``."""
    literal = _literal(host)
    if literal is not None:
        return _checked(host, [literal], allow_private=allow_private)
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURL(f"host {shown(host)} does not resolve") from exc
    except TimeoutError as exc:
        raise UnsafeURL(f"host {shown(host)} did not resolve within {timeout:g} s") from exc
    return _checked(host, [str(info[4][0]) for info in infos], allow_private=allow_private)
