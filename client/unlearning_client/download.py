"""Downloads that leave no half file: a checkpoint's, which keeps only verified bytes, and a plain one (an
export such as the suppression list's CSV, which has no hash to check).

The body streams into a temporary file beside the target, hashed on the way; only when its sha256 equals
the ETag (the service sends the checkpoint's sha256 as its ETag), and the sha256 the caller expects if it
named one, is the file renamed into place. Anything else deletes it: no half or altered file is left. A plain
download is renamed into place once its whole body has arrived (a body cut short is a transport error).
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path
from typing import IO

import httpx

from unlearning_client.errors import ChecksumMismatch
from unlearning_client.models import DownloadedCheckpoint

_SHA256 = re.compile(r"[0-9a-f]{64}")


def etag_sha256(etag: str | None) -> str | None:
    """The sha256 an ETag names ('"<hex>"', or weak 'W/"<hex>"'), None when it names none."""
    if etag is None:
        return None
    value = etag.strip().removeprefix("W/").strip('"').lower()
    return value if _SHA256.fullmatch(value) else None


class Download:
    def __init__(self, target: Path, *, expected_sha256: str | None = None) -> None:
        self.target = Path(target)
        self.expected = expected_sha256.lower() if expected_sha256 is not None else None
        self.temp = self.target.with_name(f".{self.target.name}.{uuid.uuid4().hex[:12]}.part")
        self._file: IO[bytes] | None = None
        self._digest = hashlib.sha256()
        self._size = 0
        self._etag: str | None = None
        self._url = ""

    def start(self, response: httpx.Response) -> None:
        """Begin (or, on a retry, begin again) with the headers of `response`."""
        self._close()
        self._file = self.temp.open("wb")
        self._digest = hashlib.sha256()
        self._size = 0
        self._etag = etag_sha256(response.headers.get("etag"))
        self._url = str(response.request.url)

    def write(self, chunk: bytes) -> None:
        assert self._file is not None, "start() first"
        self._file.write(chunk)
        self._digest.update(chunk)
        self._size += len(chunk)

    def finish(self) -> DownloadedCheckpoint:
        """Verify and move into place; ChecksumMismatch (and no file) when the bytes are not the stated ones."""
        self._close()
        actual = self._digest.hexdigest()
        if self._etag is None and self.expected is None:
            raise ChecksumMismatch(f"GET {self._url} sent no sha256 ETag and none was expected: nothing to verify "
                                   "the bytes against; nothing was kept")  # fmt: skip
        if self._etag is not None and actual != self._etag:
            raise ChecksumMismatch(
                f"the checkpoint from {self._url} hashes to sha256 {actual}, not to its ETag {self._etag}: it was "
                "altered or cut short on the way; nothing was kept"
            )
        if self.expected is not None and actual != self.expected:
            raise ChecksumMismatch(
                f"the checkpoint from {self._url} hashes to sha256 {actual}, not to the expected {self.expected}; "
                "nothing was kept"
            )
        os.replace(self.temp, self.target)
        return DownloadedCheckpoint(path=self.target, sha256=actual, size_bytes=self._size)

    def discard(self) -> None:
        """Remove the temporary file if it is still there (a failed or abandoned download)."""
        self._close()
        self.temp.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class PlainDownload:
    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.temp = self.target.with_name(f".{self.target.name}.{uuid.uuid4().hex[:12]}.part")
        self._file: IO[bytes] | None = None

    def start(self) -> None:
        """Begin (or, on a retry, begin again)."""
        self._close()
        self._file = self.temp.open("wb")

    def write(self, chunk: bytes) -> None:
        assert self._file is not None, "start() first"
        self._file.write(chunk)

    def finish(self) -> Path:
        self._close()
        os.replace(self.temp, self.target)
        return self.target

    def discard(self) -> None:
        """Remove the temporary file if it is still there (a failed or abandoned download)."""
        self._close()
        self.temp.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
