"""Run Alembic migrations programmatically (``billing-svc migrate`` and at ``serve`` start)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config

from billing_svc.domain.tokens import configured_token_id, hash_token
from billing_svc.storage.db import Database

if TYPE_CHECKING:
    from billing_svc.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(db: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option(
        "sqlalchemy.url", db.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def upgrade(db: Database, revision: str = "head", *, settings: Settings | None = None) -> None:
    """Bring the schema to ``revision``. Safe to run from several replicas at once.

    ``settings`` name the ``BILLING_AUTH_TOKENS`` in force, which a revision that converts data
    per caller (``0007_tokens``) needs; without them it reads the environment's."""
    config = alembic_config(db)
    if settings is not None:
        config.attributes["configured_token_ids"] = configured_token_ids(settings)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def configured_token_ids(settings: Settings) -> dict[str, str]:
    """Caller name -> token id of every ``BILLING_AUTH_TOKENS`` token."""
    return {
        spec.name: configured_token_id(spec.token_sha256 or hash_token(spec.token or ""))
        for spec in settings.token_specs
    }
