"""A model's retention window (how long artefacts holding forgotten samples are kept): the service's default,
the manifest's value, PATCH /v1/models/{id} to change it, and the 30-day limit, answered 422 naming it."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db import session_factory
from service.settings import MAX_RETENTION_SECONDS, Settings
from service.tables import Event
from tests.service import tiny
from tests.service.factories import TenantKey


def test_a_model_registered_without_a_window_gets_the_services_default(
    client: TestClient, tenant: TenantKey, data_root: Path, settings: Settings
) -> None:
    model = tiny.register_model(client, tenant, data_root)
    assert model["retention_seconds"] == settings.retention_seconds == 7 * 86400


def test_the_manifest_sets_the_window_and_zero_means_at_once(
    client: TestClient, tenant: TenantKey, data_root: Path
) -> None:
    assert tiny.register_model(client, tenant, data_root, retention_seconds=0)["retention_seconds"] == 0


def test_a_manifest_window_above_30_days_is_refused_naming_the_limit(
    client: TestClient, tenant: TenantKey, data_root: Path
) -> None:
    dataset = tiny.register_dataset(client, tenant, data_root)
    body = tiny.manifest(dataset["id"], retention_seconds=MAX_RETENTION_SECONDS + 1)

    answer = tiny.upload(client, tenant, body, tiny.safetensors_bytes())

    assert answer.status_code == 422
    [error] = answer.json()["errors"]
    assert error["pointer"] == "#/manifest/retention_seconds"
    assert "at most 2592000 seconds (30 days)" in error["detail"]


def test_patch_changes_the_window_and_records_the_change(
    client: TestClient, tenant: TenantKey, data_root: Path, database_url: str
) -> None:
    model = tiny.register_model(client, tenant, data_root)

    answer = client.patch(f"/v1/models/{model['id']}", json={"retention_seconds": 3600}, headers=tenant.headers)

    assert answer.status_code == 200 and answer.json()["retention_seconds"] == 3600
    assert client.get(f"/v1/models/{model['id']}", headers=tenant.headers).json()["retention_seconds"] == 3600
    with session_factory(database_url)() as session:
        [event] = session.execute(select(Event).where(Event.type == "model.retention_changed")).scalars()
    assert event.data == {"from": 7 * 86400, "to": 3600}


def test_patch_refuses_a_window_above_30_days_naming_the_limit_and_changes_nothing(
    client: TestClient, tenant: TenantKey, data_root: Path
) -> None:
    model = tiny.register_model(client, tenant, data_root, retention_seconds=60)

    answer = client.patch(
        f"/v1/models/{model['id']}", json={"retention_seconds": MAX_RETENTION_SECONDS + 1}, headers=tenant.headers
    )

    assert answer.status_code == 422
    assert "at most 2592000 seconds (30 days)" in answer.json()["detail"]
    assert client.get(f"/v1/models/{model['id']}", headers=tenant.headers).json()["retention_seconds"] == 60


def test_patch_refuses_a_negative_window(client: TestClient, tenant: TenantKey, data_root: Path) -> None:
    model = tiny.register_model(client, tenant, data_root)
    answer = client.patch(f"/v1/models/{model['id']}", json={"retention_seconds": -1}, headers=tenant.headers)
    assert answer.status_code == 422


def test_patch_of_another_tenants_model_is_not_found(
    client: TestClient, tenant: TenantKey, other_tenant: TenantKey, data_root: Path
) -> None:
    model = tiny.register_model(client, tenant, data_root)
    answer = client.patch(f"/v1/models/{model['id']}", json={"retention_seconds": 0}, headers=other_tenant.headers)
    assert answer.status_code == 404


def test_patch_needs_the_write_scope(client: TestClient, tenant: TenantKey, data_root: Path) -> None:
    model = tiny.register_model(client, tenant, data_root)
    key = client.post("/v1/api-keys", json={"name": "reader", "scopes": ["read"]}, headers=tenant.headers).json()
    answer = client.patch(f"/v1/models/{model['id']}", json={"retention_seconds": 0},
                          headers={"Authorization": f"Bearer {key['key']}"})  # fmt: skip
    assert answer.status_code == 403
