"""Every non-2xx answer is an RFC 9457 problem document, and the OpenAPI schema says so."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.service.factories import TenantKey, count_rows

PROBLEM = "application/problem+json"
PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance"}


def test_unknown_path_is_a_404_problem(client: TestClient) -> None:
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert PROBLEM_FIELDS <= set(problem)
    assert (problem["type"], problem["title"], problem["instance"]) == ("about:blank", "Not Found", "/v1/nothing-here")


def test_wrong_method_is_a_405_problem(client: TestClient) -> None:
    response = client.put("/v1/datasets")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM


def test_malformed_json_is_a_422_problem_with_errors(client: TestClient, tenant: TenantKey) -> None:
    headers = {**tenant.headers, "Content-Type": "application/json"}
    response = client.post("/v1/datasets", content=b'{"name": "x", "format":', headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert PROBLEM_FIELDS <= set(problem)
    (error,) = problem["errors"]
    assert error["type"] == "json_invalid"
    assert error["detail"].startswith("the body is not valid JSON")


def test_each_invalid_field_is_listed_with_a_pointer(client: TestClient, tenant: TenantKey) -> None:
    response = client.post("/v1/datasets", json={"format": "tiff", "extra": 1}, headers=tenant.headers)
    assert response.status_code == 422
    pointers = {e["pointer"]: e["type"] for e in response.json()["errors"]}
    assert pointers == {"#/name": "missing", "#/format": "literal_error", "#/extra": "extra_forbidden"}


def test_invalid_path_parameter_is_a_422_problem(client: TestClient, tenant: TenantKey) -> None:
    response = client.get("/v1/datasets/not-a-uuid", headers=tenant.headers)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["location"] == ["path", "dataset_id"]
    assert "pointer" not in error


def test_unexpected_exception_is_a_500_problem_naming_the_request_id(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/crash")
    def crash() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app) as client:
        response = client.get("/crash", headers={"X-Request-ID": "req-123"})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["request_id"] == "req-123"
    assert "secret internals" not in response.text


def test_openapi_documents_problem_responses_for_every_route(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            errors = {s: r for s, r in operation["responses"].items() if int(s) >= 400}
            assert "500" in errors, f"{method} {path}"
            for status, response in errors.items():
                assert list(response["content"]) == [PROBLEM], f"{method} {path} {status}"
            if path.startswith("/v1/"):
                assert "401" in errors, f"{method} {path}"
    assert {"404", "422"} <= set(schema["paths"]["/v1/datasets/{dataset_id}"]["get"]["responses"])


def test_a_value_postgresql_cannot_store_is_a_422_problem_and_writes_nothing(
    client: TestClient, tenant: TenantKey, database_url: str
) -> None:
    # SQLite stores a NUL character in text; PostgreSQL refuses it (the schemathesis run found this one)
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite stores NUL characters")
    response = client.post("/v1/api-keys", json={"name": "a\u0000b", "scopes": ["read"]}, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["detail"] == (
        "a value in the request cannot be stored: PostgreSQL text fields cannot contain NUL (0x00) bytes; "
        "nothing was written"
    )
    assert problem["errors"][0]["type"] == "unstorable"
    assert count_rows(database_url, "api_key") == 1  # the tenant's first key only


def test_405_allows_every_method_of_a_path_served_by_several_routes(client: TestClient, tenant: TenantKey) -> None:
    # GET and POST /v1/models are two routes; Starlette alone answers "Allow: POST", hiding the GET
    response = client.request("OPTIONS", "/v1/models", headers=tenant.headers)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    job = client.request("PATCH", "/v1/jobs/00000000-0000-0000-0000-000000000000", headers=tenant.headers)
    assert (job.status_code, job.headers["allow"]) == (405, "GET, DELETE")
