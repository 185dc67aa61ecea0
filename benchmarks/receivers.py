"""Webhook receivers in their own process (so their CPU is not the dispatcher's): N HTTP/1.1
servers on 127.0.0.1 that answer 200 and append "<receipt time> <event timestamp>" per request
to a file. Prints the ports as one JSON line, then serves until stdin closes.

    python -m benchmarks.receivers COUNT LOG_FILE

They are lean on purpose: one asyncio loop, keep-alive, the least HTTP/1.1 a webhook POST
needs. The machine has two cores and the receivers share them with the dispatcher under test;
a heavier server (http.server with a thread per connection) used about one core by itself and
measured its own cost more than the dispatcher's. Real receivers run on other machines.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import TextIO

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"


class Receiver(asyncio.Protocol):
    """One connection: requests parsed from the buffer as they complete, answered in order."""

    def __init__(self, log: TextIO) -> None:
        self.log = log
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (head_end := self.buffer.find(b"\r\n\r\n")) >= 0:
            length = 0
            for line in self.buffer[:head_end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return  # the body is still on its way
            body, self.buffer = self.buffer[head_end + 4 : end], self.buffer[end:]
            received = time.time()
            self.log.write(f"{received!r} {json.loads(body)['timestamp']}\n")
            assert self.transport is not None
            self.transport.write(RESPONSE)


async def serve(count: int, log: TextIO) -> None:
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(lambda: Receiver(log), "127.0.0.1", 0) for _ in range(count)
    ]
    print(json.dumps([s.sockets[0].getsockname()[1] for s in servers]), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the benchmark closes stdin


def main() -> None:
    count, log_path = int(sys.argv[1]), sys.argv[2]
    with open(log_path, "a", buffering=1) as log:
        asyncio.run(serve(count, log))


if __name__ == "__main__":
    main()
