"""The ``billing-svc`` command: the service and its operator commands.

Exit codes: 0 done; 1 the command ran and found a problem (a broken audit chain, a period that
could not be closed), or could not run (the database unreachable, the address in use); 2 bad
usage, a bad setting included. Each problem an operator can fix is one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from billing_svc import logs
from billing_svc.domain.scopes import SCOPES
from billing_svc.operator_errors import OperatorError, unreachable_database
from billing_svc.settings import Settings, load_settings

T = TypeVar("T")


def progress(items: list[T], label: str) -> Iterator[T]:
    """Yield ``items``, showing progress on stderr: a rich progress bar on a terminal, plain
    lines every 10 % otherwise (logs, CI)."""
    total = len(items)
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import track

        yield from track(items, description=label, console=Console(stderr=True))
        return
    step = max(total // 10, 1)
    for index, item in enumerate(items, 1):
        yield item
        if index % step == 0 or index == total:
            print(f"{label}: {index}/{total}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="billing-svc",
        description="The AS2 platform's billing service. Settings come from "
        "BILLING_* environment variables (see README).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="migrate the database, then serve gRPC until SIGTERM")
    commands.add_parser("migrate", help="bring the database schema up to date and exit")
    token = commands.add_parser("create-token", help="create a bearer token, print it once")
    token.add_argument("name", help="the caller's name (shown in logs and the audit trail)")
    token.add_argument(
        "--scope",
        action="append",
        choices=SCOPES,
        required=True,
        help="a scope to grant (repeat for several)",
    )
    token.add_argument(
        "--account",
        default="",
        metavar="ACCOUNT_ID",
        help="bind the token to this account (acc_...): it acts on it alone "
        "(never with admin); such tokens start pk_live_",
    )
    token.add_argument(
        "--expires-in",
        metavar="DURATION",
        help="lifetime, e.g. 90d, 12h, 30m, 2w (default: no expiry)",
    )
    tokens = commands.add_parser("tokens", help="database tokens: list, revoke")
    token_commands = tokens.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    token_commands.add_parser(
        "list",
        help="name, scopes, account, created, last used, expiry "
        "and status of every token (never the secret)",
    )
    revoke = token_commands.add_parser(
        "revoke",
        help="revoke a token: every replica refuses it, and closes its streams, within seconds",
    )
    revoke.add_argument("name", help="the token's name")
    close = commands.add_parser(
        "close-period", help="invoice a period for every account (or one); closing is idempotent"
    )
    close.add_argument("--period", required=True, help="YYYY-MM")
    close.add_argument("--account", help="only this account id")
    export = commands.add_parser("export-journal", help="write ERP journal entries as CSV")
    export.add_argument("--period", required=True, help="YYYY-MM (an invoiced period)")
    export.add_argument("--account", help="only this account id")
    export.add_argument("--output", help="file to write (default: stdout)")
    purge = commands.add_parser(
        "purge",
        help="delete what the BILLING_*_RETENTION_DAYS settings no longer keep (raw "
        "usage of invoiced periods, the webhook log, idempotency records, hourly roll-ups), in "
        "small chunks, safe while serving; lists the old periods kept because never invoiced",
    )
    purge.add_argument(
        "--export",
        metavar="FILE",
        help="first write the raw usage events purged to FILE, as gzip CSV",
    )
    audit = commands.add_parser("audit", help="audit trail commands")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    audit_commands.add_parser("verify", help="walk the hash chain; name the first bad record")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except OperatorError as exc:
        return _refuse(exc)
    logs.configure(settings.log_level if args.command == "serve" else "warning")
    try:
        return _run(args, settings)
    except OperatorError as exc:
        return _refuse(exc)
    except Exception as exc:
        from sqlalchemy.engine import make_url

        unreachable = unreachable_database(make_url(settings.database_url), exc)
        if unreachable is None:
            raise
        return _refuse(unreachable)


def _refuse(exc: OperatorError) -> int:
    print(f"billing-svc: {exc}", file=sys.stderr)
    return exc.exit_code


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        from billing_svc.app import serve

        asyncio.run(serve(settings))
        return 0

    from billing_svc.app import open_database

    if args.command in ("create-token", "tokens") and settings.token_specs:
        print(
            "billing-svc: BILLING_AUTH_TOKENS is set, and it is the whole set of tokens: "
            "database tokens are not used. Change BILLING_AUTH_TOKENS instead, or unset it "
            "to use database tokens.",
            file=sys.stderr,
        )
        return 2
    # A purge's many small commits leave WAL checkpoints to a thread of their own, as the
    # server's writes do: none of its chunks pays for one while holding the write lock.
    db = open_database(settings, background_checkpoints=args.command == "purge")
    if args.command == "create-token":
        return _create_token(db, args)
    if args.command == "tokens":
        return _list_tokens(db) if args.tokens_command == "list" else _revoke_token(db, args.name)
    if args.command == "close-period":
        return _close_period(db, args.period, args.account)
    if args.command == "export-journal":
        return _export_journal(db, settings, args.period, args.account, args.output)
    if args.command == "purge":
        return _purge(db, settings, args.export)
    if args.command == "audit":
        return _audit_verify(db)
    return 0


def _operator():
    """The context of an operator's command: the audit trail names the OS user."""
    import getpass

    from billing_svc.services.context import Caller, RequestContext

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return RequestContext(Caller(f"cli:{user}", frozenset({"admin"})))


