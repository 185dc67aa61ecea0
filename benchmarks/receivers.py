"""Webhook receivers in their own process (so their CPU is not the dispatcher's): N HTTP/1.1
servers on 127.0.0.1 that answer 200 and append "<receipt time> <event timestamp>" per request
to a file. Prints the ports as one JSON line, then serves until stdin closes.

    python -m benchmarks.receivers COUNT LOG_FILE
"""

from __future__ import annotations

import http.server
import json
import sys
import threading
import time


def main() -> None:
    count, log_path = int(sys.argv[1]), sys.argv[2]
    lock = threading.Lock()
    log = open(log_path, "a", buffering=1)  # noqa: SIM115

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 65536

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            received = time.time()
            stamp = json.loads(body)["timestamp"]
            with lock:
                log.write(f"{received!r} {stamp}\n")
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    servers = []
    for _ in range(count):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    print(json.dumps([s.server_address[1] for s in servers]), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
