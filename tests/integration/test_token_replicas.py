"""Two ``billing-svc serve`` processes on one PostgreSQL database: a token made by the CLI works
on both within seconds, and once revoked both refuse it and close its open streams."""

from __future__ import annotations

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb

from tests.integration.test_usage import Shop
from tests.integration.token_support import (
    PROMISED_SECONDS,
    bearer,
    cli,
    open_stream,
    refused,
    seed_database_tokens,
    within,
)
from tests.support import ADMIN, Client, ServiceProcess, fresh_database, on_postgres


@pytest.mark.skipif(not on_postgres(), reason="replicas share a PostgreSQL database")
def test_both_replicas_take_a_new_token_and_drop_a_revoked_one(tmp_path) -> None:
    with fresh_database(str(tmp_path)) as url:
        seed_database_tokens(url)
        replicas = [ServiceProcess(url, BILLING_AUTH_TOKENS="").start() for _ in range(2)]
        clients = [Client(replica.target) for replica in replicas]
        streams = []
        try:
            shop = Shop(clients[0])
            made = cli(
                url, "create-token", "fleet", "--scope", "usage:write", "--scope", "billing:read"
            )
            assert made.returncode == 0, made.stderr
            secret = made.stdout.strip()
            for client in clients:
                within(
                    PROMISED_SECONDS,
                    lambda c=client: c.billing.ListPlans(
                        pb.ListPlansRequest(), metadata=bearer(secret)
                    ),
                    "the new token",
                )
                streams.append(open_stream(client, secret, shop))

            revoked = cli(url, "tokens", "revoke", "fleet")
            assert revoked.returncode == 0, revoked.stderr
            for stream in streams:
                error = stream.wait_end(timeout=PROMISED_SECONDS)
                assert error is not None and error.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "revoked" in error.details()
            for client in clients:
                refusal = refused(
                    lambda c=client: c.billing.ListPlans(
                        pb.ListPlansRequest(), metadata=bearer(secret)
                    )
                )
                assert refusal.code() == grpc.StatusCode.UNAUTHENTICATED
            # The replicas serve on: other callers' calls go through.
            assert shop.current().period
            assert clients[1].billing.ListPlans(pb.ListPlansRequest(), metadata=ADMIN).plans
        finally:
            for stream in streams:
                stream.close()
            for client in clients:
                client.close()
            for replica in replicas:
                replica.kill()
