from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from billing_svc import logs
from tests.support import Client, ServerThread, fresh_database, settings_for_tests

logs.configure("warning")

# No timing in the suite: Hypothesis's default 200 ms deadline per example (and its health check
# on slow data generation) fails a correct test on a loaded machine, which proves nothing.
settings.register_profile("billing", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("billing")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """One real server for the session; tests make their own accounts, so they do not collide."""
    with fresh_database(str(tmp_path_factory.mktemp("db"))) as url:
        running = ServerThread(settings_for_tests(url)).start()
        yield running
        running.stop()


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    c = Client(server.target)
    yield c
    c.close()
