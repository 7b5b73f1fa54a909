"""Apps on the tiny bundle with a store of the test's choosing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.api.main import create_app
from service.core.config import Settings


@pytest.fixture
def make_client(tiny_bundle, tmp_path):
    """Build a client: ``make_client(database_url=..., **settings)``; closed at teardown."""
    clients = []

    def make(**overrides) -> TestClient:
        overrides.setdefault("database_url", f"sqlite:///{tmp_path / 'api.db'}")
        settings = Settings(model=str(tiny_bundle), **overrides)
        # Without API keys the app answers only requests naming a loopback host.
        client = TestClient(create_app(settings), base_url="http://localhost")
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
