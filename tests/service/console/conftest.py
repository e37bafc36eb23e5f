"""Fixtures of the console tests: settings with a console secret and a signing key of their own (no state in the
checkout's var/), a signed-in client, and a tenant with a registered tiny model and a few requests."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.console.session import COOKIE_NAME
from service.settings import Settings
from tests.service import tiny
from tests.service.factories import TenantKey

SIGNING_KEY = base64.b64encode(bytes(range(32))).decode()
CONSOLE_SECRET = "console-test-secret-" + "x" * 24


@pytest.fixture
def settings(database_url: str, data_root: Path, tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home", database_url=database_url, data_root=data_root,
        storage_url=str(tmp_path / "checkpoints"), guard_max_acc_drop=tiny.GUARD_MAX_ACC_DROP,
        signing_key=SIGNING_KEY, console_secret=CONSOLE_SECRET,
    )  # fmt: skip


@pytest.fixture
def browser(settings: Settings) -> Iterator[TestClient]:
    """A second client of the same app, for the console: it keeps its own cookies and follows no redirect."""
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


def sign_in(client: TestClient, key: str, next_path: str = "") -> Any:
    response = client.post("/console/sign-in", data={"api_key": key, "next": next_path})
    assert response.status_code == 303, response.text
    assert client.cookies.get(COOKIE_NAME)
    return response


@pytest.fixture
def model(client: TestClient, tenant: TenantKey, data_root: Path) -> dict[str, Any]:
    return tiny.register_model(client, tenant, data_root)
