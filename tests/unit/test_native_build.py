"""Where CI runs, the ingestion kernel is built and passes its probe: otherwise the service
would silently fall back to the Python path, and the kernel's tests would be skipped."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from billing_svc import native


@pytest.mark.skipif(not os.environ.get("CI"), reason="only CI insists on the kernel")
def test_the_kernel_is_built_and_probed_where_ci_runs() -> None:
    kernel, why_not = native.load()
    assert kernel is not None, why_not


ROOT = Path(__file__).resolve().parents[2]


def test_the_c_guard_pyproject_and_dev_name_the_same_pythons() -> None:
    """The kernel's sqlite3.Connection check is only known for some CPythons: the versions the
    project installs on, the ones ./dev accepts and the ones the C source builds for agree."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    low, high = re.fullmatch(r">=3\.(\d+),<3\.(\d+)", project["requires-python"]).groups()
    supported = set(range(int(low), int(high)))
    classified = {
        int(m) for m in re.findall(r"Python :: 3\.(\d+)$", "\n".join(project["classifiers"]), re.M)
    }
    source = (ROOT / "src/billing_svc/native/_usage_kernel.c").read_text()
    c_low, c_high = re.search(
        r"#if PY_VERSION_HEX < 0x030(\w)0000 \|\| PY_VERSION_HEX >= "
        r"0x030(\w)0000\n#error",
        source,
    ).groups()
    dev = (ROOT / "dev").read_text()
    dev_low, dev_high = re.search(
        r"\(3, (\d+)\) <= sys\.version_info\[:2\] <= \(3, (\d+)\)", dev
    ).groups()
    assert supported == {11, 12, 13}
    assert classified == supported
    assert set(range(int(c_low, 16), int(c_high, 16))) == supported
    assert set(range(int(dev_low), int(dev_high) + 1)) == supported
