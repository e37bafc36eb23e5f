"""The erasure sweep against S3 (moto's server on loopback): a version superseded under the "at once" window
is deleted from the bucket, answers 410, and its request gets its receipt."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.db import session_factory
from service.erasure.service import sweep
from service.settings import Settings
from tests.service import tiny
from tests.service.erasure.conftest import SEED_B64
from tests.service.erasure.ledger import forget
from tests.service.factories import TenantKey
from tests.service.test_storage_s3 import (  # noqa: F401  (fixtures these tests use)
    BUCKET,
    _fake_aws,
    _key,
    _keys,
    prefix,
    s3,
    s3_endpoint,
    s3_options,
)


@pytest.fixture
def s3_settings(
    database_url: str, data_root: Path, prefix: str, s3_options: dict[str, Any], tmp_path: Path
) -> Settings:
    return Settings(database_url=database_url, data_root=data_root, storage_url=f"s3://{BUCKET}/{prefix}",
                    storage_options=s3_options, signing_key=SEED_B64, signing_key_file=tmp_path / "unused-key",
                    guard_max_acc_drop=tiny.GUARD_MAX_ACC_DROP)  # fmt: skip


def test_a_version_superseded_at_once_is_deleted_from_the_bucket_and_answers_410(
    s3_settings: Settings, tenant: TenantKey, data_root: Path, prefix: str, s3: Any
) -> None:
    with TestClient(create_app(s3_settings)) as client:
        model = tiny.register_model(client, tenant, data_root, retention_seconds=0)
        original = client.get(f"/v1/models/{model['id']}/versions/1", headers=tenant.headers).json()
        request = forget(client, tenant, s3_settings, model["id"], [tiny.sample_id(0), tiny.sample_id(1)])
        newest = client.get(f"/v1/models/{model['id']}/versions/2", headers=tenant.headers).json()
        assert _key(prefix, original["checkpoint"]["sha256"]) in _keys(s3, prefix)

        swept = sweep(session_factory(s3_settings.database_url), settings=s3_settings)

        assert len(swept.destroyed_versions) == 1 and swept.receipts == [uuid.UUID(request["id"])]
        assert _keys(s3, prefix) == [_key(prefix, newest["checkpoint"]["sha256"])]
        assert client.get(original["checkpoint"]["download_url"], headers=tenant.headers).status_code == 410
        assert client.get(f"/v1/deletion-requests/{request['id']}/receipt", headers=tenant.headers).status_code == 200
