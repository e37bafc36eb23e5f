"""Checkpoint downloads from the real server: verified against the ETag, and nothing kept when the bytes that
arrive are not the ones the service stated. Altered or cut-off bodies come from a transport between the client
and the server, since the server itself checks every checkpoint before its first byte."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.client.conftest import Served
from unlearning_client import ChecksumMismatch, Client, NotFound


def _checkpoint_request(request: httpx.Request) -> bool:
    return request.url.path.endswith("/checkpoint")


class FlipsOneByte(httpx.BaseTransport):
    """The real server's answers, with one byte of every checkpoint body changed on the way."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if not _checkpoint_request(request) or response.status_code != 200:
            return response
        body = bytearray(response.read())
        response.close()
        body[len(body) // 2] ^= 0x01
        return httpx.Response(200, headers=response.headers, content=bytes(body), request=request)


class CutsFirstDownload(httpx.BaseTransport):
    """The real server's answers, but the first checkpoint body breaks off halfway with a reset connection."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.downloads = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if not _checkpoint_request(request):
            return response
        self.downloads += 1
        if self.downloads > 1:
            return response
        body = response.read()
        response.close()

        def half_then_reset() -> Iterator[bytes]:
            yield body[: len(body) // 2]
            raise httpx.ReadError("connection reset by peer", request=request)

        return httpx.Response(200, headers=response.headers, stream=_Stream(half_then_reset()), request=request)


class _Stream(httpx.SyncByteStream):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks


def test_a_download_is_written_whole_and_matches_the_versions_sha256(api: Client, served: Served,
                                                                     tmp_path: Path) -> None:  # fmt: skip
    version = api.get_version(served.model.id, 2)
    assert version.checkpoint is not None
    target = tmp_path / "v2.safetensors"
    downloaded = api.download_checkpoint(served.model.id, 2, target, expected_sha256=version.checkpoint.sha256)
    assert downloaded.path == target and downloaded.sha256 == version.checkpoint.sha256
    assert hashlib.sha256(target.read_bytes()).hexdigest() == version.checkpoint.sha256
    assert downloaded.size_bytes == version.checkpoint.size_bytes == target.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v2.safetensors"]  # no temporary file left


def test_a_checkpoint_altered_on_the_way_raises_and_leaves_no_file(served: Served, tmp_path: Path) -> None:
    with Client(served.url, served.key, transport=FlipsOneByte()) as api, pytest.raises(ChecksumMismatch) as raised:
        api.download_checkpoint(served.model.id, 1, tmp_path / "v1.safetensors")
    assert "not to its ETag" in str(raised.value) and "nothing was kept" in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_other_than_the_expected_one_raises_and_leaves_no_file(api: Client, served: Served,
                                                                             tmp_path: Path) -> None:  # fmt: skip
    version_1 = api.get_version(served.model.id, 1)
    assert version_1.checkpoint is not None
    with pytest.raises(ChecksumMismatch, match=f"not to the expected {version_1.checkpoint.sha256}"):
        api.download_checkpoint(served.model.id, 2, tmp_path / "v.safetensors",
                                expected_sha256=version_1.checkpoint.sha256)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_a_download_cut_off_halfway_is_fetched_again_whole(served: Served, tmp_path: Path) -> None:
    transport = CutsFirstDownload()
    with Client(served.url, served.key, transport=transport, sleep=lambda seconds: None) as api:
        expected = api.get_version(served.model.id, 1).checkpoint
        downloaded = api.download_checkpoint(served.model.id, 1, tmp_path / "v1.safetensors")
    assert expected is not None and transport.downloads == 2
    written = hashlib.sha256((tmp_path / "v1.safetensors").read_bytes()).hexdigest()
    assert downloaded.sha256 == expected.sha256 == written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1.safetensors"]


def test_a_missing_version_raises_not_found_and_writes_nothing(api: Client, served: Served, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        api.download_checkpoint(served.model.id, 99, tmp_path / "v99.safetensors")
    assert list(tmp_path.iterdir()) == []
