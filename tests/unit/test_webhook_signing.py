"""Standard Webhooks v1 signatures: the spec's golden vector, and rotation's two signatures
verified by the public ``standardwebhooks`` library."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from billing_svc.domain import signing

# From the Standard Webhooks specification (WEBHOOKS.md: signing).
SECRET = "whsec_plJ3nmyCDGBKInavdOK15jsl"
MESSAGE_ID = "msg_loFOjxBNrRLzqYUf"
TIMESTAMP = 1731705121
BODY = b'{"event_type":"ping","data":{"success":true}}'
SIGNATURE = "v1,rAvfW3dJ/X/qxhsaXPOyyCGmRKsaKWcsNccKXlIktD0="


def test_golden_vector() -> None:
    assert signing.sign(SECRET, MESSAGE_ID, TIMESTAMP, BODY) == SIGNATURE


def test_headers_of_one_attempt() -> None:
    headers = signing.headers([SECRET], MESSAGE_ID, TIMESTAMP, BODY)
    assert headers["webhook-id"] == MESSAGE_ID
    assert headers["webhook-timestamp"] == "1731705121"
    assert headers["webhook-signature"] == SIGNATURE
    assert headers["content-type"] == "application/json"


def test_new_secrets_are_whsec_and_24_to_64_random_bytes() -> None:
    secrets = {signing.new_secret() for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert 24 <= len(base64.b64decode(secret.removeprefix("whsec_"))) <= 64


def test_during_rotation_both_secrets_sign_and_each_verifies() -> None:
    new = signing.new_secret()
    headers = signing.headers([new, SECRET], "msg_1", int(time.time()), BODY)
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    for secret in (new, SECRET):
        assert Webhook(secret).verify(BODY, headers) == {
            "event_type": "ping",
            "data": {"success": True},
        }


@pytest.mark.parametrize(
    "tampered",
    [
        {"body": BODY.replace(b"true", b"false")},
        {"webhook-id": "msg_other"},
        {"webhook-timestamp": str(int(time.time()) - 1)},
    ],
    ids=["body", "id", "timestamp"],
)
def test_any_change_breaks_the_signature(tampered: dict[str, object]) -> None:
    now = int(time.time())
    headers = signing.headers([SECRET], "msg_1", now, BODY)
    body = tampered.pop("body", BODY)
    headers.update(tampered)  # type: ignore[arg-type]
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, headers)  # type: ignore[arg-type]
