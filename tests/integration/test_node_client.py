"""A client in another language: Node.js (@grpc/grpc-js + @grpc/proto-loader) reading proto/."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import TOKENS, ServerThread

NODE_DIR = Path(__file__).resolve().parent.parent / "node"


@pytest.fixture(scope="module")
def node_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js is not installed")
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").exists():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent"],
            cwd=NODE_DIR,
            check=True,
            timeout=300,
            capture_output=True,
        )
    return NODE_DIR / "client.js"


def test_node_client_creates_streams_and_reads(node_client: Path, server: ServerThread) -> None:
    result = subprocess.run(
        ["node", str(node_client), server.target, TOKENS["admin"][0]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["account_id"].startswith("acc_")
    assert report["acks"] == [{"batch_id": f"node-batch-{b}", "accepted": 100} for b in range(3)]
    assert report["messages"] == "600"  # int64 as a string in JS (longs: String)
    assert report["active_tenants"] == 1
    assert report["currency"] == "USD"
