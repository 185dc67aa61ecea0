"""The servicers speak to the service layer only, and the service layer answers in values.

``api/`` imports nothing of ``storage`` nor the ORM (``sqlmodel``, ``sqlalchemy``): it holds a
``services.store.Database`` and gets ``services.views`` values back. No use case (a public
function of ``services/`` that takes a ``Database``) is declared to return a table row. An AST
scan, like ``test_clock.py``'s, until import-linter contracts cover every layer.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import typing
from pathlib import Path

import pytest
from sqlmodel import SQLModel

from billing_svc.services import views
from billing_svc.storage import tables

SRC = Path(__file__).resolve().parents[2] / "src" / "billing_svc"
API = SRC / "api"
SERVICES = SRC / "services"
_FORBIDDEN = ("billing_svc.storage", "sqlmodel", "sqlalchemy")
_TABLES = {
    name
    for name, value in vars(tables).items()
    if isinstance(value, type) and issubclass(value, SQLModel) and value is not SQLModel
}


def _where(path: Path) -> str:
    return str(path.relative_to(SRC)) if path.is_relative_to(SRC) else path.name


def _imports(path: Path, package: str) -> list[tuple[int, str]]:
    """Every module ``path`` imports (at the top or inside a function), relative imports
    resolved from ``package``."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{module}" if module else base
            found.append((node.lineno, module))
            # "from billing_svc import storage" imports billing_svc.storage
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _package(path: Path) -> str:
    return ".".join(path.parent.relative_to(SRC.parent).parts)


def _forbidden_imports(path: Path, package: str = "billing_svc.api") -> list[str]:
    """One line per import statement that reaches a forbidden module."""
    found: dict[int, str] = {}
    for line, module in _imports(path, package):
        if any(module == f or module.startswith(f + ".") for f in _FORBIDDEN):
            found.setdefault(line, f"{_where(path)}:{line} {module}")
    return list(found.values())


def test_api_imports_nothing_of_storage_nor_the_orm() -> None:
    sources = sorted(API.rglob("*.py"))
    assert len(sources) > 10  # the scan sees the package
    found = [hit for path in sources for hit in _forbidden_imports(path, _package(path))]
    assert found == [], (
        "api/ goes through the service layer (services.store, services.views, "
        f"the use cases), never to storage or the ORM: {found}"
    )


@pytest.mark.parametrize(
    "source",
    [
        "from billing_svc.storage.db import Database\n",
        "from billing_svc.storage import tables\n",
        "from billing_svc import storage\n",
        "import billing_svc.storage.tables\n",
        "from ..storage.tables import Account\n",
        "from .. import storage\n",
        "def f():\n    from sqlmodel import select\n",
        "import sqlalchemy.exc\n",
    ],
)
def test_the_import_scan_finds_each_kind_of_import(tmp_path: Path, source: str) -> None:
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert len(_forbidden_imports(path)) == 1


def test_the_import_scan_passes_the_service_layer(tmp_path: Path) -> None:
    path = tmp_path / "probe.py"
    path.write_text(
        "from billing_svc.services.store import Database\n"
        "from billing_svc.services import views\nfrom . import convert\n"
        "import structlog\n"
    )
    assert _forbidden_imports(path) == []


# ---------------------------------------------------------------------------------------------
# Use cases return values


def _row_returns(path: Path) -> list[str]:
    """Public functions of ``path`` that take a ``Database`` and are declared to return a table
    row (alone, in a tuple, a list, a dict or a union). A name counts as a row when the module
    imports it from ``storage.tables`` (or reads it off that module): ``domain.approvals`` has an
    ``ApprovalPolicy`` of its own, a value."""
    tree = ast.parse(path.read_text(), str(path))
    rows_named: set[str] = set()
    tables_as: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "billing_svc.storage.tables":
            rows_named |= {a.asname or a.name for a in node.names if a.name in _TABLES}
        elif isinstance(node, ast.ImportFrom) and node.module == "billing_svc.storage":
            tables_as |= {a.asname or a.name for a in node.names if a.name == "tables"}
        elif isinstance(node, ast.Import):
            tables_as |= {
                a.asname for a in node.names if a.name == "billing_svc.storage.tables" and a.asname
            }
    found = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
            continue
        takes_db = any(
            arg.annotation is not None and ast.unparse(arg.annotation) == "Database"
            for arg in [*node.args.args, *node.args.kwonlyargs]
        )
        if not takes_db or node.returns is None:
            continue
        rows = sorted(
            {n.id for n in ast.walk(node.returns) if isinstance(n, ast.Name) and n.id in rows_named}
            | {
                n.attr
                for n in ast.walk(node.returns)
                if isinstance(n, ast.Attribute)
                and isinstance(n.value, ast.Name)
                and n.value.id in tables_as
                and n.attr in _TABLES
            }
        )
        if rows:
            found.append(f"{_where(path)}:{node.lineno} {node.name} -> {', '.join(rows)}")
    return found


