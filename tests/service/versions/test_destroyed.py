"""A version whose checkpoint the erasure sweep destroyed: its download answers 410 Gone with a problem body
naming when and why (even to a caller holding its ETag), while its record, audit and lineage stay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from service.db import session_factory
from service.erasure.service import sweep
from service.settings import Settings
from tests.service import tiny
from tests.service.erasure.ledger import forget
from tests.service.factories import TenantKey


def _destroy_version_1(client: TestClient, tenant: TenantKey, settings: Settings, data_root: Path) -> dict[str, Any]:
    model = tiny.register_model(client, tenant, data_root, retention_seconds=0)
    forget(client, tenant, settings, model["id"], [tiny.sample_id(0), tiny.sample_id(1)])
    assert len(sweep(session_factory(settings.database_url), settings=settings).destroyed_versions) == 1
    return client.get(f"/v1/models/{model['id']}/versions/1", headers=tenant.headers).json()


def test_a_destroyed_checkpoint_answers_410_naming_when_and_why(
    client: TestClient, tenant: TenantKey, settings: Settings, data_root: Path
) -> None:
    version = _destroy_version_1(client, tenant, settings, data_root)

    answer = client.get(version["checkpoint"]["download_url"], headers=tenant.headers)

    assert answer.status_code == 410
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"] == "urn:unlearning:problem:checkpoint-destroyed"
    assert "the checkpoint of version 1 was destroyed at" in problem["detail"]
    assert "version 2 forgot" in problem["detail"] and "retention window of 0 s" in problem["detail"]


def test_a_caller_holding_the_destroyed_checkpoints_etag_is_told_it_is_gone(
    client: TestClient, tenant: TenantKey, settings: Settings, data_root: Path
) -> None:
    version = _destroy_version_1(client, tenant, settings, data_root)
    etag = f'"{version["checkpoint"]["sha256"]}"'

    answer = client.get(version["checkpoint"]["download_url"], headers={**tenant.headers, "If-None-Match": etag})

    assert answer.status_code == 410
