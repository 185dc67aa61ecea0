"""Where CI runs, the ingestion kernel is built and passes its probe: otherwise the service
would silently fall back to the Python path, and the kernel's tests would be skipped."""

from __future__ import annotations

import os

import pytest

from billing_svc import native


@pytest.mark.skipif(not os.environ.get("CI"), reason="only CI insists on the kernel")
def test_the_kernel_is_built_and_probed_where_ci_runs() -> None:
    kernel, why_not = native.load()
    assert kernel is not None, why_not
