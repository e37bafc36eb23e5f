"""Version routes bound the version number by its INTEGER column, so no number reaches the database as an
overflow: out-of-range numbers are 422 problems on every sub-resource, in-range unknown ones 404."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.versions.endpoints import MAX_VERSION_NUMBER
from tests.service import tiny
from tests.service.factories import TenantKey

PROBLEM = "application/problem+json"
SUB_RESOURCES = ["", "/checkpoint", "/audit", "/audit.html", "/certificate"]


@pytest.fixture
def model(client: TestClient, tenant: TenantKey, data_root: Path) -> dict[str, Any]:
    return tiny.register_model(client, tenant, data_root)


@pytest.mark.parametrize("number", [2**63, 2**31, 0, -1])
@pytest.mark.parametrize("sub", SUB_RESOURCES)
def test_version_number_outside_the_column_range_is_422(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], sub: str, number: int
) -> None:
    response = client.get(f"/v1/models/{model['id']}/versions/{number}{sub}", headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    (error,) = response.json()["errors"]
    assert error["location"] == ["path", "number"]


@pytest.mark.parametrize("sub", SUB_RESOURCES)
def test_the_largest_version_number_reaches_the_database_and_is_404(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], sub: str
) -> None:
    response = client.get(f"/v1/models/{model['id']}/versions/{MAX_VERSION_NUMBER}{sub}", headers=tenant.headers)
    assert response.status_code == 404, response.text
    assert response.json()["detail"] == f"model {model['id']} has no version {MAX_VERSION_NUMBER}"


def test_openapi_states_the_version_number_bounds(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    numbered = [path for path in paths if "{number}" in path]
    assert {f"/v1/models/{{model_id}}/versions/{{number}}{sub}" for sub in SUB_RESOURCES} <= set(numbered)
    for path in numbered:
        (number,) = [p["schema"] for p in paths[path]["get"]["parameters"] if p["name"] == "number"]
        assert (number["minimum"], number["maximum"]) == (1, 2**31 - 1), path
