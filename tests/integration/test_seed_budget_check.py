"""The seed's own JavaScript budget check (``checkDailyUsage``) under Node, against a real server
over HTTPS with an account-bound key, as the seed calls it: it alerts when the estimate exceeds
the limit and not otherwise (issue 17, point 6). Over gRPC-JSON its comparison read a Money object
against a number and never alerted."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from as2aas.billing.v1 import billing_service_pb2_grpc as billing_grpc
from as2aas.billing.v1 import usage_service_pb2_grpc as usage_grpc

from billing_svc.domain.periods import Period
from billing_svc.services import tokens
from billing_svc.services.context import Caller, RequestContext
from tests.integration import test_tls
from tests.integration.test_usage import Shop, ts
from tests.integration.token_support import seed_database_tokens
from tests.support import Client, ServerThread, fresh_database, settings_for_tests

pki = test_tls.pki
SCRIPT = Path(__file__).resolve().parent.parent / "node" / "check_daily_usage.js"

# The seed's code, as the seed prints it (trailing spaces included).
SEED_CHECK_DAILY_USAGE = """\
// Monitor daily usage
async function checkDailyUsage(apiKey) {
  const response = await fetch('https://api.as2aas.com/v1/billing/usage/current', {
    headers: {
      'Authorization': `Bearer ${apiKey}`
    }
  });
  \n  const usage = await response.json();
  \n  if (usage.usage_to_date.estimated_charges > DAILY_BUDGET_LIMIT) {
    await sendBudgetAlert(usage);
  }
  \n  return usage;
}
"""


@dataclass
class Seed:
    base_url: str
    shop: Shop
    api_key: str
    ca_file: Path


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory, pki: dict[str, Path]) -> Iterator[Seed]:
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed")
    with fresh_database(str(tmp_path_factory.mktemp("seed"))) as url:
        seed_database_tokens(url)
        server = ServerThread(
            settings_for_tests(
                url,
                auth_tokens="",
                http_listen="127.0.0.1:0",
                tls_cert_file=str(pki["server_cert"]),
                tls_key_file=str(pki["server_key"]),
            )
        ).start()
        try:
            client = TlsClient(server.target, pki["ca"])
            # Business from the first instant of the month, no trial: the estimate is $299.00.
            shop = Shop(
                client,
                plan_id="business",
                skip_trial=True,
                start_time=ts(Period.containing(datetime.now(UTC)).start),
            )
            operator = RequestContext(Caller("operator", frozenset({"admin"})))
            # The seed's pk_live_ key: one account's, so the call names no account.
            api_key = tokens.create_token(
                server.db,
                operator,
                name="pk_live_budget",
                scopes=["usage:read"],
                account_id=shop.account_id,
            )
            base_url = f"https://127.0.0.1:{server.server.http_port}"
            _until_accepted(base_url, api_key, pki["ca"])
            yield Seed(base_url, shop, api_key, pki["ca"])
            client.close()
        finally:
            server.stop()


class TlsClient(Client):
    """The stubs over a TLS channel that trusts the test CA."""

    def __init__(self, target: str, ca_file: Path) -> None:
        self.channel = grpc.secure_channel(
            target, grpc.ssl_channel_credentials(root_certificates=ca_file.read_bytes())
        )
        self.billing = billing_grpc.BillingServiceStub(self.channel)
        self.usage = usage_grpc.UsageServiceStub(self.channel)


def _until_accepted(base_url: str, api_key: str, ca_file: Path) -> None:
    """Database tokens are in force on a server within about a second of their creation."""
    trust = ssl.create_default_context(cafile=str(ca_file))
    for _ in range(100):
        response = httpx.get(
            f"{base_url}/v1/billing/usage/current",
            timeout=10,
            verify=trust,
            headers={"Authorization": f"Bearer {api_key}"},
        )
        if response.status_code == 200:
            return
        time.sleep(0.1)
    pytest.fail(f"the new key was never accepted: {response.text}")


def check_daily_usage(seed: Seed, limit: str) -> dict[str, Any]:
    environment = {**os.environ, "NODE_EXTRA_CA_CERTS": str(seed.ca_file)}
    result = subprocess.run(
        ["node", str(SCRIPT), seed.base_url, seed.api_key, limit],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_script_is_the_seeds_code_but_for_the_base_url() -> None:
    expected = SEED_CHECK_DAILY_USAGE.replace(
        "'https://api.as2aas.com/v1/billing/usage/current'",
        "BASE_URL + '/v1/billing/usage/current'",
    )
    assert expected in SCRIPT.read_text()


def test_the_seeds_budget_check_alerts_only_above_the_limit(seed: Seed) -> None:
    under = check_daily_usage(seed, "300")
    assert under["usage"]["usage_to_date"]["estimated_charges"] == 299  # a number, not Money
    assert under["alerts"] == []
    assert check_daily_usage(seed, "299")["alerts"] == []  # "exceeds": equal is not above
    assert check_daily_usage(seed, "298.99")["alerts"] == [
        {"estimated_charges": 299, "limit": 298.99}
    ]

    # 100 messages beyond the 25,000 included, at $0.03: $302.00 now exceeds a $300 budget.
    seed.shop.record([seed.shop.message("budget-1", quantity=25_100)])
    over = check_daily_usage(seed, "300")
    assert over["alerts"] == [{"estimated_charges": 302, "limit": 300}]
    assert over["usage"]["usage_to_date"]["messages"] == 25_100
