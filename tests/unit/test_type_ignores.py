"""Every ``# type: ignore`` in src/ names its error codes and says why (issue 13): a bare one
hides every error of its line, today's and tomorrow's, and one without a reason leaves the next
reader to rediscover it. mypy itself (``enable_error_code = ignore-without-code``,
``warn_unused_ignores``) refuses the codeless and the stale ones; this test asks for the reason,
which mypy does not."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# `# type: ignore[code, code]  # the reason`: codes in brackets, then a second comment that says
# something (at least one word character).
_IGNORE = re.compile(r"#\s*type:\s*ignore\b")
_WELL_FORMED = re.compile(r"#\s*type:\s*ignore\[[a-z0-9-]+(?:,\s*[a-z0-9-]+)*\]\s+#\s*\S*\w")


def misused_ignores(source: str) -> list[tuple[int, str]]:
    """(line, comment) of every ``type: ignore`` comment without codes or without a reason."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if (
            token.type == tokenize.COMMENT
            and _IGNORE.search(token.string)
            and not _WELL_FORMED.search(token.string)
        ):
            found.append((token.start[0], token.string))
    return found


@pytest.mark.parametrize(
    "comment",
    [
        "# type: ignore",
        "# type: ignore[attr-defined]",
        "# type: ignore[attr-defined]  #",
        "# type: ignore  # SQLModel column attribute",
        "#type:ignore[arg-type]",
        "# type: ignore[] # why",
    ],
)
def test_a_bare_or_unexplained_ignore_is_found(comment: str) -> None:
    assert misused_ignores(f"x = f()  {comment}\n") == [(1, comment)]


@pytest.mark.parametrize(
    "comment",
    [
        "# type: ignore[attr-defined]  # SQLModel column attribute",
        "# type: ignore[attr-defined,arg-type]  # SQLModel column attribute",
        "# type: ignore[union-attr, misc] # admitted: native",
    ],
)
def test_an_ignore_with_codes_and_a_reason_passes(comment: str) -> None:
    assert misused_ignores(f"x = f()  {comment}\n") == []


def test_a_string_that_mentions_an_ignore_is_not_a_comment() -> None:
    assert misused_ignores('text = "# type: ignore"\n') == []


def test_every_ignore_in_src_names_its_codes_and_its_reason() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert files, f"no Python files under {SRC}"
    misused = [
        f"{path.relative_to(SRC.parent)}:{line}: {comment}"
        for path in files
        for line, comment in misused_ignores(path.read_text())
    ]
    assert not misused, (
        "write `# type: ignore[code]  # why` (mypy's error code, then the "
        "reason):\n" + "\n".join(misused)
    )
