"""The content-addressed store on S3: objects are PUT once, straight to their sha256 address, and every read
verifies the checksum. Runs against moto's real HTTP server on loopback (a subprocess), never the internet.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import s3fs
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.app import create_app
from service.db import session_factory
from service.settings import Settings
from service.storage import ObjectStore, StorageError
from service.tables import ModelVersion
from tests.service import tiny
from tests.service.factories import TenantKey

BUCKET = "unlearning-test"
# moto accepts any credentials; these never leave the machine
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
START_TIMEOUT_S = 30.0


def _isolate_from_real_aws(mp: pytest.MonkeyPatch, home: Path) -> None:
    """Fake credentials, and no profile or config file of the developer's that could send a request elsewhere."""
    mp.setenv("AWS_ACCESS_KEY_ID", FAKE_CREDENTIALS["aws_access_key_id"])
    mp.setenv("AWS_SECRET_ACCESS_KEY", FAKE_CREDENTIALS["aws_secret_access_key"])
    mp.setenv("AWS_DEFAULT_REGION", FAKE_CREDENTIALS["region_name"])
    mp.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        mp.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _isolate_from_real_aws(monkeypatch, tmp_path)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_answering(endpoint: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"moto server exited with {server.returncode} before answering:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    pytest.fail(f"moto server at {endpoint} did not answer within {START_TIMEOUT_S:.0f} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 with the test bucket created; stopped by its pid at the end."""
    endpoint = f"http://127.0.0.1:{_free_port()}"
    home = tmp_path_factory.mktemp("moto")
    log = home / "server.log"
    with pytest.MonkeyPatch.context() as mp:
        _isolate_from_real_aws(mp, home)
        with log.open("wb") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", endpoint.rsplit(":", 1)[1]],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    try:
        _wait_until_answering(endpoint, server, log)
        with pytest.MonkeyPatch.context() as mp:
            _isolate_from_real_aws(mp, home)
            boto3.client("s3", endpoint_url=endpoint, **FAKE_CREDENTIALS).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


@pytest.fixture
def s3_options(s3_endpoint: str) -> dict[str, Any]:
    return {
        "key": FAKE_CREDENTIALS["aws_access_key_id"],
        "secret": FAKE_CREDENTIALS["aws_secret_access_key"],
        "client_kwargs": {"endpoint_url": s3_endpoint, "region_name": FAKE_CREDENTIALS["region_name"]},
    }


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests sharing the bucket never see each other's objects."""
    return f"objects-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(prefix: str, s3_options: dict[str, Any]) -> ObjectStore:
    return ObjectStore(f"s3://{BUCKET}/{prefix}", s3_options)


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    """A plain boto3 client, to look at or tamper with the bucket behind the store's back."""
    return boto3.client("s3", endpoint_url=s3_endpoint, **FAKE_CREDENTIALS)


def _keys(s3: Any, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/").get("Contents", [])]


def _key(prefix: str, sha256: str) -> str:
    return f"{prefix}/sha256/{sha256[:2]}/{sha256}"


def test_bytes_round_trip_through_an_s3_prefix(store: ObjectStore, prefix: str) -> None:
    data = b"weights" * 1000
    stored = store.put_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    assert (stored.sha256, stored.size_bytes) == (sha, len(data))
    assert stored.uri == f"s3://{BUCKET}/{_key(prefix, sha)}"
    assert store.read_bytes(stored.uri, sha) == data
    assert b"".join(store.iter_verified(stored.uri, sha)) == data


def test_a_streamed_file_round_trips_through_s3(store: ObjectStore, prefix: str, s3: Any) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several read chunks, not a multiple of one
    stored = store.put_file(io.BytesIO(data))
    assert (stored.sha256, stored.size_bytes) == (hashlib.sha256(data).hexdigest(), len(data))
    assert b"".join(store.iter_verified(stored.uri, stored.sha256)) == data
    assert store.read_bytes(stored.uri, stored.sha256) == data
    assert _keys(s3, prefix) == [_key(prefix, stored.sha256)]


def test_the_same_content_stored_twice_is_one_object_at_the_same_address(
    store: ObjectStore, prefix: str, s3: Any
) -> None:
    first = store.put_bytes(b"abc")
    second = store.put_file(io.BytesIO(b"abc"))
    assert first == second
    assert _keys(s3, prefix) == [_key(prefix, first.sha256)]


def test_a_put_goes_straight_to_the_address_without_a_temporary_key_or_a_move(
    store: ObjectStore, prefix: str, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an object store write must not copy or move")

    for method in ("mv", "copy", "makedirs"):
        monkeypatch.setattr(store.fs, method, refuse)
    from_bytes = store.put_bytes(b"one PUT")
    from_file = store.put_file(io.BytesIO(b"one streamed PUT"))
    assert sorted(_keys(s3, prefix)) == sorted([_key(prefix, from_bytes.sha256), _key(prefix, from_file.sha256)])


def test_a_failed_streamed_write_leaves_no_object(store: ObjectStore, prefix: str, s3: Any) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"partial"
        raise OSError("upload cut off")

    with pytest.raises(OSError, match="upload cut off"):
        store.put_chunks(chunks())
    assert _keys(s3, prefix) == []


def test_a_tampered_object_is_refused_naming_the_checksum_mismatch(store: ObjectStore, prefix: str, s3: Any) -> None:
    stored = store.put_bytes(b"original bytes")
    s3.put_object(Bucket=BUCKET, Key=_key(prefix, stored.sha256), Body=b"tampered bytes")
    tampered = hashlib.sha256(b"tampered bytes").hexdigest()
    expected = f"object {stored.uri} is corrupt: checksum mismatch, sha256 {tampered} != recorded {stored.sha256}"
    with pytest.raises(StorageError) as read:
        store.read_bytes(stored.uri, stored.sha256)
    assert str(read.value) == expected
    with pytest.raises(StorageError, match="checksum mismatch"):
        store.iter_verified(stored.uri, stored.sha256)  # refused before the first byte is handed out


def test_a_missing_object_raises_storage_error_naming_it(store: ObjectStore, prefix: str, s3: Any) -> None:
    stored = store.put_bytes(b"soon gone")
    s3.delete_object(Bucket=BUCKET, Key=_key(prefix, stored.sha256))
    for read in (store.read_bytes, store.iter_verified, store.verify):
        with pytest.raises(StorageError) as missing:
            read(stored.uri, stored.sha256)
        assert str(missing.value) == f"object {stored.uri} is missing from storage"


def test_an_object_deleted_behind_the_stores_back_is_written_again(store: ObjectStore, prefix: str, s3: Any) -> None:
    stored = store.put_bytes(b"restored by the next write")
    s3.delete_object(Bucket=BUCKET, Key=_key(prefix, stored.sha256))
    assert store.put_bytes(b"restored by the next write") == stored
    assert store.read_bytes(stored.uri, stored.sha256) == b"restored by the next write"


def test_recorded_uris_are_s3_urls_that_a_fresh_store_with_the_same_options_reads(
    prefix: str, s3_options: dict[str, Any]
) -> None:
    url = f"s3://{BUCKET}/{prefix}"
    stored = ObjectStore(url, s3_options).put_bytes(b"read by another process")
    assert stored.uri.startswith(f"s3://{BUCKET}/{prefix}/sha256/")
    s3fs.S3FileSystem.clear_instance_cache()  # fsspec would otherwise hand back the writer's filesystem
    fresh = ObjectStore(url, s3_options)
    assert fresh.read_bytes(stored.uri, stored.sha256) == b"read by another process"
    assert b"".join(fresh.iter_verified(stored.uri, stored.sha256)) == b"read by another process"


@pytest.fixture
def s3_settings(database_url: str, data_root: Path, prefix: str, s3_options: dict[str, Any]) -> Settings:
    return Settings(
        database_url=database_url, data_root=data_root, storage_url=f"s3://{BUCKET}/{prefix}", storage_options=s3_options
    )


def test_an_uploaded_model_is_stored_in_the_bucket_and_downloads_byte_for_byte(
    s3_settings: Settings, tenant: TenantKey, data_root: Path, prefix: str, s3: Any
) -> None:
    with TestClient(create_app(s3_settings)) as client:
        model = tiny.register_model(client, tenant, data_root)
        version = client.get(f"/v1/models/{model['id']}/versions/1", headers=tenant.headers).json()
        download = client.get(version["checkpoint"]["download_url"], headers=tenant.headers)

    checkpoint = version["checkpoint"]
    assert download.status_code == 200
    with session_factory(s3_settings.database_url)() as session:
        query = select(ModelVersion.checkpoint_uri).where(ModelVersion.id == uuid.UUID(version["id"]))
        uri = session.scalars(query).one()
    assert uri == f"s3://{BUCKET}/{_key(prefix, checkpoint['sha256'])}"  # in the ledger, never in an answer
    assert _keys(s3, prefix) == [_key(prefix, checkpoint["sha256"])]
    in_bucket = s3.get_object(Bucket=BUCKET, Key=_key(prefix, checkpoint["sha256"]))["Body"].read()
    assert download.content == in_bucket
    assert hashlib.sha256(download.content).hexdigest() == checkpoint["sha256"]


def test_a_deleted_object_is_gone_from_the_bucket(store: ObjectStore, prefix: str, s3: Any) -> None:
    kept = store.put_bytes(b"still needed")
    doomed = store.put_bytes(b"held forgotten samples")
    store.delete(doomed.uri)
    assert _keys(s3, prefix) == [_key(prefix, kept.sha256)]
    with pytest.raises(StorageError, match="missing"):
        store.read_bytes(doomed.uri, doomed.sha256)
    store.delete(doomed.uri)  # already gone: no error


def test_the_listing_names_every_object_in_the_prefix_with_its_last_modified_time(
    store: ObjectStore, prefix: str, s3: Any
) -> None:
    stored = store.put_bytes(b"listed")
    [listed] = store.iter_objects()
    head = s3.head_object(Bucket=BUCKET, Key=_key(prefix, stored.sha256))
    assert (listed.uri, listed.size_bytes) == (stored.uri, len(b"listed"))
    assert listed.modified_at == head["LastModified"]
