"""The documentation as a reader of a clone meets it: every relative link of README.md,
BENCHMARKS.md and docs/*.md leads to a file of the clone (and to a heading of it, when the link
names one), and docs/rpc-reference.md is what ``./dev docs`` writes from the proto files."""

from __future__ import annotations

import functools
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from markdown_it import MarkdownIt

from billing_svc.api.auth import METHOD_SCOPES
from tools import rpc_reference

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]

_MARKDOWN = MarkdownIt("commonmark").enable("table")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: its text in lower case, punctuation dropped, each
    space a hyphen."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids += [value for name, value in attrs if name in ("id", "name") and value]


@functools.cache
def anchors(path: Path) -> set[str]:
    """Every anchor a link into ``path`` may name: its headings' (a repeated heading gets -1,
    -2, ... as on GitHub) and the ids of its HTML elements."""
    tokens = _MARKDOWN.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    counts: dict[str, int] = {}
    html = _Ids()
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            inline = tokens[index + 1]
            text = "".join(
                child.content
                for child in inline.children or ()
                if child.type in ("text", "code_inline")
            )
            anchor = github_anchor(text)
            seen = counts.get(anchor, 0)
            counts[anchor] = seen + 1
            found.add(anchor if not seen else f"{anchor}-{seen}")
        for child in [token, *(token.children or ())]:
            if child.type in ("html_block", "html_inline"):
                html.feed(child.content)
    return found | set(html.ids)


def relative_links(path: Path) -> list[tuple[int, str]]:
    """``(line, target)`` of every link and image of ``path`` that is not a URL (code blocks
    and code spans hold no links)."""
    links = []
    for token in _MARKDOWN.parse(path.read_text(encoding="utf-8")):
        line = token.map[0] + 1 if token.map else 0
        for child in token.children or ():
            target = (
                child.attrGet("href")
                if child.type == "link_open"
                else child.attrGet("src")
                if child.type == "image"
                else None
            )
            if isinstance(target, str) and not _SCHEME.match(target):
                links.append((line, target))
    return links


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Why each relative link of ``path`` leads nowhere inside ``root``; empty when none does."""
    broken = []
    for line, target in relative_links(path):
        where, _, fragment = target.partition("#")
        destination = (path.parent / unquote(where)).resolve() if where else path
        problem = None
        if not destination.is_relative_to(root.resolve()):
            problem = "leads out of the clone"
        elif not destination.exists():
            problem = "names a file that does not exist"
        elif (
            fragment
            and destination.suffix == ".md"
            and unquote(fragment) not in anchors(destination)
        ):
            problem = f"names an anchor #{fragment} that {destination.name} does not have"
        if problem:
            broken.append(f"{path.relative_to(root)}:{line}: ({target}) {problem}")
    return broken


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_clone(document: Path) -> None:
    assert broken_links(document) == []


def test_the_documentation_is_in_the_clone() -> None:
    names = {path.name for path in DOCUMENTS}
    assert {"domain.md", "webhooks.md", "decisions.md", "rpc-reference.md"} <= names
    linked = {target.partition("#")[0] for _, target in relative_links(ROOT / "README.md")}
    assert {
        "docs/domain.md",
        "docs/webhooks.md",
        "docs/decisions.md",
        "docs/rpc-reference.md",
    } <= linked


def test_the_link_check_sees_a_missing_file_a_missing_heading_and_a_way_out(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    (clone / "docs").mkdir(parents=True)
    (clone / "docs" / "guide.md").write_text(
        '# A guide\n\n## Closing `periods`\n\n## Closing `periods`\n\n<a id="kept"></a>\n'
    )
    readme = clone / "README.md"
    readme.write_text(
        "[ok](docs/guide.md) [ok](docs/guide.md#closing-periods) "
        "[ok](docs/guide.md#closing-periods-1) [ok](docs/guide.md#kept) [ok](#title)\n"
        "[web](https://example.com/x.md) `[code](nowhere.md)`\n\n"
        "# Title\n\n"
        "[gone](docs/missing.md)\n\n[no heading](docs/guide.md#opening)\n\n"
        "[out](../shared/spec/PRODUCT.md)\n"
    )
    (tmp_path / "shared" / "spec").mkdir(parents=True)
    (tmp_path / "shared" / "spec" / "PRODUCT.md").write_text("# Product\n")
    assert broken_links(readme, clone) == [
        "README.md:6: (docs/missing.md) names a file that does not exist",
        "README.md:8: (docs/guide.md#opening) names an anchor #opening that guide.md does not have",
        "README.md:10: (../shared/spec/PRODUCT.md) leads out of the clone",
    ]


def test_the_rpc_reference_is_what_dev_docs_writes() -> None:
    committed = (ROOT / "docs" / "rpc-reference.md").read_text(encoding="utf-8")
    assert committed == rpc_reference.render(), "run ./dev docs and commit the result"


def test_the_reference_gives_every_rpc_its_scope_and_a_comment() -> None:
    text = rpc_reference.render()
    for method, scope in METHOD_SCOPES.items():
        name = method.rsplit("/", 1)[1]
        section = text.split(f"\n### {name}\n", 1)[1].split("\n#### ", 1)[0]
        assert f"· scope `{scope}`" in section
        assert "Errors:" in section or name == "ListPlans", f"{name} has no comment on errors"


def test_an_rpc_without_a_scope_is_refused() -> None:
    files = rpc_reference.descriptors()
    usage = next(
        service for file in files.file for service in file.service if service.name == "UsageService"
    )
    usage.method.add(
        name="ForgetUsage",
        input_type=".as2aas.billing.v1.GetCurrentUsageRequest",
        output_type=".as2aas.billing.v1.GetCurrentUsageResponse",
    )
    with pytest.raises(
        rpc_reference.ContractError, match=re.escape("UsageService.ForgetUsage has no scope")
    ):
        rpc_reference.render(files)