def _create_token(db, args: argparse.Namespace) -> int:
    from billing_svc.domain.errors import BillingError, InvalidArgument
    from billing_svc.domain.tokens import parse_duration
    from billing_svc.services import tokens

    try:
        lifetime = parse_duration(args.expires_in) if args.expires_in is not None else None
        secret = tokens.create_token(
            db,
            _operator(),
            name=args.name,
            scopes=args.scope,
            account_id=args.account,
            expires_in=lifetime,
        )
    except InvalidArgument as exc:
        print(f"billing-svc: {exc}", file=sys.stderr)
        return 2
    except BillingError as exc:
        print(f"billing-svc: {exc}", file=sys.stderr)
        return 1
    print(secret)
    return 0


def _list_tokens(db) -> int:
    from billing_svc.services import tokens

    def shown(moment) -> str:
        return moment.isoformat(timespec="seconds") if moment is not None else "-"

    now = db.clock.now()
    print("name\tscopes\taccount\tcreated\tlast_used\texpires\tstatus")
    for token in tokens.list_tokens(db):
        print(
            "\t".join(
                (
                    token.name,
                    ",".join(token.scopes),
                    token.account_id or "-",
                    shown(token.created_at),
                    shown(token.last_used_at),
                    shown(token.expires_at),
                    token.status(now),
                )
            )
        )
    return 0


def _revoke_token(db, name: str) -> int:
    from billing_svc.domain.errors import NotFound
    from billing_svc.services import tokens

    try:
        token = tokens.revoke_token(db, _operator(), name)
    except NotFound as exc:
        print(f"billing-svc: {exc}", file=sys.stderr)
        return 1
    print(
        f"revoked {token.name} at {token.revoked_at.isoformat(timespec='seconds')}; "  # type: ignore[union-attr]  # revoke_token sets revoked_at
        "every replica refuses it within seconds"
    )
    return 0


