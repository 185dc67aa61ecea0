"""The operator commands as real processes against a real database."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from as2aas.billing.v1 import billing_service_pb2 as pb
from sqlalchemy import text

from billing_svc.domain.periods import Period
from tests.integration.test_usage import Shop, ts
from tests.support import (
    ADMIN,
    Client,
    ServerThread,
    create_account,
    fresh_database,
    settings_for_tests,
)


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "billing_svc.cli", *args],
        text=True,
        capture_output=True,
        env={**os.environ, "BILLING_DATABASE_URL": url},
        timeout=120,
    )


def test_help_on_every_command(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/help.db"
    for command in (
        [],
        ["serve"],
        ["migrate"],
        ["close-period"],
        ["export-journal"],
        ["audit"],
        ["audit", "verify"],
        ["create-token"],
        ["tokens"],
        ["tokens", "list"],
        ["tokens", "revoke"],
    ):
        result = cli(url, *command, "--help")
        assert result.returncode == 0, result.stderr
        assert "usage: billing-svc" in result.stdout


def test_close_period_export_journal_and_audit_verify(tmp_path) -> None:
    last = Period.containing(datetime.now(UTC)).previous()
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(settings_for_tests(url)).start()
        client = Client(server.target)
        try:
            shop = Shop(
                client, plan_id="startup", skip_trial=True, start_time=ts(last.previous().start)
            )
            shop.record([shop.message("a", 6000, partner=0, at=last.start + timedelta(days=1))])
            # A test clock's account of that period: a sandbox, never in a real close or export.
            clock = client.billing.CreateTestClock(
                pb.CreateTestClockRequest(
                    name="sandbox", frozen_time=ts(last.start + timedelta(days=1))
                ),
                metadata=ADMIN,
            )
            create_account(client, test_clock_id=clock.test_clock.test_clock_id, skip_trial=True)
        finally:
            client.close()
            server.stop()

        assert cli(url, "close-period", "--period", "2024-13").returncode == 2
        closed = cli(url, "close-period", "--period", last.label)
        assert closed.returncode == 0, closed.stderr
        account_id, invoice_id, total = closed.stdout.split()
        assert (account_id, total) == (shop.account_id, "149.00")  # $99 + 1,000 x $0.05
        again = cli(url, "close-period", "--period", last.label, "--account", shop.account_id)
        assert again.stdout.split()[1] == invoice_id

        out = tmp_path / "journal.csv"
        exported = cli(url, "export-journal", "--period", last.label, "--output", str(out))
        assert exported.returncode == 0, exported.stderr
        rows = list(csv.DictReader(io.StringIO(out.read_text())))
        assert [(r["department"], r["amount"], r["reference"]) for r in rows] == [
            ("Procurement", "149.00", f"AS2-{last.label}")
        ]

        verified = cli(url, "audit", "verify")
        assert verified.returncode == 0 and "intact" in verified.stdout
        from sqlalchemy import create_engine

        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE audit_record SET after_json = '{}' WHERE sequence = 3"))
        engine.dispose()
        broken = cli(url, "audit", "verify")
        assert broken.returncode == 1
        assert "record 3" in broken.stdout


def test_long_jobs_show_a_progress_bar_on_a_terminal(tmp_path) -> None:
    import pty

    url = f"sqlite:///{tmp_path}/tty.db"
    assert cli(url, "migrate").returncode == 0
    from billing_svc.services import accounts
    from billing_svc.services.context import Caller, RequestContext
    from billing_svc.storage.db import Database

    db = Database(url)
    admin = RequestContext(Caller("admin", frozenset({"admin"})))
    for i in range(3):
        accounts.create_account(
            db,
            admin,
            name=f"T{i}",
            plan_id="startup",
            billing_interval="monthly",
            skip_trial=True,
            start_time=datetime.now(UTC) - timedelta(days=70),
            usage_thresholds=(),
            key=None,
        )
    db.dispose()
    last = Period.containing(datetime.now(UTC)).previous().label
    main, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "billing_svc.cli", "close-period", "--period", last],
        stdout=subprocess.DEVNULL,
        stderr=secondary,
        env={**os.environ, "BILLING_DATABASE_URL": url},
    )
    os.close(secondary)
    output = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(60) == 0
    text = output.decode("utf-8", "replace")
    assert f"closing {last}" in text and "100%" in text  # rich's bar, not plain lines
    plain = cli(url, "close-period", "--period", last)
    assert f"closing {last}: 3/3" in plain.stderr
