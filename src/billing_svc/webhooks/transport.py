"""The HTTP transport of webhook deliveries (an ``httpx`` transport over ``httpcore``).

Three things the stock transport does not do:

- **Connect only where the URL guard allows, checked at connect time.** The network backend
  resolves the host itself, checks every address, and opens the socket to a checked address.
  A keep-alive connection is reused only for its own origin (scheme, host name, port), so a
  request never rides on a connection made, and certificate-checked, for another host name.
- **Stay cheap with many endpoints.** httpcore's pool scans all of its connections, several
  times per request; one small pool per origin keeps that scan to the handful of connections
  of one endpoint instead of every connection in the process.
- **Use asyncio streams directly.** The default backend wraps every socket operation in anyio
  cancel scopes and attribute lookups: a sixth of a delivery's CPU, for nothing a single
  asyncio event loop needs.

Proxies from the environment are deliberately not used: the guard checks the address the
socket connects to, which a proxy would hide.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import ssl
import sys
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

import httpcore
import httpx

from billing_svc.webhooks import url_guard

# httpcore asks `import sniffio` which event loop runs, several times per request. Without
# sniffio installed (anyio no longer needs it) each ask is a failed import that searches
# sys.path again: about a fifth of a delivery's CPU. A None entry makes Python fail that import
# at once, with the same result (httpcore then assumes asyncio). Installing sniffio makes this
# a no-op.
if importlib.util.find_spec("sniffio") is None:
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

# Most specific first: the first match wins.
_MAPPED_ERRORS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """httpcore's exceptions as the matching httpx ones (what callers of httpx catch)."""
    try:
        yield
    except Exception as exc:
        for core_error, httpx_error in _MAPPED_ERRORS:
            if isinstance(exc, core_error):
                raise httpx_error(str(exc)) from exc
        raise


class _Stream(httpcore.AsyncNetworkStream):
    """A TCP (or TLS) connection as httpcore wants it, on asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(f"no data within {timeout} s") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(f"could not write within {timeout} s") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        # Not awaiting wait_closed(): a peer that never acknowledges must not hold us.
        self._writer.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            self._writer.close()
            raise httpcore.ConnectTimeout(f"no TLS handshake within {timeout} s") from exc
        except (OSError, ssl.SSLError) as exc:
            self._writer.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> object:
        if info == "is_readable":  # an idle keep-alive connection the server has closed
            return self._reader.at_eof() or self._writer.is_closing()
        names = {"ssl_object": "ssl_object", "client_addr": "sockname",
                 "server_addr": "peername", "socket": "socket"}
        return self._writer.get_extra_info(names[info]) if info in names else None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to addresses the URL guard accepts, resolved and checked
    right before connecting."""

    def __init__(self, *, allow_private: bool, resolve_timeout: float) -> None:
        self.allow_private = allow_private
        self.resolve_timeout = resolve_timeout

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        addresses = await url_guard.addresses_to_connect(
            host, port, allow_private=self.allow_private, timeout=self.resolve_timeout)
        failure: Exception | None = None
        for address in addresses:
            try:
                async with asyncio.timeout(timeout):
                    reader, writer = await asyncio.open_connection(
                        address, port, local_addr=(local_address, 0) if local_address else None)
            except TimeoutError as exc:
                raise httpcore.ConnectTimeout(f"no connection within {timeout} s") from exc
            except OSError as exc:
                failure = httpcore.ConnectError(str(exc) or type(exc).__name__)
                continue
            for option in socket_options or ():
                writer.get_extra_info("socket").setsockopt(*option)
            return _Stream(reader, writer)
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are delivered over TCP only")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


Origin = tuple[bytes, bytes, int | None]


class DeliveryTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive, one connection pool per origin, guarded connects."""

    def __init__(self, *, allow_private: bool, resolve_timeout: float,
                 max_connections_per_origin: int, max_origins: int = 512,
                 keepalive_expiry: float = 5.0, ssl_context: ssl.SSLContext | None = None,
                 ) -> None:
        self._backend = GuardedBackend(allow_private=allow_private,
                                       resolve_timeout=resolve_timeout)
        self._ssl_context = ssl_context or httpx.create_ssl_context()
        self._max_connections = max_connections_per_origin
        self._max_origins = max_origins
        self._keepalive_expiry = keepalive_expiry
        self._pools: OrderedDict[Origin, httpcore.AsyncConnectionPool] = OrderedDict()

    async def _pool(self, origin: Origin) -> httpcore.AsyncConnectionPool:
        pool = self._pools.get(origin)
        if pool is not None:
            self._pools.move_to_end(origin)
            return pool
        pool = httpcore.AsyncConnectionPool(
            ssl_context=self._ssl_context, max_connections=self._max_connections,
            keepalive_expiry=self._keepalive_expiry, network_backend=self._backend)
        self._pools[origin] = pool
        if len(self._pools) > self._max_origins:
            await self._close_idle_pools(len(self._pools) - self._max_origins)
        return pool

    async def _close_idle_pools(self, count: int) -> None:
        """Close up to ``count`` least recently used pools with no request in progress."""
        idle = [origin for origin, pool in self._pools.items()
                if all(connection.is_idle() for connection in pool.connections)][:count]
        for origin in idle:
            await self._pools.pop(origin).aclose()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        url = request.url
        pool = await self._pool((url.raw_scheme, url.raw_host, url.port))
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port,
                             target=url.raw_path),
            headers=request.headers.raw, content=request.stream, extensions=request.extensions)
        with _httpx_errors():
            response = await pool.handle_async_request(core_request)
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(status_code=response.status, headers=response.headers,
                              stream=_ResponseStream(response.stream),
                              extensions=response.extensions)

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.aclose()
