"""Every list pages the same way (service.pagination): a bounded `limit` and an opaque `page_token` in, `items` and
`next_page_token` out; a token that is not one the list made, for its sort and filters, is a 422 problem and
never a 500."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.pagination import MAX_PAGE_SIZE
from tests.service import tiny
from tests.service.factories import TenantKey

PROBLEM = "application/problem+json"
LISTS = ["/v1/datasets", "/v1/models", "/v1/api-keys"]
DIGITS = {"name": "digits", "format": "digits", "split_seed": 1}


def _token(content: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(content).encode()).rstrip(b"=").decode()


def _register_datasets(client: TestClient, tenant: TenantKey, names: list[str]) -> None:
    for name in names:
        response = client.post("/v1/datasets", json={**DIGITS, "name": name}, headers=tenant.headers)
        assert response.status_code == 201, response.text


def _page_token_problem(response: Any) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    (error,) = response.json()["errors"]
    assert error["location"] == ["query", "page_token"]
    return response.json()["detail"]


def test_the_openapi_schema_states_limit_and_page_token_and_no_offset_on_every_list(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in [*LISTS, "/v1/models/{model_id}/versions"]:
        params = {p["name"]: p["schema"] for p in paths[path]["get"]["parameters"] if p["in"] == "query"}
        assert (params["limit"]["minimum"], params["limit"]["maximum"], params["limit"]["default"]) == (
            1, MAX_PAGE_SIZE, 100
        ), path  # fmt: skip
        assert "page_token" in params and "offset" not in params, path
        page = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert page.rsplit("/", 1)[1].endswith("List"), path


@pytest.mark.parametrize("limit", [0, MAX_PAGE_SIZE + 1])
def test_a_limit_outside_1_to_500_is_422(client: TestClient, tenant: TenantKey, limit: int) -> None:
    response = client.get("/v1/datasets", params={"limit": limit}, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["location"] == ["query", "limit"]


def test_pages_follow_their_tokens_to_a_last_page_without_one(client: TestClient, tenant: TenantKey) -> None:
    _register_datasets(client, tenant, ["a", "b", "c", "d", "e"])
    names, token, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"page_token": token} if token else {})}
        page = client.get("/v1/datasets", params=params, headers=tenant.headers).json()
        names += [d["name"] for d in page["items"]]
        pages += 1
        token = page["next_page_token"]
        if token is None:
            break
    assert (names, pages) == (["a", "b", "c", "d", "e"], 3)


def test_a_full_last_page_says_it_is_the_last(client: TestClient, tenant: TenantKey) -> None:
    _register_datasets(client, tenant, ["a", "b"])
    page = client.get("/v1/datasets", params={"limit": 2}, headers=tenant.headers).json()
    assert len(page["items"]) == 2 and page["next_page_token"] is None


def test_api_keys_are_listed_a_page_at_a_time(client: TestClient, tenant: TenantKey) -> None:
    for name in ("one", "two"):
        client.post("/v1/api-keys", json={"name": name, "scopes": ["read"]}, headers=tenant.headers)
    first = client.get("/v1/api-keys", params={"limit": 2}, headers=tenant.headers).json()
    params = {"limit": 2, "page_token": first["next_page_token"]}
    second = client.get("/v1/api-keys", params=params, headers=tenant.headers).json()
    assert len(first["items"]) == 2 and len(second["items"]) == 1 and second["next_page_token"] is None
    assert [k["name"] for k in first["items"] + second["items"]][1:] == ["one", "two"]  # after the first admin key


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    "token",
    [
        "not a token",
        "%%%",
        "é",
        _token([1, 2]),
        _token({"v": 1}),
        _token("[" * 2000),  # a string holding deep JSON: not a token either
        base64.urlsafe_b64encode(b"[" * 3000).decode(),  # JSON nested past the parser's recursion limit
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),  # not UTF-8
    ],
)
def test_a_page_token_this_service_did_not_make_is_422(
    client: TestClient, tenant: TenantKey, path: str, token: str
) -> None:
    detail = _page_token_problem(client.get(path, params={"page_token": token}, headers=tenant.headers))
    assert "not one this service made" in detail


@pytest.mark.parametrize(
    "after",
    [
        ["2026-01-01T00:00:00", "00000000-0000-0000-0000-000000000001"],  # no time zone
        ["0001-01-01T00:00:00+01:00", "00000000-0000-0000-0000-000000000001"],  # before year 1 in UTC
        ["2026-01-01T00:00:00Z", "not-a-uuid"],
        ["2026-01-01T00:00:00Z"],  # one value short
        [None, "00000000-0000-0000-0000-000000000001"],  # created_at is never null
        [17, True],
    ],
)
def test_a_token_with_a_key_the_list_cannot_hold_is_422(client: TestClient, tenant: TenantKey, after: Any) -> None:
    token = _token({"v": 1, "list": "datasets", "sort": "created_at:asc", "filters": {}, "after": after})
    detail = _page_token_problem(client.get("/v1/datasets", params={"page_token": token}, headers=tenant.headers))
    assert "not one this service made" in detail


def test_a_token_of_one_list_is_refused_by_another(client: TestClient, tenant: TenantKey) -> None:
    _register_datasets(client, tenant, ["a", "b"])
    token = client.get("/v1/datasets", params={"limit": 1}, headers=tenant.headers).json()["next_page_token"]
    detail = _page_token_problem(client.get("/v1/api-keys", params={"page_token": token}, headers=tenant.headers))
    assert "belongs to another list ('datasets')" in detail


def test_a_token_of_one_models_versions_is_refused_for_another_model(
    client: TestClient, tenant: TenantKey, data_root: Path
) -> None:
    dataset = tiny.register_dataset(client, tenant, data_root)
    first, second = (
        tiny.upload(client, tenant, tiny.manifest(dataset["id"], name=name), tiny.safetensors_bytes()).json()
        for name in ("tiny", "tiny-2")
    )
    # what the first model's list would answer after version 1, had it a version 2
    forged_from_first = _token(
        {"v": 1, "list": "versions", "sort": "number:asc", "filters": {"model_id": first["id"]}, "after": [1]}
    )
    on_first = client.get(
        f"/v1/models/{first['id']}/versions", params={"page_token": forged_from_first}, headers=tenant.headers
    )
    assert on_first.status_code == 200 and on_first.json() == {"items": [], "next_page_token": None}
    on_second = client.get(
        f"/v1/models/{second['id']}/versions", params={"page_token": forged_from_first}, headers=tenant.headers
    )
    assert "other filters (model_id differ)" in _page_token_problem(on_second)
