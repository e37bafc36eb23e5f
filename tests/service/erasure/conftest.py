"""Fixtures of the erasure tests: settings that sign (receipts) and allow a loopback callback receiver, the
receiver itself, and a model registered with the "at once" window (retention_seconds 0)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.settings import Settings
from tests.service import tiny
from tests.service.callbacks.conftest import receiver  # noqa: F401  (a fixture these tests use)
from tests.service.factories import TenantKey

SEED_B64 = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def settings(database_url: str, data_root: Path, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        data_root=data_root,
        storage_url=str(tmp_path / "checkpoints"),
        signing_key=SEED_B64,
        signing_key_file=tmp_path / "unused-key",
        allow_private_callbacks=True,
        guard_max_acc_drop=tiny.GUARD_MAX_ACC_DROP,
    )


@pytest.fixture
def model(client: TestClient, tenant: TenantKey, data_root: Path) -> dict[str, Any]:
    """The tiny model with the "at once" window: a superseded artefact is due at the next sweep."""
    return tiny.register_model(client, tenant, data_root, retention_seconds=0)
