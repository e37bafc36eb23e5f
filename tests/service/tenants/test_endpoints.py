"""API keys over HTTP: authentication, scopes, creation, listing and revocation within a tenant."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.service.factories import TenantKey, count_rows

PROBLEM = "application/problem+json"


def _new_key(client: TestClient, owner: TenantKey, scopes: list[str], name: str = "workflow") -> dict:
    response = client.post("/v1/api-keys", json={"name": name, "scopes": scopes}, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_request_without_key_is_401_problem(client: TestClient) -> None:
    response = client.get("/v1/api-keys")
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["status"] == 401


def test_malformed_key_is_401(client: TestClient, tenant: TenantKey) -> None:
    response = client.get("/v1/api-keys", headers={"Authorization": "Bearer not-a-key"})
    assert response.status_code == 401
    assert "malformed" in response.json()["detail"]


def test_key_with_known_prefix_but_wrong_secret_is_401(client: TestClient, tenant: TenantKey) -> None:
    forged = tenant.key[:13] + "x" * (len(tenant.key) - 13)
    response = client.get("/v1/api-keys", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.json()["detail"] == "unknown API key"


def test_revoked_key_is_401(client: TestClient, tenant: TenantKey) -> None:
    created = _new_key(client, tenant, ["read"])
    assert client.delete(f"/v1/api-keys/{created['id']}", headers=tenant.headers).status_code == 204
    response = client.get("/v1/datasets", headers={"Authorization": f"Bearer {created['key']}"})
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_created_key_is_shown_once_and_authenticates(client: TestClient, tenant: TenantKey) -> None:
    created = _new_key(client, tenant, ["write", "read"])
    assert created["key"].startswith(created["prefix"] + "_")
    assert created["scopes"] == ["write", "read"]
    listed = client.get("/v1/api-keys", headers=tenant.headers).json()["items"]
    assert {k["prefix"] for k in listed} >= {created["prefix"]}
    assert all("key" not in k for k in listed)
    own = client.get("/v1/datasets", headers={"Authorization": f"Bearer {created['key']}"})
    assert own.status_code == 200


def test_key_secret_is_stored_only_as_its_hash(client: TestClient, tenant: TenantKey, database_url: str) -> None:
    from sqlalchemy import text

    from service.db import make_engine

    created = _new_key(client, tenant, ["read"])
    engine = make_engine(database_url)
    with engine.connect() as conn:
        stored = [tuple(map(str, row)) for row in conn.execute(text("SELECT * FROM api_key"))]
    engine.dispose()
    assert not any(created["key"] in value for row in stored for value in row)


def test_key_without_admin_scope_cannot_manage_keys(client: TestClient, tenant: TenantKey) -> None:
    writer = _new_key(client, tenant, ["write"])
    response = client.get("/v1/api-keys", headers={"Authorization": f"Bearer {writer['key']}"})
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM


def test_unknown_scope_is_422(client: TestClient, tenant: TenantKey) -> None:
    response = client.post("/v1/api-keys", json={"name": "x", "scopes": ["root"]}, headers=tenant.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "#/scopes/0"


def test_listing_shows_only_the_callers_tenants_keys(
    client: TestClient, tenant: TenantKey, other_tenant: TenantKey
) -> None:
    other = _new_key(client, other_tenant, ["read"], name="theirs")
    listed = client.get("/v1/api-keys", headers=tenant.headers).json()["items"]
    assert other["prefix"] not in {k["prefix"] for k in listed}


def test_revoking_another_tenants_key_is_404(client: TestClient, tenant: TenantKey, other_tenant: TenantKey) -> None:
    theirs = _new_key(client, other_tenant, ["read"])
    response = client.delete(f"/v1/api-keys/{theirs['id']}", headers=tenant.headers)
    assert response.status_code == 404
    still_works = client.get("/v1/datasets", headers={"Authorization": f"Bearer {theirs['key']}"})
    assert still_works.status_code == 200


def test_revoking_the_last_admin_key_is_409(client: TestClient, tenant: TenantKey) -> None:
    keys = client.get("/v1/api-keys", headers=tenant.headers).json()["items"]
    (admin,) = [k for k in keys if "admin" in k["scopes"]]
    response = client.delete(f"/v1/api-keys/{admin['id']}", headers=tenant.headers)
    assert response.status_code == 409
    assert client.get("/v1/api-keys", headers=tenant.headers).status_code == 200


def test_revoking_twice_records_one_event(client: TestClient, tenant: TenantKey, database_url: str) -> None:
    created = _new_key(client, tenant, ["read"])
    before = count_rows(database_url, "event")
    for _ in range(2):
        assert client.delete(f"/v1/api-keys/{created['id']}", headers=tenant.headers).status_code == 204
    assert count_rows(database_url, "event") == before + 1


def test_key_creation_appends_an_event(client: TestClient, tenant: TenantKey, database_url: str) -> None:
    before = count_rows(database_url, "event")
    _new_key(client, tenant, ["read"])
    assert count_rows(database_url, "event") == before + 1
