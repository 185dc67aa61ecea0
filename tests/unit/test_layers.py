"""The layer contracts (``[tool.importlinter]`` in ``pyproject.toml``, docs/architecture.md): the
code keeps every one, and each one refuses the kind of import it exists for. This is the check
``./dev lint`` runs, run here by import-linter's own command on the real tree and on a copy of it
with one offending import added per contract."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACTS = {
    contract["id"]: contract["name"]
    for contract in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
}

# contract id -> (module file under src/billing_svc, the import added to it, the import the
# report must name). Each is a mistake this codebase has made or could make: the settings
# importing the services (the scope names once lived there), a servicer reading a table, SQL in
# the domain, gRPC in a service, the hot path reaching invoicing through its budget check.
OFFENCES = {
    "layers": (
        "settings.py",
        "from billing_svc.services import context",
        "billing_svc.settings -> billing_svc.services.context",
    ),
    "api-storage": (
        "api/reports.py",
        "from billing_svc.storage import tables",
        "billing_svc.api.reports -> billing_svc.storage.tables",
    ),
    "pure-domain": (
        "domain/money.py",
        "import sqlalchemy",
        "billing_svc.domain.money -> sqlalchemy",
    ),
    "no-wire-below-api": (
        "services/credits.py",
        "import grpc",
        "billing_svc.services.credits -> grpc",
    ),
    "ingestion-hot-path": (
        "services/budget_alerts.py",
        "from billing_svc.services import invoicing",
        "billing_svc.services.budget_alerts -> billing_svc.services.invoicing",
    ),
}


def lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_every_contract_is_under_test() -> None:
    assert set(OFFENCES) == set(CONTRACTS)


def test_the_code_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(CONTRACTS)} kept, 0 broken" in result.stdout, result.stdout


@pytest.fixture(scope="module")
def offending_copy(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """lint-imports over a copy of the package with every offence of ``OFFENCES`` added."""
    work = tmp_path_factory.mktemp("layers")
    package = work / "src" / "billing_svc"
    shutil.copytree(
        ROOT / "src" / "billing_svc",
        package,
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c"),
    )
    shutil.copy(ROOT / "pyproject.toml", work / "pyproject.toml")
    for module, statement, _ in OFFENCES.values():
        path = package / module
        path.write_text(path.read_text() + f"\n{statement}  # the offence under test\n")
    # The copy comes first on the path, before the editable install of the real tree.
    search_path = os.pathsep.join([str(work / "src"), str(ROOT / "generated")])
    env = {**os.environ, "PYTHONPATH": search_path}
    return lint_imports(work, env)


@pytest.mark.parametrize("contract", sorted(OFFENCES))
def test_a_contract_refuses_its_offence(
    offending_copy: subprocess.CompletedProcess[str], contract: str
) -> None:
    report = offending_copy.stdout
    assert offending_copy.returncode == 1, report + offending_copy.stderr
    assert f"{CONTRACTS[contract]} BROKEN" in report, report
    assert OFFENCES[contract][2] in report, report
    assert f"0 kept, {len(CONTRACTS)} broken" in report, report
