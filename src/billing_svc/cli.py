"""The ``billing-svc`` command: ``serve``, ``migrate``, ``create-token`` (more operator commands
arrive with their capabilities)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from billing_svc import logs
from billing_svc.services.context import SCOPES
from billing_svc.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="billing-svc", description="The AS2 platform's billing service. Settings come from "
        "BILLING_* environment variables (see README).")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="migrate the database, then serve gRPC until SIGTERM")
    commands.add_parser("migrate", help="bring the database schema up to date and exit")
    token = commands.add_parser("create-token", help="create a bearer token, print it once")
    token.add_argument("name", help="the caller's name (shown in logs and the audit trail)")
    token.add_argument("--scope", action="append", choices=SCOPES, required=True,
                       help="a scope to grant (repeat for several)")
    args = parser.parse_args(argv)

    settings = Settings()
    logs.configure(settings.log_level)
    if args.command == "serve":
        from billing_svc.api.server import serve

        asyncio.run(serve(settings))
        return 0

    from billing_svc.storage.db import Database
    from billing_svc.storage.migrate import upgrade

    db = Database(settings.database_url)
    upgrade(db)
    if args.command == "create-token":
        from billing_svc.api.auth import create_token

        print(create_token(db, args.name, args.scope))
    return 0


if __name__ == "__main__":
    sys.exit(main())
