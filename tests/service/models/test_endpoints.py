"""Models over HTTP: the upload is validated by the core's specs, loaded strictly, size-limited while it
streams, stored by content address as version 1, and downloadable with its sha256 as ETag."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

from service.app import create_app
from service.models.upload import BODY_ALLOWANCE_BYTES
from service.settings import Settings
from tests.service import tiny
from tests.service.factories import TenantKey, count_rows
from unlearning.models import load_checkpoint

PROBLEM = "application/problem+json"


def _stored_files(settings: Settings) -> list[Path]:
    return [p for p in Path(settings.storage_url).rglob("*") if p.is_file()]


def _nothing_written(database_url: str, settings: Settings, events_before: int) -> None:
    assert count_rows(database_url, "model") == 0
    assert count_rows(database_url, "model_version") == 0
    assert count_rows(database_url, "event") == events_before
    assert _stored_files(settings) == []


def test_upload_registers_version_1_whose_sha256_matches_the_downloaded_bytes(
    client: TestClient, tenant: TenantKey, data_root: Path
) -> None:
    model = tiny.register_model(client, tenant, data_root)
    assert model["latest_version"] == 1 and model["method"] == "amun"
    assert model["unlearn_config"]["attack"]["eps_init"] == 0.2  # library defaults filled in around it
    version = client.get(f"/v1/models/{model['id']}/versions/1", headers=tenant.headers).json()
    assert version["status"] == "ready"
    assert version["lineage"]["parent_version"] is None and version["lineage"]["method"] is None
    assert version["lineage"]["code_version"].startswith("0.1.0")

    download = client.get(version["checkpoint"]["download_url"], headers=tenant.headers)

    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == version["checkpoint"]["sha256"]
    assert len(download.content) == version["checkpoint"]["size_bytes"]
    assert download.headers["etag"] == f'"{version["checkpoint"]["sha256"]}"'
    restored = load_checkpoint(download.content)  # the library's format, architecture in its metadata
    assert all(torch.equal(restored.model.state_dict()[k], v) for k, v in tiny.trained_state().items())


def test_state_dict_saved_with_torch_save_is_accepted(client: TestClient, tenant: TenantKey, data_root: Path) -> None:
    dataset = tiny.register_dataset(client, tenant, data_root)
    response = tiny.upload(client, tenant, tiny.manifest(dataset["id"]), tiny.pickled_bytes(tiny.trained_state()))
    assert response.status_code == 201, response.text


def test_wrong_tensor_shapes_are_422_and_nothing_is_written(
    client: TestClient, tenant: TenantKey, data_root: Path, database_url: str, settings: Settings
) -> None:
    dataset = tiny.register_dataset(client, tenant, data_root)
    events_before = count_rows(database_url, "event")
    wide = tiny.manifest(dataset["id"], architecture={**tiny.manifest(dataset["id"])["architecture"], "width": 16})

    response = tiny.upload(client, tenant, wide, tiny.safetensors_bytes())

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"].endswith("checkpoint-refused")
    assert "shape mismatches" in problem["detail"]
    assert problem["errors"][0]["location"] == ["body", "checkpoint"]
    _nothing_written(database_url, settings, events_before)


@pytest.mark.parametrize("width", [5000, 10**6])
def test_architecture_far_wider_than_the_checkpoint_is_422_without_allocating_it(
    client: TestClient, tenant: TenantKey, data_root: Path, database_url: str, settings: Settings, width: int
) -> None:
    # built for real, 5,000 channels are 7 GB of weights that fill the API server's memory and 10**6 are
    # 3e14 bytes whose allocation fails (a 500); sized on the meta device they cost nothing
    dataset = tiny.register_dataset(client, tenant, data_root)
    events_before = count_rows(database_url, "event")
    body = tiny.manifest(dataset["id"], architecture={**tiny.manifest(dataset["id"])["architecture"], "width": width})

    response = tiny.upload(client, tenant, body, tiny.safetensors_bytes())

    assert response.status_code == 422, response.text
    assert response.json()["type"].endswith("checkpoint-refused")
    assert f"features.0.weight: (8, 1, 3, 3) != ({width}, 1, 3, 3)" in response.json()["detail"]
    _nothing_written(database_url, settings, events_before)


@pytest.mark.parametrize("width", [2**40, 2**70, 2.5])
def test_architecture_size_that_is_no_tensor_size_is_422(
    client: TestClient, tenant: TenantKey, data_root: Path, width: float
) -> None:
    dataset = tiny.register_dataset(client, tenant, data_root)
    body = tiny.manifest(dataset["id"], architecture={**tiny.manifest(dataset["id"])["architecture"], "width": width})

    response = tiny.upload(client, tenant, body, tiny.safetensors_bytes())

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["pointer"] == "#/manifest/architecture"


def test_pickle_that_needs_weights_only_false_is_422(
    client: TestClient, tenant: TenantKey, data_root: Path, database_url: str, settings: Settings
) -> None:
    dataset = tiny.register_dataset(client, tenant, data_root)
    events_before = count_rows(database_url, "event")
    whole_module = tiny.pickled_bytes(torch.nn.Linear(2, 2))  # unpickling it would import and run code

    response = tiny.upload(client, tenant, tiny.manifest(dataset["id"]), whole_module)

    assert response.status_code == 422
    assert "needs weights_only=False" in response.json()["detail"]
    _nothing_written(database_url, settings, events_before)


def test_upload_over_the_limit_is_413_and_nothing_is_written(
    settings: Settings, tenant: TenantKey, data_root: Path, database_url: str
) -> None:
    small = settings.model_copy(update={"max_upload_bytes": 10_000})
    with TestClient(create_app(small)) as client:
        dataset = tiny.register_dataset(client, tenant, data_root)
        events_before = count_rows(database_url, "event")
        response = tiny.upload(client, tenant, tiny.manifest(dataset["id"]), tiny.safetensors_bytes())
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert "10000 bytes" in response.json()["detail"]
    _nothing_written(database_url, small, events_before)


def test_upload_without_length_is_cut_off_while_it_streams(settings: Settings, tenant: TenantKey) -> None:
    """Drive the ASGI app directly: no Content-Length, the body arrives in chunks, and the app must stop
    reading soon after the limit instead of taking all 5 MB."""
    small = settings.model_copy(update={"max_upload_bytes": 10_000})
    request = httpx.Request(
        "POST", "http://testserver/v1/models", files={"checkpoint": ("m.safetensors", b"\0" * 5_000_000)},
        data={"manifest": "{}"},
    )  # fmt: skip
    body = request.read()
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    received: list[int] = []
    sent: list[dict] = []

    async def receive() -> dict:
        index = len(received)
        received.append(index)
        return {"type": "http.request", "body": chunks[index], "more_body": index + 1 < len(chunks)}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/models", "raw_path": b"/v1/models", "query_string": b"", "root_path": "",
        "server": ("testserver", 80), "client": ("testclient", 1),
        "headers": [(b"host", b"testserver"), (b"authorization", tenant.headers["Authorization"].encode()),
                    (b"content-type", request.headers["content-type"].encode())],
    }  # fmt: skip
    with TestClient(create_app(small)) as client:  # runs the lifespan; the call below bypasses its transport
        client.portal.call(client.app, scope, receive, send)

    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 413
    # stopped at the limit plus the manifest's allowance (about 1 MB), not after all 5 MB
    assert len(received) <= (10_000 + BODY_ALLOWANCE_BYTES) // 65536 + 1 < len(chunks) // 4


def test_another_tenants_model_is_404(
    client: TestClient, tenant: TenantKey, other_tenant: TenantKey, data_root: Path
) -> None:
    theirs = tiny.register_model(client, other_tenant, data_root)
    for path in ("", "/versions", "/versions/1", "/versions/1/checkpoint"):
        response = client.get(f"/v1/models/{theirs['id']}{path}", headers=tenant.headers)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == PROBLEM


def test_architecture_that_does_not_fit_the_dataset_is_422(
    client: TestClient, tenant: TenantKey, data_root: Path
) -> None:
    dataset = tiny.register_dataset(client, tenant, data_root)
    body = tiny.manifest(dataset["id"])
    body["architecture"]["num_classes"] = 5
    response = tiny.upload(client, tenant, body, tiny.safetensors_bytes())
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "#/manifest/architecture/num_classes"


def test_unknown_method_is_422_naming_the_allowed_ones(
    client: TestClient, tenant: TenantKey, data_root: Path
) -> None:
    dataset = tiny.register_dataset(client, tenant, data_root)
    response = tiny.upload(
        client, tenant, tiny.manifest(dataset["id"], unlearn_config={"method": "forget-all"}), tiny.safetensors_bytes()
    )
    assert response.status_code == 422
    problem = response.json()
    assert "'forget-all' is not one of" in problem["detail"]
    assert problem["errors"][0]["pointer"] == "#/manifest/unlearn_config"


def test_manifest_with_an_unknown_field_is_422(client: TestClient, tenant: TenantKey, data_root: Path) -> None:
    dataset = tiny.register_dataset(client, tenant, data_root)
    response = tiny.upload(client, tenant, tiny.manifest(dataset["id"], colour="red"), tiny.safetensors_bytes())
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "#/manifest/colour"


def test_missing_checkpoint_part_is_422(client: TestClient, tenant: TenantKey) -> None:
    response = client.post("/v1/models", files={"manifest": (None, "{}")}, headers=tenant.headers)
    assert response.status_code == 422
    assert "'checkpoint' part is missing" in response.json()["detail"]


def test_duplicate_model_name_is_409(client: TestClient, tenant: TenantKey, data_root: Path) -> None:
    model = tiny.register_model(client, tenant, data_root)
    response = tiny.upload(client, tenant, tiny.manifest(model["dataset_id"]), tiny.safetensors_bytes())
    assert response.status_code == 409


def test_checkpoint_answers_304_to_its_etag(client: TestClient, tenant: TenantKey, data_root: Path) -> None:
    model = tiny.register_model(client, tenant, data_root)
    url = f"/v1/models/{model['id']}/versions/1/checkpoint"
    etag = client.get(url, headers=tenant.headers).headers["etag"]
    response = client.get(url, headers={**tenant.headers, "If-None-Match": f'"other", {etag}'})
    assert response.status_code == 304
    assert response.content == b""
    assert client.get(url, headers={**tenant.headers, "If-None-Match": '"other"'}).status_code == 200


def test_corrupted_checkpoint_is_never_served(
    client: TestClient, tenant: TenantKey, data_root: Path, settings: Settings
) -> None:
    model = tiny.register_model(client, tenant, data_root)
    (stored,) = _stored_files(settings)
    stored.write_bytes(stored.read_bytes()[:-1] + b"x")
    response = client.get(f"/v1/models/{model['id']}/versions/1/checkpoint", headers=tenant.headers)
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert "fails its checksum" in response.json()["detail"]


def test_versions_list_and_models_list_show_the_original(
    client: TestClient, tenant: TenantKey, data_root: Path
) -> None:
    model = tiny.register_model(client, tenant, data_root)
    versions = client.get(f"/v1/models/{model['id']}/versions", headers=tenant.headers).json()
    assert [v["number"] for v in versions["items"]] == [1] and versions["next_page_token"] is None
    models = client.get("/v1/models", headers=tenant.headers).json()
    assert [m["id"] for m in models["items"]] == [model["id"]]


def test_no_answer_about_datasets_models_or_versions_names_a_server_path(
    client: TestClient, tenant: TenantKey, data_root: Path, settings: Settings
) -> None:
    model = tiny.register_model(client, tenant, data_root)
    paths = [
        "/v1/datasets", f"/v1/datasets/{model['dataset_id']}", "/v1/models", f"/v1/models/{model['id']}",
        f"/v1/models/{model['id']}/versions", f"/v1/models/{model['id']}/versions/1",
    ]  # fmt: skip
    answers = {path: client.get(path, headers=tenant.headers) for path in paths}
    assert {path: answer.status_code for path, answer in answers.items()} == dict.fromkeys(paths, 200)
    server_paths = (str(data_root.resolve()), str(Path(settings.storage_url).resolve()), "file://")
    leaks = {path: [p for p in server_paths if p in answer.text] for path, answer in answers.items()}
    assert leaks == dict.fromkeys(paths, [])
    version = answers[f"/v1/models/{model['id']}/versions/1"].json()
    assert set(version["checkpoint"]) == {"sha256", "size_bytes", "download_url"}
    assert answers[f"/v1/datasets/{model['dataset_id']}"].json()["path"] == tiny.DATASET_NAME


def test_the_original_has_no_audit(client: TestClient, tenant: TenantKey, data_root: Path) -> None:
    model = tiny.register_model(client, tenant, data_root)
    response = client.get(f"/v1/models/{model['id']}/versions/1/audit", headers=tenant.headers)
    assert response.status_code == 404
    assert "registered original" in response.json()["detail"]