def test_no_use_case_returns_a_table_row() -> None:
    sources = sorted(SERVICES.glob("*.py"))
    assert len(sources) > 10
    found = [hit for path in sources for hit in _row_returns(path)]
    assert found == [], f"return a services.views value (or another value), not a row: {found}"


def test_the_row_scan_finds_a_row_returned(tmp_path: Path) -> None:
    path = tmp_path / "probe.py"
    path.write_text(
        "from billing_svc.domain.approvals import ApprovalPolicy\n"
        "from billing_svc.storage import tables as t\n"
        "from billing_svc.storage.tables import Account\n"
        "def get(db: Database, account_id: str) -> tuple[list[Account], str]:\n"
        "    ...\n"
        "def first(db: Database) -> t.Invoice | None:\n    ...\n"
        "def fine(db: Database) -> AccountView:\n    ...\n"
        "def policy(db: Database) -> ApprovalPolicy:\n    ...\n"
        "def _private(db: Database) -> Account:\n    ...\n"
        "def step(session: Session) -> Account:\n    ...\n"
    )
    assert [hit.split()[1] for hit in _row_returns(path)] == ["get", "first"]


# ---------------------------------------------------------------------------------------------
# Views copy their rows


def _view_types() -> list[type]:
    return [
        value
        for value in vars(views).values()
        if inspect.isclass(value)
        and value.__module__ == views.__name__
        and dataclasses.is_dataclass(value)
        and hasattr(value, "from_row")
    ]


def test_every_view_is_frozen_and_names_columns_of_its_row() -> None:
    kinds = _view_types()
    assert len(kinds) >= 10
    for kind in kinds:
        assert kind.__dataclass_params__.frozen, kind
        row = typing.get_type_hints(kind.from_row)["row"]
        columns = set(row.model_fields)
        fields = {field.name for field in dataclasses.fields(kind)}
        assert fields <= columns, (kind.__name__, sorted(fields - columns))


# What a transaction works on inside the service layer, never handed out of it.
_WORKING_SETS = {"carryover.Carryover", "usage_reports.PeriodRows"}


def _row_fields(kind: type) -> list[str]:
    rows = {getattr(tables, name) for name in _TABLES}
    hints = typing.get_type_hints(kind)
    return [field.name for field in dataclasses.fields(kind) if _types_in(hints[field.name]) & rows]


def _types_in(hint: object) -> set[object]:
    """``hint`` and every type inside it (``list[X] | None`` → list, X, NoneType)."""
    found = {hint}
    for argument in typing.get_args(hint):
        found |= _types_in(argument)
    return found


def test_the_services_results_hold_values_not_rows() -> None:
    import importlib

    results = []
    for path in sorted(SERVICES.glob("*.py")):
        module = importlib.import_module(f"billing_svc.services.{path.stem}")
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and value.__module__ == module.__name__
                and dataclasses.is_dataclass(value)
            ):
                results.append((f"{path.stem}.{value.__name__}", value))
    assert len(results) > 20
    holding_rows = {
        name: fields
        for name, kind in results
        if (fields := _row_fields(kind)) and name not in _WORKING_SETS
    }
    assert holding_rows == {}, "hold services.views values, not rows"
    assert {name for name, kind in results if _row_fields(kind)} == _WORKING_SETS


def test_the_field_scan_finds_a_row_inside_a_type() -> None:
    @dataclasses.dataclass(frozen=True)
    class Probe:
        accounts: list[tables.Account]
        invoice: tables.Invoice | None
        view: views.AccountView

    assert _row_fields(Probe) == ["accounts", "invoice"]
