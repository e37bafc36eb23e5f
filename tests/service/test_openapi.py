"""The OpenAPI document: docs/openapi.json is what `python -m service openapi` prints; every operation has a
readable operationId, every body an example and every JSON answer a declared shape; the callbacks are webhooks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from service.__main__ import main
from service.app import create_app
from service.settings import Settings

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
REGENERATE = "python -m service openapi > docs/openapi.json"
CAMEL_CASE_VERB_NOUN = re.compile(r"[a-z]+(?:[A-Z][a-z0-9]*)+")


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # the document needs no database: a throwaway ledger path is never opened
    settings = Settings(database_url=f"sqlite:///{tmp_path_factory.mktemp('schema') / 'unused.db'}")
    return create_app(settings).openapi()


def _operations(openapi: dict[str, Any], section: str = "paths") -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, item in openapi[section].items() for method, op in item.items()]


def _component(openapi: dict[str, Any], ref: str) -> dict[str, Any]:
    return openapi["components"]["schemas"][ref.removeprefix("#/components/schemas/")]


def _differences(committed: Any, current: Any, where: str = "", depth: int = 3) -> list[str]:
    """Where two documents differ, named down to `depth` levels (e.g. paths./v1/jobs.get)."""
    if not (isinstance(committed, dict) and isinstance(current, dict)) or depth == 0:
        return [] if committed == current else [where or "the document"]
    keys = sorted(set(committed) | set(current))
    return [d for key in keys for d in _differences(committed.get(key), current.get(key), f"{where}.{key}".lstrip("."),
                                                    depth - 1)]  # fmt: skip


def test_docs_openapi_json_is_what_python_m_service_openapi_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["openapi"]) == 0
    printed = capsys.readouterr().out
    stale = _differences(json.loads(DOCUMENT.read_text(encoding="utf-8")), json.loads(printed))
    assert not stale, f"docs/openapi.json is out of date at {stale[:10]}: regenerate it with `{REGENERATE}`"
    assert DOCUMENT.read_text(encoding="utf-8") == printed, f"docs/openapi.json is not formatted as `{REGENERATE}` writes it"


def test_every_operation_has_a_unique_camel_case_verb_noun_operation_id(openapi: dict[str, Any]) -> None:
    ids = [op["operationId"] for section in ("paths", "webhooks") for _, _, op in _operations(openapi, section)]
    assert [i for i in ids if not CAMEL_CASE_VERB_NOUN.fullmatch(i)] == []
    assert len(ids) == len(set(ids))
    assert "submitDeletionRequest" in ids and "deletionRequestCompleted" in ids


def test_every_request_body_shows_an_example(openapi: dict[str, Any]) -> None:
    without = []
    for method, path, op in _operations(openapi):
        for media_type, content in op.get("requestBody", {}).get("content", {}).items():
            schema = content["schema"]
            # an optional body (tuning's) is anyOf its model and null
            schema = next((s for s in schema.get("anyOf", []) if "$ref" in s), schema)
            schema = _component(openapi, schema["$ref"]) if "$ref" in schema else schema
            parts = schema.get("properties", {}).values() if media_type == "multipart/form-data" else []
            if not ("examples" in schema or "examples" in content or any("examples" in part for part in parts)):
                without.append(f"{method.upper()} {path} ({media_type})")
    assert without == []


def test_every_example_of_a_request_body_is_valid_for_its_model(openapi: dict[str, Any]) -> None:
    from service.datasets.schemas import DatasetCreate
    from service.jobs.schemas import ReferenceModelsCreate, TuningCreate
    from service.models.schemas import ModelManifest, ModelUpdate
    from service.requests.schemas import DeletionRequestCreate
    from service.tenants.schemas import ApiKeyCreate

    models = [ApiKeyCreate, DatasetCreate, ModelUpdate, ReferenceModelsCreate, TuningCreate, DeletionRequestCreate]
    for model in models:
        for example in openapi["components"]["schemas"][model.__name__]["examples"]:
            model.model_validate(example)  # raises naming the field an example gets wrong
    upload = openapi["paths"]["/v1/models"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    for manifest in upload["properties"]["manifest"]["examples"]:
        ModelManifest.model_validate_json(manifest)


def test_every_json_answer_has_a_declared_shape(openapi: dict[str, Any]) -> None:
    untyped = []
    for method, path, op in _operations(openapi):
        for status, answer in op["responses"].items():
            schema = answer.get("content", {}).get("application/json", {}).get("schema")
            if status.startswith("2") and schema is not None:
                refs = [schema] if "$ref" in schema else schema.get("oneOf", [])
                if not refs or not all("$ref" in ref for ref in refs):
                    untyped.append(f"{method.upper()} {path} {status}")
    assert untyped == []


def test_the_audit_answers_either_schema_of_report_by_its_schema_field(openapi: dict[str, Any]) -> None:
    answer = openapi["paths"]["/v1/models/{model_id}/versions/{number}/audit"]["get"]["responses"]["200"]
    schema = answer["content"]["application/json"]["schema"]
    assert schema["discriminator"]["mapping"] == {
        "unlearning.audit.report/2": "#/components/schemas/AuditReportRead",
        "unlearning.audit.report/1": "#/components/schemas/LegacyAuditReportRead",
    }


def test_each_webhook_declares_its_payload_and_the_standard_webhooks_headers(openapi: dict[str, Any]) -> None:
    for _, name, op in _operations(openapi, "webhooks"):
        headers = {p["name"] for p in op["parameters"] if p["in"] == "header" and p["required"]}
        assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}, name
        payload = _component(openapi, op["requestBody"]["content"]["application/json"]["schema"]["$ref"])
        assert payload["properties"]["type"]["const"] == name
        assert set(payload["required"]) == {"type", "timestamp", "data"}
        assert {"204", "410", "429", "503"} <= set(op["responses"])