def _period(label: str):
    from billing_svc.domain.periods import Period

    try:
        return Period.parse(label)
    except ValueError as exc:
        print(f"billing-svc: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def _account_ids(db, period, account: str | None) -> list[str]:
    from sqlmodel import select

    from billing_svc.storage.tables import Account

    if account:
        return [account]
    with db.read() as session:
        # Test clocks' accounts are sandboxes: never in a real close or export.
        return list(
            session.exec(
                select(Account.account_id)
                .where(Account.created_at < period.end, Account.test_clock_id.is_(None))  # type: ignore[union-attr]  # SQLModel column attribute
                .order_by(Account.account_id)
            ).all()
        )


def _ended(db, period, purpose: str) -> None:
    """Exit 1 with one line when ``period`` has not ended: nothing of it can be ``purpose``."""
    if period.end > db.clock.now():
        print(
            f"billing-svc: period {period.label} has not ended yet (it ends "
            f"{period.end.isoformat()}); {purpose}",
            file=sys.stderr,
        )
        raise SystemExit(1)


def _close_period(db, label: str, account: str | None) -> int:
    from billing_svc.domain.errors import BillingError
    from billing_svc.services import invoicing
    from billing_svc.services.context import system_context

    period = _period(label)
    # Said once here: the service would refuse each account for the same reason.
    _ended(db, period, "only ended periods can be closed")
    failures = 0
    for account_id in progress(_account_ids(db, period, account), f"closing {label}"):
        try:
            view = invoicing.close_period(
                db, system_context("cli", db.clock), account_id=account_id, period=period
            )
            print(f"{account_id}\t{view.invoice.invoice_id}\t{view.invoice.total}")
        except BillingError as exc:
            failures += 1
            print(f"{account_id}\tnot closed: {exc}", file=sys.stderr)
    return 1 if failures else 0


def _export_journal(
    db, settings: Settings, label: str, account: str | None, output: str | None
) -> int:
    from billing_svc.domain.errors import BillingError, FailedPrecondition
    from billing_svc.services import finance

    period = _period(label)
    _ended(
        db,
        period,
        "journal entries come from its invoices, issued once it has ended and been closed",
    )
    # Every entry is read before anything is written: a mistake leaves no half-written CSV.
    rows: list[list[str]] = []
    not_invoiced = 0
    for account_id in progress(_account_ids(db, period, account), f"exporting {label}"):
        try:
            entries: Iterable = finance.journal_entries(db, account_id, period, settings.gl_account)
        except FailedPrecondition as exc:
            if account:
                print(f"billing-svc: {exc}", file=sys.stderr)
                return 1
            not_invoiced += 1
            continue
        except BillingError as exc:  # an unknown account
            print(f"billing-svc: {exc}", file=sys.stderr)
            return 1
        rows += [
            [
                account_id,
                entry.gl_account,
                entry.department,
                format(entry.amount, "f"),
                entry.description,
                entry.reference,
            ]
            for entry in entries
        ]
    try:
        handle = open(output, "w", newline="") if output else sys.stdout  # noqa: SIM115
    except OSError as exc:
        print(f"billing-svc: cannot write {output}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        writer = csv.writer(handle)
        writer.writerow(
            ["account_id", "gl_account", "department", "amount", "description", "reference"]
        )
        writer.writerows(rows)
    finally:
        if output:
            handle.close()
    why = ""
    if not_invoiced:
        why = (
            f"; {not_invoiced} account(s) with no invoice for {label} yet, left out "
            f"(close it first: billing-svc close-period --period {label})"
        )
    elif not rows:
        why = f"; no invoice of {label} has an amount to post"
    print(f"{len(rows)} journal entries for {label}{why}", file=sys.stderr)
    return 0


def _purge(db, settings: Settings, export_path: str | None) -> int:
    import time

    from billing_svc.services import retention

    try:
        export = retention.CsvGzExport(export_path) if export_path else None
    except OSError as exc:
        print(f"billing-svc: cannot write {export_path}: {exc}", file=sys.stderr)
        return 2
    shown_at = [time.monotonic()]

    def report(summary: retention.PurgeSummary) -> None:  # a line every 2 s on long runs
        if time.monotonic() - shown_at[0] >= 2:
            shown_at[0] = time.monotonic()
            print(
                f"purging: {summary.deleted:,} rows deleted so far ({summary.usage_events:,} "
                "usage events)",
                file=sys.stderr,
                flush=True,
            )

    try:
        summary = retention.purge(
            db,
            retention.RetentionPolicy.of(settings),
            db.clock.now(),
            export=export,
            on_progress=report,
        )
    finally:
        if export is not None:
            export.close()
        db.dispose()  # the last checkpoint
    print(f"purge horizon: {summary.horizon:%Y-%m-%d} (usage before it is refused from now on)")
    print(
        f"usage events deleted: {summary.usage_events} from {len(summary.periods_purged)} "
        f"invoiced periods" + (f", exported to {export_path}" if export_path else "")
    )
    if summary.partitions_dropped:
        print(
            f"months of raw usage dropped whole (PostgreSQL): "
            f"{', '.join(summary.partitions_dropped)} ({summary.usage_events_kept} events of "
            "them kept)"
        )
    if not summary.complete:
        print(
            "not complete: another replica is purging raw usage, or the time ran out; run it again"
        )
    print(
        f"storage readings kept (each tenant's last before the horizon): "
        f"{summary.storage_readings_kept}"
    )
    print(
        f"webhook log deleted: {summary.outbox_events} events, {summary.deliveries} "
        f"deliveries, {summary.attempts} attempts"
    )
    print(f"idempotency records deleted: {summary.idempotency_records}")
    print(f"hourly roll-ups deleted: {summary.hourly_rollups}")
    print(f"hourly usage reports deleted: {summary.usage_reports}")
    print(f"chunks: {summary.chunks}, longest {summary.longest_chunk_seconds * 1000:.1f} ms")
    if summary.uninvoiced:
        print(
            f"kept, never invoiced ({len(summary.uninvoiced)} periods before the horizon; "
            "close them with close-period, then purge again):"
        )
        for kept in summary.uninvoiced:
            print(f"  {kept.account_id}\t{kept.period}\t{kept.messages} messages")
    return 0


def _audit_verify(db) -> int:
    from billing_svc.services.audit_trail import verify_audit_chain
    from billing_svc.storage.tables import AuditHead

    broken = verify_audit_chain(db)
    if broken is not None:
        print(f"audit chain BROKEN at record {broken.sequence}: {broken.problem}")
        return 1
    with db.read() as session:
        head = session.get(AuditHead, 1)
    print(f"audit chain intact: {head.sequence if head else 0} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
