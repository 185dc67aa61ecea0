"""Headers no client library sends, sent raw to the REST port (red-team of the REST surface):
a JSON error with the gRPC status a caller can act on, never INTERNAL."""

from __future__ import annotations

import json
import socket

from tests.integration.test_rest import Rest, rest, token  # noqa: F401  (fixture)


def raw_get(rest: Rest, path: str, headers: list[bytes]) -> tuple[int, dict]:  # noqa: F811
    """Send a GET of ``path`` with ``headers`` as raw bytes; the status and the JSON body."""
    request = b"\r\n".join(
        [
            f"GET {path} HTTP/1.1".encode(),
            b"Host: billing",
            *headers,
            b"Connection: close",
            b"",
            b"",
        ]
    )
    with socket.create_connection(("127.0.0.1", rest.server.server.http_port), timeout=10) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def test_a_bearer_token_that_is_not_ascii_is_unauthenticated(rest: Rest) -> None:  # noqa: F811
    for secret in (b"\xc3\xa9t\xc3\xa9", b"\xff\xfe", token("admin").encode() + b"\xff"):
        status, body = raw_get(
            rest, "/v1/billing/usage/current", [b"Authorization: Bearer " + secret]
        )
        assert (status, body["error"]["code"]) == (401, "UNAUTHENTICATED"), (secret, body)
        assert "not ASCII" in body["error"]["message"]


def test_a_request_id_that_is_not_printable_ascii_is_invalid_argument(rest: Rest) -> None:  # noqa: F811
    auth = b"Authorization: Bearer " + rest.bound_secret.encode()
    for request_id in (b"\xc3\xa9\xe2\x82\xac", b"\xff\xfe", b"a\tb"):
        status, body = raw_get(
            rest, "/v1/billing/usage/current", [auth, b"X-Request-Id: " + request_id]
        )
        assert (status, body["error"]["code"]) == (400, "INVALID_ARGUMENT"), (request_id, body)
        assert "X-Request-Id" in body["error"]["message"]
    status, _ = raw_get(rest, "/v1/billing/usage/current", [auth, b"X-Request-Id: req-7"])
    assert status == 200


def test_two_authorization_headers_are_refused_whichever_is_valid(rest: Rest) -> None:  # noqa: F811
    good, other = token("admin").encode(), rest.bound_secret.encode()
    path = f"/v1/accounts/{rest.mine.account_id}/billing"
    for first, second in ((good, good), (good, b"wrong"), (b"wrong", good), (good, other)):
        status, body = raw_get(
            rest, path, [b"Authorization: Bearer " + first, b"Authorization: Bearer " + second]
        )
        assert (status, body["error"]["code"]) == (400, "INVALID_ARGUMENT"), (first, body)
        assert body["error"]["message"] == (
            "Authorization: is given 2 times; send one 'Authorization: Bearer <token>' header"
        )
    status, _ = raw_get(rest, path, [b"Authorization: Bearer " + good])
    assert status == 200


def test_a_percent_escape_that_is_not_utf8_is_invalid_argument_not_echoed(rest: Rest) -> None:  # noqa: F811
    auth = b"Authorization: Bearer " + token("admin").encode()
    for path, field in (
        ("/v1/accounts/%FF/billing", "path"),
        ("/v1/accounts/acc_%C3%28x/billing", "path"),  # a broken sequence
        ("/v1/billing/usage/current?account_id=%FF%FE", "query"),
        ("/v1/%FF", "path"),
    ):  # no such route either: the escape is said first
        status, body = raw_get(rest, path, [auth])
        assert (status, body["error"]["code"]) == (400, "INVALID_ARGUMENT"), (path, body)
        message = body["error"]["message"]
        assert message.startswith(f"{field}: has percent-escapes that are not UTF-8 text ("), (
            message
        )
        assert "does not exist" not in message and "no such resource" not in message
    # UTF-8 escapes are decoded as ever: an id that does not exist is NOT_FOUND, in its letters.
    status, body = raw_get(rest, "/v1/accounts/acc_%C3%A9/billing", [auth])
    assert (status, body["error"]["code"]) == (404, "NOT_FOUND"), body
    assert "acc_é" in body["error"]["message"]
