"""Mistakes an operator can fix, as the operator meets them: the real ``billing-svc`` command in a
subprocess ends with exactly one line on stderr saying what is wrong (the ``BILLING_*`` variable,
what it expects) and a non-zero exit code; never a traceback, never half an output."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from billing_svc.domain.periods import Period
from tests.integration.test_usage import Shop, ts
from tests.support import Client, ServerThread, fresh_database, settings_for_tests

BILLING_SVC = str(Path(sys.executable).with_name("billing-svc"))


def run(
    tmp_path: Path, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """``billing-svc ARGS`` with only the given ``BILLING_*`` settings, in an empty directory
    (no ``.env`` of the checkout)."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("BILLING_")}
    return subprocess.run(
        [BILLING_SVC, *args],
        text=True,
        capture_output=True,
        cwd=tmp_path,
        env={**clean, **env},
        timeout=timeout,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/billing.db"


def test_a_bad_boolean_names_its_variable_and_what_it_expects(tmp_path) -> None:
    result = run(
        tmp_path,
        "migrate",
        BILLING_DATABASE_URL=sqlite(tmp_path),
        BILLING_WEBHOOK_ALLOW_PRIVATE_NETWORKS="maybe",
    )
    assert result.returncode == 2
    assert one_line(result) == (
        "billing-svc: BILLING_WEBHOOK_ALLOW_PRIVATE_NETWORKS='maybe' is "
        "not valid: expected true or false"
    )


def test_a_bad_int_names_its_variable_and_what_it_expects(tmp_path) -> None:
    result = run(
        tmp_path,
        "serve",
        BILLING_DATABASE_URL=sqlite(tmp_path),
        BILLING_PERIOD_CLOSE_GRACE_SECONDS="1h",
    )
    assert result.returncode == 2
    assert one_line(result) == (
        "billing-svc: BILLING_PERIOD_CLOSE_GRACE_SECONDS='1h' is not valid: expected a whole number"
    )
    assert result.stdout == ""  # refused before anything started


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("BILLING_LOG_LEVEL", "loud", "expected one of debug, info, warning, error, critical"),
        ("BILLING_AUTH_TOKENS", "[{", "expected a JSON list of tokens"),
        ("BILLING_DUNNING_SCHEDULE_DAYS", "3,x", "expected comma-separated numbers"),
        ("BILLING_SHUTDOWN_GRACE_SECONDS", "soon", "expected a number"),
    ],
)
def test_other_bad_settings_name_their_variable(tmp_path, variable, value, expected) -> None:
    result = run(tmp_path, "migrate", BILLING_DATABASE_URL=sqlite(tmp_path), **{variable: value})
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith(f"billing-svc: {variable}") and expected in line, line


def test_a_postgres_url_suggests_the_psycopg_scheme(tmp_path) -> None:
    result = run(
        tmp_path,
        "migrate",
        BILLING_DATABASE_URL="postgres://billing:secret@db.internal:5432/billing",
    )
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("billing-svc: BILLING_DATABASE_URL=")
    assert "postgresql+psycopg://billing:***@db.internal:5432/billing" in line
    assert "secret@" not in line.split("e.g.")[1]


@pytest.mark.parametrize(
    "command", [["migrate"], ["serve"], ["close-period", "--period", "2024-01"]]
)
def test_an_unreachable_database_says_so_in_one_line(tmp_path, command) -> None:
    url = f"postgresql+psycopg://billing:billing@127.0.0.1:{free_port()}/billing"
    result = run(tmp_path, *command, BILLING_DATABASE_URL=url, BILLING_LISTEN="127.0.0.1:0")
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith(
        "billing-svc: cannot reach the database postgresql+psycopg://billing:***@127.0.0.1:"
    ), line
    assert "(BILLING_DATABASE_URL)" in line and "refused" in line.lower()


def test_serve_refuses_a_port_already_in_use(tmp_path) -> None:
    port = free_port()
    env = {"BILLING_DATABASE_URL": sqlite(tmp_path), "BILLING_LISTEN": f"127.0.0.1:{port}"}
    clean = {name: value for name, value in os.environ.items() if not name.startswith("BILLING_")}
    first = subprocess.Popen(
        [BILLING_SVC, "serve"],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env={**clean, **env},
    )
    try:
        assert first.stdout is not None
        for line in first.stdout:  # wait until the first one serves
            if '"serving"' in line:
                break
        second = run(tmp_path, "serve", **env)
        assert second.returncode == 1
        assert one_line(second) == (
            f"billing-svc: cannot listen on 127.0.0.1:{port} "
            "(BILLING_LISTEN): the address is already in use (is another "
            "billing-svc running?)"
        )
        assert first.poll() is None
    finally:
        first.terminate()
        first.wait(30)


def test_export_journal_of_an_unknown_account_writes_nothing(tmp_path) -> None:
    url = sqlite(tmp_path)
    assert run(tmp_path, "migrate", BILLING_DATABASE_URL=url).returncode == 0
    last = Period.containing(datetime.now(UTC)).previous().label
    out = tmp_path / "journal.csv"
    to_file = run(
        tmp_path,
        "export-journal",
        "--period",
        last,
        "--account",
        "acc_nope",
        "--output",
        str(out),
        BILLING_DATABASE_URL=url,
    )
    assert to_file.returncode == 1
    assert one_line(to_file) == "billing-svc: account 'acc_nope' does not exist"
    assert not out.exists()
    to_stdout = run(
        tmp_path,
        "export-journal",
        "--period",
        last,
        "--account",
        "acc_nope",
        BILLING_DATABASE_URL=url,
    )
    assert (to_stdout.returncode, to_stdout.stdout) == (1, "")
    one_line(to_stdout)


def test_open_and_unclosed_months_say_why_once(tmp_path) -> None:
    this = Period.containing(datetime.now(UTC))
    last = this.previous()
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(settings_for_tests(url, auto_close_periods=False)).start()
        client = Client(server.target)
        try:
            shops = [
                Shop(client, skip_trial=True, start_time=ts(last.start - timedelta(days=3)))
                for _ in range(3)
            ]
            shops[0].record([shops[0].message("a", 10, at=last.start + timedelta(days=1))])
        finally:
            client.close()
            server.stop()

        closing = run(tmp_path, "close-period", "--period", this.label, BILLING_DATABASE_URL=url)
        assert closing.returncode == 1
        assert one_line(closing) == (
            f"billing-svc: period {this.label} has not ended yet (it ends "
            f"{this.end.isoformat()}); only ended periods can be closed"
        )
        assert closing.stdout == ""

        exporting = run(
            tmp_path, "export-journal", "--period", this.label, BILLING_DATABASE_URL=url
        )
        assert exporting.returncode == 1
        assert "has not ended yet" in one_line(exporting)
        assert exporting.stdout == ""

        unclosed = run(tmp_path, "export-journal", "--period", last.label, BILLING_DATABASE_URL=url)
        assert unclosed.returncode == 0
        # Progress lines, then the summary.
        assert unclosed.stderr.strip().splitlines()[-1] == (
            f"0 journal entries for {last.label}; 3 account(s) with no invoice for {last.label}"
            f" yet, left out (close it first: billing-svc close-period --period {last.label})"
        )
        assert unclosed.stdout.splitlines() == [
            "account_id,gl_account,department,amount,description,reference"
        ]
