"""Signing against the Standard Webhooks golden vector, the retry schedule, the SSRF rules."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from billing_svc.services.deliveries import Outcome, next_delay
from billing_svc.webhooks import signing
from billing_svc.webhooks.url_guard import UnsafeURL, check_url, is_public

SECRET = "whsec_plJ3nmyCDGBKInavdOK15jsl"
BODY = b'{"event_type":"ping","data":{"success":true}}'


def test_golden_vector() -> None:
    assert signing.sign(SECRET, "msg_loFOjxBNrRLzqYUf", 1731705121, BODY) == \
        "v1,rAvfW3dJ/X/qxhsaXPOyyCGmRKsaKWcsNccKXlIktD0="


def test_two_secrets_give_two_signatures_each_verifiable() -> None:
    import time

    new = signing.new_secret()
    assert new.startswith("whsec_")
    headers = signing.headers([new, SECRET], "msg_1", int(time.time()), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, SECRET):
        Webhook(secret).verify(BODY, headers)


SCHEDULE = (5.0, 300.0, 1800.0)


@pytest.mark.parametrize(("attempt", "outcome", "low", "high"), [
    (1, Outcome(500, 10), 4.0, 6.0),                        # 5 s +/- 20 %
    (2, Outcome(500, 10), 240.0, 360.0),
    (1, Outcome(429, 10), 60.0, 60.0),                      # slow down: at least a minute
    (1, Outcome(0, 10, timed_out=True), 60.0, 60.0),
    (2, Outcome(503, 10, retry_after_seconds=10), 300.0, 300.0),    # clamped up to the step
    (2, Outcome(503, 10, retry_after_seconds=10_000), 600.0, 600.0),  # and down to 2 x step
], ids=["first", "second", "429", "timeout", "retry-after-low", "retry-after-high"])
def test_next_delay(attempt: int, outcome: Outcome, low: float, high: float) -> None:
    for _ in range(20):
        assert low <= next_delay(attempt, SCHEDULE, outcome) <= high  # type: ignore[operator]


def test_the_schedule_runs_out() -> None:
    assert next_delay(4, SCHEDULE, Outcome(500, 1)) is None


@pytest.mark.parametrize(("address", "public"), [
    ("93.184.216.34", True), ("2606:2800:220:1:248:1893:25c8:1946", True),
    ("127.0.0.1", False), ("10.0.0.1", False), ("172.16.5.4", False), ("192.168.1.1", False),
    ("100.64.0.1", False), ("169.254.169.254", False), ("224.0.0.1", False),
    ("0.0.0.0", False), ("240.0.0.1", False), ("::1", False), ("fd00::1", False),
    ("fe80::1", False), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False),
])
def test_only_public_addresses_are_reachable(address: str, public: bool) -> None:
    assert is_public(address) is public


@pytest.mark.parametrize("url", ["http://example.com/x", "ftp://example.com/x", "https://",
                                 "https://a:b@example.com/", "https://example.com:99999/"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url, allow_private=False)


def test_http_only_when_private_networks_are_allowed() -> None:
    assert check_url("http://127.0.0.1:8080/x", allow_private=True) == ("http", "127.0.0.1", 8080)
