"""The SSRF guard (WEBHOOKS.md: SSRF): which addresses a webhook may reach, which URLs are
refused, and the check against what the host resolves to at the time of the check."""

from __future__ import annotations

import asyncio
import socket

import pytest

from billing_svc.net import url_guard
from billing_svc.net.url_guard import UnsafeURL, addresses_to_connect, check_url, is_public


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),  # loopback
        ("10.0.0.1", False),  # RFC 1918
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # CGNAT
        ("169.254.169.254", False),  # link-local: cloud metadata
        ("224.0.0.1", False),  # multicast
        ("0.0.0.0", False),  # unspecified
        ("240.0.0.1", False),  # reserved
        ("255.255.255.255", False),
        ("192.0.2.10", False),  # documentation
        ("::1", False),
        ("fd00::1", False),  # IPv6 ULA
        ("fe80::1", False),  # IPv6 link-local
        ("fe80::1%eth0", False),  # with a zone
        ("ff02::1", False),  # IPv6 multicast
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("64:ff9b::5db8:d822", True),  # NAT64 of 93.184.216.34
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
    ],
)
def test_only_public_addresses_are_reachable(address: str, public: bool) -> None:
    assert is_public(address) is public


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/x",  # https only
        "ftp://example.com/x",
        "https://",
        "https:///path",
        "https://a:b@example.com/",  # credentials
        "https://example.com:99999/",
        "https://example.com/" + "x" * 2000,
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url, allow_private=False)


def test_http_only_when_private_networks_are_allowed() -> None:
    assert check_url("http://127.0.0.1:8080/x", allow_private=True) == ("http", "127.0.0.1", 8080)
    assert check_url("https://example.com/x", allow_private=False) == ("https", "example.com", 443)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """A fake resolver for ``*.test`` names: ``dns[name]`` lists its addresses."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(host, str) and host.endswith(".test"):
            if host not in answers:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port),
                )
                for a in answers[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def test_every_resolved_address_must_be_public(dns: dict[str, list[str]]) -> None:
    dns["hooks.test"] = ["93.184.216.34"]
    assert url_guard.resolve("https://hooks.test/x", allow_private=False).address == "93.184.216.34"
    dns["hooks.test"] = ["93.184.216.34", "10.0.0.7"]  # one internal address is enough
    with pytest.raises(UnsafeURL, match=r"10\.0\.0\.7"):
        url_guard.resolve("https://hooks.test/x", allow_private=False)
    assert url_guard.resolve("https://hooks.test/x", allow_private=True).address == "93.184.216.34"


def test_unknown_hosts_and_internal_literals_are_refused(dns: dict[str, list[str]]) -> None:
    with pytest.raises(UnsafeURL, match="does not resolve"):
        url_guard.resolve("https://nowhere.test/x", allow_private=False)
    for url in ("https://127.0.0.1/x", "https://[::1]/x", "https://[::ffff:169.254.169.254]/"):
        with pytest.raises(UnsafeURL, match="not a public address"):
            url_guard.resolve(url, allow_private=False)


def test_the_check_at_connect_time_sees_what_the_name_resolves_to_now(
    dns: dict[str, list[str]],
) -> None:
    """DNS rebinding: public when the endpoint was created, internal when delivering."""
    dns["rebind.test"] = ["93.184.216.34"]
    url_guard.resolve("https://rebind.test/hook", allow_private=False)
    dns["rebind.test"] = ["127.0.0.1"]

    async def connect_to() -> list[str]:
        return await addresses_to_connect("rebind.test", 443, allow_private=False, timeout=5)

    with pytest.raises(UnsafeURL, match=r"127\.0\.0\.1"):
        asyncio.run(connect_to())
    dns["rebind.test"] = ["93.184.216.34", "93.184.216.34"]
    assert asyncio.run(connect_to()) == ["93.184.216.34"]
