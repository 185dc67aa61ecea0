"""Headers no client library sends, sent raw to the REST port (red-team of the REST surface):
a JSON error with the gRPC status a caller can act on, never INTERNAL."""

from __future__ import annotations

import json
import socket

from tests.integration.test_rest import Rest, rest, token  # noqa: F401  (fixture)


def raw_get(rest: Rest, path: str, headers: list[bytes]) -> tuple[int, dict]:  # noqa: F811
    """Send a GET of ``path`` with ``headers`` as raw bytes; the status and the JSON body."""
    request = b"\r\n".join([f"GET {path} HTTP/1.1".encode(), b"Host: billing",
                            *headers, b"Connection: close", b"", b""])
    with socket.create_connection(("127.0.0.1", rest.server.server.http_port), timeout=10) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def test_a_bearer_token_that_is_not_ascii_is_unauthenticated(rest: Rest) -> None:  # noqa: F811
    for secret in (b"\xc3\xa9t\xc3\xa9", b"\xff\xfe", token("admin").encode() + b"\xff"):
        status, body = raw_get(rest, "/v1/billing/usage/current",
                               [b"Authorization: Bearer " + secret])
        assert (status, body["error"]["code"]) == (401, "UNAUTHENTICATED"), (secret, body)
        assert "not ASCII" in body["error"]["message"]


def test_a_request_id_that_is_not_printable_ascii_is_invalid_argument(
        rest: Rest) -> None:  # noqa: F811
    auth = b"Authorization: Bearer " + rest.bound_secret.encode()
    for request_id in (b"\xc3\xa9\xe2\x82\xac", b"\xff\xfe", b"a\tb"):
        status, body = raw_get(rest, "/v1/billing/usage/current",
                               [auth, b"X-Request-Id: " + request_id])
        assert (status, body["error"]["code"]) == (400, "INVALID_ARGUMENT"), (request_id, body)
        assert "X-Request-Id" in body["error"]["message"]
    status, _ = raw_get(rest, "/v1/billing/usage/current", [auth, b"X-Request-Id: req-7"])
    assert status == 200
