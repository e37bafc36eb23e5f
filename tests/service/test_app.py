"""The assembled app: health, metrics, request ids in headers and JSON logs, interactive docs."""

from __future__ import annotations

import io
import json
import logging

from fastapi.testclient import TestClient

from service.app import create_app
from service.observability import JsonFormatter
from service.routing import API_PREFIX
from service.settings import Settings


def test_healthz_reports_the_database_ok(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_healthz_is_503_when_the_database_is_unreachable(tmp_path) -> None:
    settings = Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", data_root=tmp_path)
    with TestClient(create_app(settings)) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"


def test_metrics_count_requests_by_route_template_and_status(client: TestClient) -> None:
    client.get("/v1/datasets/00000000-0000-0000-0000-000000000000")
    client.get("/healthz")
    text = client.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/v1/datasets/{dataset_id}",status="401"} 1.0' in text
    assert 'http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-1"}).headers["x-request-id"] == "abc-1"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id\twith tab"}).headers["x-request-id"]
    assert len(generated) == 32 and generated.isalnum()


def test_access_log_is_json_with_the_request_id(client: TestClient) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("service.access")
    access.addHandler(handler)
    try:
        client.get("/healthz", headers={"X-Request-ID": "log-me"})
    finally:
        access.removeHandler(handler)
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert (entry["request_id"], entry["route"], entry["status"]) == ("log-me", "/healthz", 200)


def test_interactive_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "Unlearning service"


def test_every_operation_but_health_and_metrics_is_under_the_one_api_prefix(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {path for path in paths if not path.startswith(f"{API_PREFIX}/")} == {"/healthz", "/metrics"}
    assert not any(path.startswith(f"{API_PREFIX}{API_PREFIX}/") for path in paths)  # routers declare none
