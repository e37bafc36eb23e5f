"""Content-addressed object storage through fsspec: a local folder by default, S3-compatible object storage
(or any fsspec URL) when configured.

An object lives at <root>/sha256/<first two hex digits>/<sha256>, written once and never changed. In a
local folder, a write goes to a temporary name, is flushed to disk and renamed to that address. In an
object store (S3 and its kind) there is no rename, and none is needed: a PUT is atomic, so the bytes are
hashed first (a streamed input is spooled to local disk meanwhile) and sent once, straight to the address.
Other fsspec filesystems get a temporary name and a move. Either way a reader never sees half an object.
Every read verifies the sha256 the ledger recorded and raises StorageError, naming the object, when it is
missing or differs.

Objects are deleted only by the erasure sweep (service.erasure): an artefact whose retention window ended,
or an object no ledger row names that is older than the orphan grace. Writing content that is already
stored refreshes the object's timestamp (in a folder) or writes it again (elsewhere), so that an object a
job has just (re)written never looks like an old orphan to that sweep.

It lives in service/ rather than worker/ because the API stores uploaded originals and streams
checkpoints too, and service/ never imports worker/.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

if TYPE_CHECKING:
    from service.settings import Settings

CHUNK_BYTES = 1024 * 1024
# filesystems whose writes become visible whole at close (S3 PUT/CompleteMultipartUpload, GCS, Azure blobs)
OBJECT_STORE_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})


class StorageError(Exception):
    """An object is missing or does not match its recorded checksum."""


@dataclass(frozen=True)
class StoredObject:
    uri: str  # fsspec URL of the object, e.g. file:///srv/unlearning/checkpoints/sha256/ab/ab12... or s3://...
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class ListedObject:
    uri: str  # as the ledger records it
    modified_at: datetime  # its last write, by the storage's clock
    size_bytes: int


class ObjectStore:
    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        """url: a local folder or fsspec URL; options: fsspec storage options for it (for s3://, e.g.
        {"client_kwargs": {"endpoint_url": "http://minio:9000"}}; credentials may also come from AWS_*)."""
        self.options = dict(options or {})
        self.fs, root = fsspec.core.url_to_fs(url, **self.options)
        self.local = isinstance(self.fs, LocalFileSystem)
        self.object_store = not self.local and bool(_protocols(self.fs) & OBJECT_STORE_PROTOCOLS)
        # a relative local folder is pinned now, so the URIs in the ledger do not depend on the cwd
        self.root = os.path.abspath(root) if self.local else root.rstrip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectStore:
        return cls(settings.storage_url, settings.storage_options)

    def _address(self, sha256: str) -> str:
        return f"{self.root}/sha256/{sha256[:2]}/{sha256}"

    def _stored(self, sha256: str, size: int) -> StoredObject:
        return StoredObject(uri=self.fs.unstrip_protocol(self._address(sha256)), sha256=sha256, size_bytes=size)

    # -- writes

    def put_bytes(self, data: bytes) -> StoredObject:
        if self.object_store:
            sha256 = hashlib.sha256(data).hexdigest()
            self._put_object(sha256, lambda final: self.fs.pipe_file(final, data))
            return self._stored(sha256, len(data))
        return self.put_chunks([data])

    def put_file(self, file: BinaryIO) -> StoredObject:
        """Store an open file from its current position, a chunk at a time (uploads spooled to disk)."""
        return self.put_chunks(iter(lambda: file.read(CHUNK_BYTES), b""))

    def put_chunks(self, chunks: Iterable[bytes]) -> StoredObject:
        if self.object_store:
            return self._put_spooled(chunks)
        return self._put_renamed(chunks)

    def _put_spooled(self, chunks: Iterable[bytes]) -> StoredObject:
        # The address is known only once the last byte is hashed, and an object store cannot rename
        # cheaply (a move is a server-side copy and a delete): spool locally, then upload once.
        with tempfile.NamedTemporaryFile(prefix="unlearn-put-") as spool:
            sha256, size = _copy_hashing(chunks, spool)
            spool.flush()
            self._put_object(sha256, lambda final: self.fs.put_file(spool.name, final))
        return self._stored(sha256, size)

    def _put_object(self, sha256: str, upload: Callable[[str], object]) -> None:
        """Upload to the content address; the PUT (or the completion of a multipart upload, which s3fs aborts
        on failure) makes the whole object visible at once. Content already there is uploaded again: the same
        bytes, with a new last-modified time (see the module's docstring)."""
        final = self._address(sha256)
        upload(final)
        self.fs.invalidate_cache(final)  # a cached listing must not hide the object just written

    def _put_renamed(self, chunks: Iterable[bytes]) -> StoredObject:
        tmp = f"{self.root}/tmp/{uuid.uuid4().hex}"
        self.fs.makedirs(f"{self.root}/tmp", exist_ok=True)
        try:
            with self.fs.open(tmp, "wb") as out:
                sha256, size = _copy_hashing(chunks, out)
                if self.local:
                    out.flush()
                    os.fsync(out.fileno())  # the bytes are on disk before the name points at them
            final = self._address(sha256)
            if self.local and os.path.exists(final):
                # Same content, same address: an earlier write (or a crashed job's orphan) already holds it;
                # touched, so that it counts as written now
                os.remove(tmp)
                os.utime(final)
            else:
                self.fs.makedirs(f"{self.root}/sha256/{sha256[:2]}", exist_ok=True)
                if self.local:
                    os.replace(tmp, final)  # atomic on one filesystem
                    _fsync_dir(os.path.dirname(final))  # the rename itself survives a power cut
                else:
                    self.fs.mv(tmp, final)  # over an object already there: the same bytes, written now
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise
        return self._stored(sha256, size)

    # -- reads

    def read_bytes(self, uri: str, sha256: str) -> bytes:
        """The whole object, after checking it against its recorded sha256."""
        fs, path = self._locate(uri)
        try:
            data = fs.cat_file(path)
        except FileNotFoundError:
            raise StorageError(_missing(uri)) from None
        _check(uri, hashlib.sha256(data).hexdigest(), sha256)
        return data

    def verify(self, uri: str, sha256: str) -> None:
        """Hash the object a chunk at a time; raise StorageError if it is missing or differs."""
        digest = hashlib.sha256()
        for chunk in _chunks(*self._locate(uri), uri):
            digest.update(chunk)
        _check(uri, digest.hexdigest(), sha256)

    def iter_verified(self, uri: str, sha256: str) -> Iterator[bytes]:
        """The object's chunks for streaming; verified in full first, so corrupt bytes are never sent."""
        fs, path = self._locate(uri)
        if isinstance(fs, LocalFileSystem):
            self.verify(uri, sha256)  # a second local read is cheap
            return _chunks(fs, path, uri)
        # Remote: one download, spooled to local disk while it is hashed, then served from the spool.
        spool = tempfile.TemporaryFile(prefix="unlearn-get-")
        try:
            actual, _ = _copy_hashing(_chunks(fs, path, uri), spool)
            _check(uri, actual, sha256)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return _drain(spool)

    # -- listing and deleting (the erasure sweep)

    def iter_objects(self) -> Iterator[ListedObject]:
        """Every object under this store's root (sha256/) and every temporary file a write left (tmp/)."""
        for folder in ("sha256", "tmp"):
            base = f"{self.root}/{folder}"
            self.fs.invalidate_cache(base)  # a listing cached by an earlier call would miss recent writes
            try:
                found = self.fs.find(base, detail=True)
            except FileNotFoundError:
                continue
            for path, info in found.items():
                if info.get("type", "file") == "file":
                    yield ListedObject(self.fs.unstrip_protocol(path), _modified_at(info), int(info.get("size") or 0))

    def delete(self, uri: str) -> None:
        """Remove the object at a recorded URI; one already gone is not an error (a sweep that crashed after
        deleting it is run again). Raises StorageError if it is still there afterwards."""
        fs, path = self._locate(uri)
        try:
            fs.rm_file(path)
        except FileNotFoundError:
            pass
        fs.invalidate_cache(path)
        if isinstance(fs, LocalFileSystem) and os.path.isdir(os.path.dirname(path)):
            _fsync_dir(os.path.dirname(path))  # the removal itself survives a power cut
        if fs.exists(path):
            raise StorageError(f"object {uri} is still in storage after it was deleted")

    def _locate(self, uri: str) -> tuple[AbstractFileSystem, str]:
        """The filesystem and path of a recorded URI: this store's own filesystem (and its options) when the
        protocol matches, else the URL's defaults (an object recorded before storage moved elsewhere)."""
        protocol = fsspec.core.split_protocol(uri)[0] or "file"
        if protocol in _protocols(self.fs):
            return self.fs, fsspec.core.strip_protocol(uri)
        return fsspec.core.url_to_fs(uri)


def _modified_at(info: Mapping[str, Any]) -> datetime:
    """An fsspec listing entry's last write: a folder gives mtime (seconds), S3 LastModified (a datetime)."""
    value = info.get("LastModified", info.get("mtime", info.get("last_modified")))
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    # a filesystem that does not say: the object counts as written now, so it is never removed as an orphan
    return datetime.now(UTC)


def _protocols(fs: AbstractFileSystem) -> set[str]:
    return {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)


def _missing(uri: str) -> str:
    return f"object {uri} is missing from storage"


def _check(uri: str, actual: str, recorded: str) -> None:
    if actual != recorded:
        raise StorageError(f"object {uri} is corrupt: checksum mismatch, sha256 {actual} != recorded {recorded}")


def _copy_hashing(chunks: Iterable[bytes], out: IO[bytes]) -> tuple[str, int]:
    """Write the chunks to out; their sha256 (hex) and total size."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        out.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _chunks(fs: AbstractFileSystem, path: str, uri: str) -> Iterator[bytes]:
    # opened now, so a missing object is reported by the call rather than at the first chunk
    try:
        handle = fs.open(path, "rb")
    except FileNotFoundError:
        raise StorageError(_missing(uri)) from None
    return _drain(handle)


def _drain(handle: IO[bytes]) -> Iterator[bytes]:
    with handle:
        yield from iter(lambda: handle.read(CHUNK_BYTES), b"")


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
