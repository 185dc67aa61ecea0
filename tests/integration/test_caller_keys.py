"""Idempotency keys belong to their caller: the same request_id from two callers is two requests,
and nothing about one caller's keys reaches another (issue 12, point 9)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from sqlmodel import select

from billing_svc.domain.tokens import configured_token_id, hash_token
from billing_svc.storage.tables import IdempotencyRecord
from tests.support import ADMIN, TOKENS, WRITER, Client, ServerThread, create_account


def test_the_same_request_id_from_two_callers_is_two_requests(
    client: Client, server: ServerThread
) -> None:
    key = "shared-key-1"
    writers = create_account(client, request_id=key, name="Writer's Inc", metadata=WRITER)
    admins = create_account(client, request_id=key, name="Admin's Inc", metadata=ADMIN)
    assert writers.account_id != admins.account_id
    assert (admins.name, writers.name) == ("Admin's Inc", "Writer's Inc")
    # Each caller's retry returns its own first result.
    assert (
        create_account(client, request_id=key, name="Writer's Inc", metadata=WRITER).account_id
        == writers.account_id
    )
    assert (
        create_account(client, request_id=key, name="Admin's Inc", metadata=ADMIN).account_id
        == admins.account_id
    )
    with server.db.read() as session:
        owners = set(
            session.exec(
                select(IdempotencyRecord.token_id).where(IdempotencyRecord.request_id == key)
            ).all()
        )
    assert owners == {
        configured_token_id(hash_token(TOKENS[name][0])) for name in ("writer", "admin")
    }


def test_a_callers_conflict_says_nothing_of_another_callers_use_of_the_key(client: Client) -> None:
    account = create_account(client, name="Conflicts Co")

    def tenant(name: str, metadata: list) -> pb.Tenant:
        return client.billing.CreateTenant(
            pb.CreateTenantRequest(
                account_id=account.account_id, name=name, request_id="tenant-key"
            ),
            metadata=metadata,
        ).tenant

    admins = tenant("EU", ADMIN)
    with pytest.raises(grpc.RpcError) as conflict:  # the admin's own key, other parameters
        tenant("US", ADMIN)
    assert conflict.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    writers = tenant("US", WRITER)  # the writer never used it: a first call
    assert writers.tenant_id != admins.tenant_id and writers.name == "US"
    with pytest.raises(grpc.RpcError) as own:
        tenant("APAC", WRITER)
    # The writer's conflict reads exactly as it would had no one else used the key.
    assert own.value.details() == conflict.value.details()


def test_concurrent_first_calls_of_two_callers_with_one_key_make_one_each(client: Client) -> None:
    with ThreadPoolExecutor(8) as pool:
        made = list(
            pool.map(
                lambda metadata: (
                    create_account(
                        client, request_id="race-of-two", name="Race Inc", metadata=metadata
                    ).account_id
                ),
                [WRITER, ADMIN] * 4,
            )
        )
    assert len(set(made[0::2])) == 1 and len(set(made[1::2])) == 1
    assert made[0] != made[1]
