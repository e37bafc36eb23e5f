"""Datasets over HTTP: registration validated by the core loader, confined to the data root, tenant-scoped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from service.app import create_app
from service.settings import Settings
from tests.service.factories import TenantKey, count_rows

PROBLEM = "application/problem+json"
DIGITS = {"name": "digits", "format": "digits"}


def _write_npz(folder: Path, *, n_train: int = 6, n_test: int = 4) -> None:
    """A tiny valid npz dataset: 1x8x8 uint8 images, labels 0 and 1."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(n, 8, 8), dtype=np.uint8)
        np.savez(folder / f"{split}.npz", x=x, y=np.arange(n) % 2)


def test_registering_digits_records_its_shape(client: TestClient, tenant: TenantKey) -> None:
    response = client.post("/v1/datasets", json=DIGITS, headers=tenant.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/datasets/{body['id']}"
    assert body["num_train"] + body["num_test"] == 1797  # scikit-learn's digits
    assert body["classes"] == [str(i) for i in range(10)]
    assert body["input_shape"] == [1, 8, 8]
    assert body["id_scheme"] == "positional"
    assert body["spec"]["test_fraction"] == 0.25


def test_registered_dataset_reads_back(client: TestClient, tenant: TenantKey) -> None:
    created = client.post("/v1/datasets", json=DIGITS, headers=tenant.headers).json()
    response = client.get(f"/v1/datasets/{created['id']}", headers=tenant.headers)
    assert response.status_code == 200
    assert response.json() == created


def test_201_is_sent_only_after_the_dataset_is_committed(
    settings: Settings, tenant: TenantKey, database_url: str
) -> None:
    """Probe the database from another connection at the moment the response starts being sent."""
    app = create_app(settings)
    rows_when_response_started: list[int] = []

    async def probing_app(scope: Scope, receive: Receive, send: Send) -> None:
        async def probing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and scope["path"] == "/v1/datasets":
                rows_when_response_started.append(count_rows(database_url, "dataset"))
            await send(message)

        await app(scope, receive, probing_send)

    with TestClient(probing_app) as client:
        response = client.post("/v1/datasets", json=DIGITS, headers=tenant.headers)
    assert response.status_code == 201
    assert rows_when_response_started == [1]


def test_another_tenants_dataset_is_404(client: TestClient, tenant: TenantKey, other_tenant: TenantKey) -> None:
    theirs = client.post("/v1/datasets", json=DIGITS, headers=other_tenant.headers).json()
    response = client.get(f"/v1/datasets/{theirs['id']}", headers=tenant.headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


def test_listing_shows_only_the_callers_datasets_a_page_at_a_time(
    client: TestClient, tenant: TenantKey, other_tenant: TenantKey
) -> None:
    for name in ("a", "b", "c"):
        client.post("/v1/datasets", json={**DIGITS, "name": name, "split_seed": 1}, headers=tenant.headers)
    client.post("/v1/datasets", json=DIGITS, headers=other_tenant.headers)
    first = client.get("/v1/datasets?limit=2", headers=tenant.headers).json()
    second = client.get(
        "/v1/datasets", params={"limit": 2, "page_token": first["next_page_token"]}, headers=tenant.headers
    ).json()
    assert [d["name"] for d in first["items"] + second["items"]] == ["a", "b", "c"]
    assert second["next_page_token"] is None


def test_duplicate_name_is_409(client: TestClient, tenant: TenantKey) -> None:
    client.post("/v1/datasets", json=DIGITS, headers=tenant.headers)
    response = client.post("/v1/datasets", json=DIGITS, headers=tenant.headers)
    assert response.status_code == 409


def test_read_only_key_cannot_register(client: TestClient, tenant: TenantKey) -> None:
    reader = client.post("/v1/api-keys", json={"name": "r", "scopes": ["read"]}, headers=tenant.headers).json()
    response = client.post("/v1/datasets", json=DIGITS, headers={"Authorization": f"Bearer {reader['key']}"})
    assert response.status_code == 403


@pytest.mark.parametrize("case", ["dot-dot", "absolute", "symlink"])
def test_path_outside_the_data_root_is_422_and_writes_nothing(
    client: TestClient, tenant: TenantKey, data_root: Path, tmp_path: Path, database_url: str, case: str
) -> None:
    outside = tmp_path / "outside"
    _write_npz(outside)  # a loadable dataset, so only the confinement can refuse it
    (data_root / "inner").mkdir()
    (data_root / "escape").symlink_to(outside, target_is_directory=True)
    path = {"dot-dot": "inner/../../outside", "absolute": str(outside), "symlink": "escape"}[case]
    events_before = count_rows(database_url, "event")

    response = client.post("/v1/datasets", json={"name": "x", "format": "npz", "path": path}, headers=tenant.headers)

    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"] == PROBLEM
    assert problem["type"].endswith("path-outside-data-root")
    assert problem["errors"][0]["pointer"] == "#/path"
    assert str(tmp_path) not in problem["detail"]
    assert count_rows(database_url, "dataset") == 0
    assert count_rows(database_url, "event") == events_before


def test_id_file_outside_the_data_root_is_422(
    client: TestClient, tenant: TenantKey, data_root: Path, tmp_path: Path
) -> None:
    _write_npz(data_root / "set")
    (tmp_path / "ids.txt").write_text("".join(f"s{i}\n" for i in range(6)))
    body = {"name": "x", "format": "npz", "path": "set", "id_file": "../ids.txt"}
    response = client.post("/v1/datasets", json=body, headers=tenant.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "#/id_file"


def test_symlink_that_stays_inside_the_root_is_stored_resolved(
    client: TestClient, tenant: TenantKey, data_root: Path
) -> None:
    _write_npz(data_root / "real")
    (data_root / "ids.txt").write_text("".join(f"s{i}\n" for i in range(6)))
    (data_root / "alias").symlink_to(data_root / "real", target_is_directory=True)
    body = {"name": "x", "format": "npz", "path": "alias", "id_file": "ids.txt", "retain_access": False}
    response = client.post("/v1/datasets", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["path"], created["id_file"], created["id_scheme"]) == ("real", "ids.txt", "id_file")
    assert (created["num_train"], created["num_test"], created["retain_access"]) == (6, 4, False)


def test_dataset_the_core_loader_rejects_is_422_with_its_message(
    client: TestClient, tenant: TenantKey, data_root: Path, database_url: str
) -> None:
    (data_root / "empty").mkdir()
    response = client.post(
        "/v1/datasets", json={"name": "x", "format": "npz", "path": "empty"}, headers=tenant.headers
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("dataset-unusable")
    assert "missing dataset file empty/train.npz" in problem["detail"]
    assert count_rows(database_url, "dataset") == 0


def test_missing_path_is_422(client: TestClient, tenant: TenantKey) -> None:
    response = client.post(
        "/v1/datasets", json={"name": "x", "format": "npz", "path": "nowhere"}, headers=tenant.headers
    )
    assert response.status_code == 422
    assert "does not exist" in response.json()["detail"]


def test_a_symlink_loop_is_422_naming_the_path_inside_the_data_root_only(
    client: TestClient, tenant: TenantKey, data_root: Path
) -> None:
    (data_root / "a").symlink_to(data_root / "b")
    (data_root / "b").symlink_to(data_root / "a")
    response = client.post(
        "/v1/datasets", json={"name": "x", "format": "npz", "path": "a/x"}, headers=tenant.headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("path 'a/x' cannot be resolved")
    assert str(data_root.resolve()) not in response.text


def test_path_with_a_name_too_long_for_the_file_system_is_422(
    client: TestClient, tenant: TenantKey, data_root: Path
) -> None:
    # a file name of more than 255 bytes: stat() fails with ENAMETOOLONG, which Path.exists() passes on
    name = "d" + "\u0301" * 200  # 401 bytes in UTF-8 (the fuzzer's was "Zalgo" text)
    response = client.post("/v1/datasets", json={"name": "x", "format": "npz", "path": name}, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].endswith("cannot be looked up: File name too long")
    assert str(data_root.resolve()) not in response.text


def test_path_given_for_digits_is_422(client: TestClient, tenant: TenantKey) -> None:
    response = client.post("/v1/datasets", json={**DIGITS, "path": "x"}, headers=tenant.headers)
    assert response.status_code == 422
    assert "takes no path" in response.json()["errors"][0]["detail"]


@pytest.mark.parametrize("fraction", [0.001, 0.999])
def test_digits_split_without_every_class_on_both_sides_is_422_saying_why(
    client: TestClient, tenant: TenantKey, fraction: float, database_url: str
) -> None:
    response = client.post("/v1/datasets", json={**DIGITS, "test_fraction": fraction}, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"].endswith("dataset-unusable")
    assert "a stratified split needs at least one sample of each of the 10 classes on both sides" in problem["detail"]
    assert "use a test_fraction from 0.0051 to 0.9944" in problem["detail"]
    assert count_rows(database_url, "dataset") == 0


@pytest.mark.parametrize("seed", [-1, 2**32, 2**63])
def test_split_seed_outside_numpys_seed_range_is_422(client: TestClient, tenant: TenantKey, seed: int) -> None:
    response = client.post("/v1/datasets", json={**DIGITS, "split_seed": seed}, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["location"] == ["body", "split_seed"]


def test_split_seed_bounds_are_declared_in_the_openapi_schema(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["DatasetCreate"]["properties"]
    seed = next(option for option in schema["split_seed"]["anyOf"] if option.get("type") == "integer")
    assert (seed["minimum"], seed["maximum"]) == (0, 2**32 - 1)


def test_registration_appends_an_event(client: TestClient, tenant: TenantKey, database_url: str) -> None:
    before = count_rows(database_url, "event")
    client.post("/v1/datasets", json=DIGITS, headers=tenant.headers)
    assert count_rows(database_url, "event") == before + 1
