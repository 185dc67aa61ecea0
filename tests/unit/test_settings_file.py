"""``.env.example`` and the README's settings table name every setting, and only those: a
setting added to ``Settings`` without them, or one of them left behind by a removed setting,
fails here."""

from __future__ import annotations

import re
from pathlib import Path

from billing_svc.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
VARIABLES = {f"BILLING_{name.upper()}": name for name in Settings.model_fields}


def example_lines() -> list[str]:
    return (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()


def example_values() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in example_lines():
        if line.strip() and not line.startswith("#"):
            variable, _, value = line.partition("=")
            assert variable not in values, f"{variable} twice in .env.example"
            values[variable] = value
    return values


def test_env_example_names_every_setting_and_only_settings() -> None:
    named = set(example_values())
    assert sorted(set(VARIABLES) - named) == [], "settings missing from .env.example"
    assert sorted(named - set(VARIABLES)) == [], ".env.example names settings that do not exist"


def test_env_example_shows_each_default() -> None:
    for variable, value in example_values().items():
        name = VARIABLES[variable]
        shown = Settings(_env_file=None, **{name: value})  # type: ignore[call-arg]
        assert getattr(shown, name) == Settings.model_fields[name].default, variable


def test_env_example_comments_each_setting() -> None:
    lines = example_lines()
    for index, line in enumerate(lines):
        if line.strip() and not line.startswith("#"):
            assert index and lines[index - 1].startswith("# "), f"no comment above {line}"


def test_readme_settings_table_names_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    in_table = set(re.findall(r"`(BILLING_[A-Z0-9_]+)`", section))
    assert sorted(set(VARIABLES) - in_table) == []
    assert sorted(in_table - set(VARIABLES)) == []
