"""The HTTP side of webhook deliveries: one aiohttp session whose connections go only where the
URL guard allows, checked at connect time.

- **Connect only to checked addresses.** aiohttp asks its resolver for the addresses of every
  new connection; ours resolves the host, checks every address (``url_guard``) and hands back
  only those, with the host name kept for SNI and the certificate check. There is no DNS cache,
  so a name rebound to an internal address is refused at the next connection. IP literals never
  reach a resolver, so they are checked before each request instead. A keep-alive connection is
  reused only for its own host name, port and scheme (aiohttp's pool key).
- **Nothing implicit.** No redirects followed, no cookies kept between receivers, no proxy or
  netrc from the environment (the guard checks the address the socket connects to, which a
  proxy would hide), no response decompression (the logged answer is its first raw bytes).

Why aiohttp: on this machine it sends a small POST over keep-alive for a fraction of the CPU of
httpx + httpcore (BENCHMARKS.md), and the dispatcher is CPU-bound in its HTTP client.
"""

from __future__ import annotations

import functools
import socket
import ssl

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from billing_svc.net import url_guard

# A connection that could not be made or was dropped before an answer (a receiver restarting,
# a keep-alive connection it had closed): worth another try within the attempt.
BLIPS: tuple[type[Exception], ...] = (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError)


class GuardedResolver(AbstractResolver):
    """Resolves a host for aiohttp, keeping only addresses the URL guard accepts (raises
    ``UnsafeURL`` when any is refused)."""

    def __init__(self, *, allow_private: bool, timeout: float) -> None:
        self.allow_private = allow_private
        self.timeout = timeout

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await url_guard.addresses_to_connect(
            host, port, allow_private=self.allow_private, timeout=self.timeout
        )
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None


@functools.lru_cache(maxsize=4096)
def _url(url: str) -> URL:
    """Endpoint URLs parsed once, not at every attempt (``yarl.URL`` is immutable)."""
    return URL(url)


class DeliveryClient:
    """POSTs webhook deliveries. Create and use it on one event loop (the dispatcher's)."""

    def __init__(
        self,
        *,
        allow_private: bool,
        timeout: float,
        max_connections: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.max_connections = max_connections
        self.ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made on the loop that uses it
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(allow_private=self.allow_private, timeout=self.timeout),
                use_dns_cache=False,
                limit=self.max_connections,
                limit_per_host=0,
                ssl=self.ssl_context if self.ssl_context is not None else True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._session

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], limit: int
    ) -> tuple[int, str, str | None]:
        """POST ``body``; the status, the answer's first ``limit`` bytes (never more: a receiver
        could send gigabytes), its Retry-After. Raises ``UnsafeURL`` for a refused address."""
        target = _url(url)
        if url_guard.is_literal(target.raw_host or ""):
            # aiohttp connects to an IP literal without asking the resolver: check it here.
            await url_guard.addresses_to_connect(
                target.raw_host or "",
                target.port or 0,
                allow_private=self.allow_private,
                timeout=self.timeout,
            )
        async with self._client().post(
            target, data=body, headers=headers, allow_redirects=False
        ) as response:
            received = bytearray()
            while len(received) < limit:
                chunk = await response.content.read(limit - len(received))
                if not chunk:
                    break
                received += chunk
            return (
                response.status,
                received.decode("utf-8", "replace"),
                response.headers.get("retry-after"),
            )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
