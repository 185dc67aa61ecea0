"""Each setting an operator can get wrong is refused by ``load_settings`` with one line naming
its ``BILLING_*`` variable, the value and what is expected (the CLI prints that line)."""

from __future__ import annotations

import pytest

from billing_svc.settings import SettingsError, load_settings

CASES = [
    (
        "webhook_allow_private_networks",
        "maybe",
        "BILLING_WEBHOOK_ALLOW_PRIVATE_NETWORKS='maybe' is not valid: expected true or false",
    ),
    (
        "period_close_grace_seconds",
        "1h",
        "BILLING_PERIOD_CLOSE_GRACE_SECONDS='1h' is not valid: expected a whole number",
    ),
    (
        "webhook_timeout_seconds",
        "ten",
        "BILLING_WEBHOOK_TIMEOUT_SECONDS='ten' is not valid: expected a number",
    ),
    (
        "log_level",
        "loud",
        "BILLING_LOG_LEVEL='loud' is not valid: expected one of debug, info, "
        "warning, error, critical",
    ),
    (
        "database_url",
        "postgres://app:pw@db/billing",
        "BILLING_DATABASE_URL='postgres://app:pw@db/billing' is not valid: use the "
        "postgresql+psycopg:// scheme (psycopg 3), e.g. postgresql+psycopg://app:***@db/billing",
    ),
    (
        "database_url",
        "postgresql://app@db/billing",
        "BILLING_DATABASE_URL='postgresql://app@db/billing' is not valid: use the "
        "postgresql+psycopg:// scheme (psycopg 3), e.g. postgresql+psycopg://app@db/billing",
    ),
    (
        "database_url",
        "mysql://app@db/billing",
        "BILLING_DATABASE_URL='mysql://app@db/billing' is not valid: expected sqlite:///FILE or "
        "postgresql+psycopg://USER:PASSWORD@HOST/DATABASE",
    ),
    ("auth_tokens", "{}", "BILLING_AUTH_TOKENS: expected a JSON list of tokens"),
    (
        "auth_tokens",
        '[{"name": "a", "scopes": ["admin"]}]',
        "BILLING_AUTH_TOKENS: token 'a' needs 'token' or 'token_sha256'",
    ),
    ("dunning_schedule_days", "0", "BILLING_DUNNING_SCHEDULE_DAYS: comma-separated days > 0"),
    (
        "webhook_retry_schedule",
        "5,x",
        "BILLING_WEBHOOK_RETRY_SCHEDULE: expected "
        "comma-separated numbers (could not convert string to float: 'x')",
    ),
]


@pytest.mark.parametrize(("field", "value", "message"), CASES)
def test_a_bad_setting_is_one_line_naming_its_variable(
    field: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(_env_file=None, **{field: value})
    assert str(error.value) == message
    assert error.value.exit_code == 2


def test_good_settings_load() -> None:
    settings = load_settings(
        _env_file=None,
        database_url="postgresql+psycopg://a:b@h/db",
        log_level="DEBUG",
        dunning_schedule_days="1,2",
    )
    assert (settings.log_level, settings.dunning_days) == ("debug", (1, 2))
