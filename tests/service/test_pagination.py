"""Every list endpoint takes the same bounded limit and offset: past what SQL's OFFSET holds is a 422 problem,
the largest offset it holds an empty page, and the OpenAPI schema states both bounds."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.pagination import MAX_OFFSET
from tests.service import tiny
from tests.service.factories import TenantKey

PROBLEM = "application/problem+json"
LISTS = ["/v1/datasets", "/v1/models"]


@pytest.mark.parametrize("path", LISTS)
def test_offset_of_2_to_the_63_is_422_not_a_database_overflow(client: TestClient, tenant: TenantKey, path: str) -> None:
    response = client.get(path, params={"offset": 2**63}, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    (error,) = response.json()["errors"]
    assert error["location"] == ["query", "offset"]
    assert error["type"] == "less_than_equal"


@pytest.mark.parametrize("path", LISTS)
def test_the_largest_offset_gives_an_empty_last_page(client: TestClient, tenant: TenantKey, path: str) -> None:
    response = client.get(path, params={"offset": MAX_OFFSET, "limit": 500}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "next_offset": None}


def test_versions_offset_of_2_to_the_63_is_422(client: TestClient, tenant: TenantKey, data_root: Path) -> None:
    model = tiny.register_model(client, tenant, data_root)
    versions = f"/v1/models/{model['id']}/versions"
    assert client.get(versions, params={"offset": 2**63}, headers=tenant.headers).status_code == 422
    largest = client.get(versions, params={"offset": MAX_OFFSET}, headers=tenant.headers)
    assert largest.status_code == 200 and largest.json()["items"] == []


def test_openapi_states_the_bounds_of_limit_and_offset_on_every_list(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    bounds = {}
    for path in [*LISTS, "/v1/models/{model_id}/versions"]:
        params = {p["name"]: p["schema"] for p in paths[path]["get"]["parameters"] if p["in"] == "query"}
        bounds[path] = {name: (params[name]["minimum"], params[name]["maximum"]) for name in ("limit", "offset")}
    assert set(map(str, bounds.values())) == {str({"limit": (1, 500), "offset": (0, 2**63 - 1)})}
