"""Operations that take a JSON body refuse other media types with 415 and non-UTF-8 bodies with 422, as
problem documents, and the OpenAPI schema lists the 415 for every one of them."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.service.factories import TenantKey

PROBLEM = "application/problem+json"


def _json_body_operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # the schema needs no database: a throwaway ledger path is never opened
    settings = Settings(database_url=f"sqlite:///{tmp_path_factory.mktemp('schema') / 'unused.db'}")
    return create_app(settings).openapi()


def test_text_plain_body_on_a_json_endpoint_is_415_problem(client: TestClient, tenant: TenantKey) -> None:
    headers = {**tenant.headers, "Content-Type": "text/plain"}
    response = client.post("/v1/api-keys", content=b'{"name": "x", "scopes": ["read"]}', headers=headers)
    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert (problem["status"], problem["title"]) == (415, "Unsupported Media Type")
    assert "send Content-Type: application/json (got Content-Type 'text/plain')" in problem["detail"]


def test_form_body_on_a_json_endpoint_is_415_problem(client: TestClient, tenant: TenantKey) -> None:
    response = client.post("/v1/datasets", data={"name": "digits", "format": "digits"}, headers=tenant.headers)
    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM
    assert "application/x-www-form-urlencoded" in response.json()["detail"]


def test_body_without_a_content_type_is_415(client: TestClient, tenant: TenantKey) -> None:
    response = client.post("/v1/api-keys", content=b'{"name": "x", "scopes": ["read"]}', headers=tenant.headers)
    assert response.status_code == 415
    assert "got no Content-Type" in response.json()["detail"]


def test_json_with_a_charset_parameter_is_accepted(client: TestClient, tenant: TenantKey) -> None:
    headers = {**tenant.headers, "Content-Type": "application/json; charset=utf-8"}
    response = client.post("/v1/api-keys", content=b'{"name": "x", "scopes": ["read"]}', headers=headers)
    assert response.status_code == 201, response.text


def test_empty_body_is_left_to_validation_which_names_it_missing(client: TestClient, tenant: TenantKey) -> None:
    response = client.post("/v1/api-keys", headers=tenant.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "missing"


def test_json_body_that_is_not_utf8_is_422_json_invalid(client: TestClient, tenant: TenantKey) -> None:
    # FastAPI alone answers this with an undocumented 400 "There was an error parsing the body"
    headers = {**tenant.headers, "Content-Type": "application/json"}
    response = client.post("/v1/datasets", content=b'{"name": "\xff"}', headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    (error,) = response.json()["errors"]
    assert error["type"] == "json_invalid"
    assert error["detail"] == "the body is not valid JSON: it is not UTF-8 text (byte 10 is 0xff)"


def test_every_json_body_operation_declares_415(openapi: dict[str, Any]) -> None:
    operations = _json_body_operations(openapi)
    assert len(operations) >= 4  # api keys, datasets, reference models, deletion requests
    undeclared = [f"{method.upper()} {path}" for method, path, op in operations if "415" not in op["responses"]]
    assert undeclared == []


def test_every_json_body_operation_answers_text_plain_with_415(
    client: TestClient, tenant: TenantKey, openapi: dict[str, Any]
) -> None:
    # guards routers added later: one without route_class=JsonBodyRoute answers 422 here
    headers = {**tenant.headers, "Content-Type": "text/plain"}
    answers = {}
    for method, path, _ in _json_body_operations(openapi):
        concrete = path.replace("{model_id}", "00000000-0000-0000-0000-000000000000")
        response = client.request(method, concrete, content=b"{}", headers=headers)
        answers[f"{method.upper()} {path}"] = response.status_code
    assert set(answers.values()) == {415}, answers


def test_the_multipart_model_upload_still_takes_multipart(client: TestClient, tenant: TenantKey) -> None:
    # not a JSON-body route: its own parser answers, and a missing part is a 422, not a 415
    response = client.post("/v1/models", files={"manifest": (None, "{}")}, headers=tenant.headers)
    assert response.status_code == 422
    assert "'checkpoint' part is missing" in response.json()["detail"]
