"""The content-addressed store: objects land at their sha256, atomically, once; reads verify the checksum."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.settings import Settings
from service.storage import ObjectStore, StorageError


def test_an_object_is_stored_at_its_sha256_and_reads_back_verified(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path / "objects"))
    data = b"weights" * 1000
    stored = store.put_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    assert (stored.sha256, stored.size_bytes) == (sha, len(data))
    assert stored.uri == f"file://{tmp_path}/objects/sha256/{sha[:2]}/{sha}"
    assert store.read_bytes(stored.uri, sha) == data
    assert b"".join(store.iter_verified(stored.uri, sha)) == data


def test_the_same_content_is_stored_once_and_no_temporary_file_remains(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path))
    first = store.put_bytes(b"abc")
    second = store.put_file(io.BytesIO(b"abc"))
    assert first == second
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [first.sha256]


def test_a_relative_folder_is_pinned_to_an_absolute_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    stored = ObjectStore("./var/objects").put_bytes(b"x")
    assert stored.uri.startswith(f"file://{tmp_path}/var/objects/")


def test_a_corrupted_object_is_refused(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path))
    stored = store.put_bytes(b"original bytes")
    path = tmp_path / "sha256" / stored.sha256[:2] / stored.sha256
    path.write_bytes(b"tampered bytes")
    with pytest.raises(StorageError, match=f"object {stored.uri} is corrupt: checksum mismatch"):
        store.read_bytes(stored.uri, stored.sha256)
    with pytest.raises(StorageError, match="corrupt"):
        store.iter_verified(stored.uri, stored.sha256)


def test_a_missing_object_is_refused(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path))
    stored = store.put_bytes(b"soon gone")
    (tmp_path / "sha256" / stored.sha256[:2] / stored.sha256).unlink()
    with pytest.raises(StorageError, match="missing"):
        store.read_bytes(stored.uri, stored.sha256)


def test_a_failed_write_leaves_no_object(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path))

    def chunks():
        yield b"partial"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store.put_chunks(chunks())
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_the_settings_storage_options_reach_the_filesystem(tmp_path: Path) -> None:
    settings = Settings(storage_url=str(tmp_path / "objects"), storage_options={"auto_mkdir": False})
    store = ObjectStore.from_settings(settings)
    assert store.options == {"auto_mkdir": False}
    assert store.fs.auto_mkdir is False
    assert store.read_bytes(store.put_bytes(b"x").uri, hashlib.sha256(b"x").hexdigest()) == b"x"


def test_another_fsspec_filesystem_stores_through_a_temporary_name_and_a_move() -> None:
    store = ObjectStore(f"memory://objects-{uuid.uuid4().hex}")
    stored = store.put_bytes(b"in memory")
    assert stored.uri == f"memory://{store.root}/sha256/{stored.sha256[:2]}/{stored.sha256}"
    assert store.fs.find(store.root) == [f"{store.root}/sha256/{stored.sha256[:2]}/{stored.sha256}"]
    assert b"".join(store.iter_verified(stored.uri, stored.sha256)) == b"in memory"


def test_an_object_recorded_under_earlier_storage_stays_readable_after_the_url_changes(tmp_path: Path) -> None:
    stored = ObjectStore(str(tmp_path)).put_bytes(b"written before the move")
    moved = ObjectStore(f"memory://objects-{uuid.uuid4().hex}")
    assert moved.read_bytes(stored.uri, stored.sha256) == b"written before the move"


def test_a_deleted_object_is_gone_and_deleting_it_again_is_no_error(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path))
    stored = store.put_bytes(b"held forgotten samples")
    store.delete(stored.uri)
    assert not Path(stored.uri.removeprefix("file://")).exists()
    with pytest.raises(StorageError, match="missing"):
        store.read_bytes(stored.uri, stored.sha256)
    store.delete(stored.uri)  # a sweep that crashed after deleting runs again


def test_the_listing_names_every_object_and_temporary_file_with_its_last_write(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path))
    stored = store.put_bytes(b"an object")
    leftover = tmp_path / "tmp" / "a-write-that-died"
    leftover.write_bytes(b"half")

    listed = {o.uri: o for o in store.iter_objects()}

    assert sorted(listed) == sorted([stored.uri, f"file://{leftover}"])
    assert listed[stored.uri].size_bytes == len(b"an object")
    assert abs(listed[stored.uri].modified_at.timestamp() - Path(stored.uri.removeprefix("file://")).stat().st_mtime) < 1


def test_storing_content_already_there_counts_as_a_new_write(tmp_path: Path) -> None:
    # the erasure sweep removes unnamed objects by age: one a job has just stored again must look new
    store = ObjectStore(str(tmp_path))
    stored = store.put_bytes(b"the same bytes twice")
    path = Path(stored.uri.removeprefix("file://"))
    os.utime(path, (0, 0))

    store.put_bytes(b"the same bytes twice")

    assert path.stat().st_mtime > 0
    assert [o.modified_at.year for o in store.iter_objects()] == [datetime.now(UTC).year]
