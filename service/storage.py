"""Content-addressed object storage through fsspec: a local folder by default, any fsspec URL otherwise.

An object lives at <root>/sha256/<first two hex digits>/<sha256>. Writes go to a temporary name, are
flushed to disk and renamed to that address, so a reader never sees half an object and a crash leaves at
most an orphan temporary file. Reads verify the checksum the ledger recorded.

It lives in service/ rather than worker/ because the API stores uploaded originals and streams
checkpoints too, and service/ never imports worker/.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

CHUNK_BYTES = 1024 * 1024


class StorageError(Exception):
    """An object is missing or does not match its recorded checksum."""


@dataclass(frozen=True)
class StoredObject:
    uri: str  # fsspec URL of the object, e.g. file:///srv/unlearning/checkpoints/sha256/ab/ab12...
    sha256: str
    size_bytes: int


class ObjectStore:
    def __init__(self, url: str) -> None:
        self.fs, root = fsspec.core.url_to_fs(url)
        self.local = isinstance(self.fs, LocalFileSystem)
        # a relative local folder is pinned now, so the URIs in the ledger do not depend on the cwd
        self.root = os.path.abspath(root) if self.local else root.rstrip("/")

    def _address(self, sha256: str) -> str:
        return f"{self.root}/sha256/{sha256[:2]}/{sha256}"

    def put_bytes(self, data: bytes) -> StoredObject:
        return self.put_chunks([data])

    def put_file(self, file: BinaryIO) -> StoredObject:
        """Store an open file from its current position, a chunk at a time (uploads spooled to disk)."""
        return self.put_chunks(iter(lambda: file.read(CHUNK_BYTES), b""))

    def put_chunks(self, chunks: Iterable[bytes]) -> StoredObject:
        digest = hashlib.sha256()
        size = 0
        tmp = f"{self.root}/tmp/{uuid.uuid4().hex}"
        self.fs.makedirs(f"{self.root}/tmp", exist_ok=True)
        try:
            with self.fs.open(tmp, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                if self.local:
                    out.flush()
                    os.fsync(out.fileno())  # the bytes are on disk before the name points at them
            sha256 = digest.hexdigest()
            final = self._address(sha256)
            if self.fs.exists(final):
                # Same content, same address: an earlier write (or a crashed job's orphan) already holds it.
                self.fs.rm(tmp)
            else:
                self.fs.makedirs(f"{self.root}/sha256/{sha256[:2]}", exist_ok=True)
                if self.local:
                    os.replace(tmp, final)  # atomic on one filesystem
                    _fsync_dir(os.path.dirname(final))  # the rename itself survives a power cut
                else:
                    self.fs.mv(tmp, final)  # object stores make the destination visible at once
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise
        return StoredObject(uri=self.fs.unstrip_protocol(final), sha256=sha256, size_bytes=size)

    def read_bytes(self, uri: str, sha256: str) -> bytes:
        """The whole object, after checking it against its recorded sha256."""
        fs, path = fsspec.core.url_to_fs(uri)
        try:
            data = fs.cat_file(path)
        except FileNotFoundError:
            raise StorageError(f"object {uri} is missing from storage") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise StorageError(f"object {uri} is corrupt: sha256 {actual} != recorded {sha256}")
        return data

    def verify(self, uri: str, sha256: str) -> None:
        """Hash the object a chunk at a time; raise StorageError if it is missing or differs."""
        digest = hashlib.sha256()
        for chunk in self._chunks(uri):
            digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise StorageError(f"object {uri} is corrupt: sha256 {digest.hexdigest()} != recorded {sha256}")

    def iter_verified(self, uri: str, sha256: str) -> Iterator[bytes]:
        """The object's chunks for streaming; verified in full first, so corrupt bytes are never sent."""
        self.verify(uri, sha256)
        return self._chunks(uri)

    def _chunks(self, uri: str) -> Iterator[bytes]:
        fs, path = fsspec.core.url_to_fs(uri)
        try:
            handle = fs.open(path, "rb")
        except FileNotFoundError:
            raise StorageError(f"object {uri} is missing from storage") from None

        def generate() -> Iterator[bytes]:
            with handle:
                yield from iter(lambda: handle.read(CHUNK_BYTES), b"")

        return generate()


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
