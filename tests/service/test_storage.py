"""The content-addressed store: objects land at their sha256, atomically, once; reads verify the checksum."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

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
    with pytest.raises(StorageError, match="corrupt"):
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
