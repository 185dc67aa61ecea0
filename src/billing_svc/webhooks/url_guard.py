"""SSRF guard: webhook URLs must not reach internal addresses unless an operator allows it.

Checked when an endpoint is created and again at every delivery, on the address the request will
actually connect to (the dispatcher connects to the checked IP, with the hostname kept for TLS
SNI and certificate checks), so DNS rebinding cannot slip past an earlier check.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class UnsafeURL(ValueError):
    """The URL is malformed, not https, or reaches an address that is not public."""


@dataclass(frozen=True)
class Target:
    """A checked URL: the address to connect to and the host name the URL named."""

    url: str
    host: str
    address: str
    port: int


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local
                                 or ip.is_loopback or ip.is_private or ip.is_unspecified)


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


def resolve(url: str, *, allow_private: bool) -> Target:
    """Resolve the URL's host and pick an address it may reach; raises ``UnsafeURL``."""
    _, host, port = check_url(url, allow_private=allow_private)
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:  # nothing to resolve
        if not allow_private and not is_public(host):
            raise UnsafeURL(f"{host} is not a public address; internal addresses are refused")
        return Target(url=url, host=host, address=host, port=port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeURL(f"host {host!r} does not resolve") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not allow_private:
        blocked = [a for a in addresses if not is_public(a)]
        if blocked:
            raise UnsafeURL(f"host {host!r} resolves to a non-public address ({blocked[0]}); "
                            "internal addresses are refused")
    return Target(url=url, host=host, address=addresses[0], port=port)
