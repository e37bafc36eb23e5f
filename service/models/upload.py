"""The model upload body: multipart with a JSON manifest and a checkpoint file, size-limited while it streams.

FastAPI's own form handling would spool a file of any size to disk before the endpoint could refuse it;
here the byte count is checked on every chunk, so an oversized upload is cut off at the limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO, Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from service.errors import FieldProblem, ProblemError, Unprocessable, UnsupportedMediaType

MANIFEST_MAX_BYTES = 1024 * 1024
# The body may exceed the checkpoint by the manifest and the multipart framing; the file's own size is
# checked exactly once it has arrived.
BODY_ALLOWANCE_BYTES = MANIFEST_MAX_BYTES + 64 * 1024


class PayloadTooLarge(ProblemError):
    status = 413
    slug = "upload-too-large"


class MalformedUpload(ProblemError):
    status = 400
    slug = "malformed-upload"


@dataclass
class ModelUpload:
    manifest: str  # the manifest's JSON text, parsed by the service
    checkpoint: IO[bytes]  # positioned at the start; in memory up to 1 MiB, then on disk
    checkpoint_size: int
    filename: str | None


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the checkpoint exceeds this service's upload limit of {limit} bytes")


async def _limited(request: Request, limit: int) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit + BODY_ALLOWANCE_BYTES:
            raise _too_large(limit)
        yield chunk


async def read_model_upload(request: Request) -> AsyncIterator[ModelUpload]:
    """Parse the multipart body; the spooled checkpoint file is closed once the response is done."""
    limit: int = request.app.state.settings.max_upload_bytes
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UnsupportedMediaType(
            "send multipart/form-data with a 'manifest' part (JSON) and a 'checkpoint' part (the weights file)"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + BODY_ALLOWANCE_BYTES:
        raise _too_large(limit)  # refused before a byte of the body is read
    parser = MultiPartParser(
        request.headers, _limited(request, limit), max_files=2, max_fields=1, max_part_size=MANIFEST_MAX_BYTES
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise MalformedUpload(f"the multipart body cannot be read: {exc.message}") from None
    files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
    try:
        manifest = await _manifest_text(form.get("manifest"))
        checkpoint = form.get("checkpoint")
        if not isinstance(checkpoint, UploadFile):
            raise _missing_part("checkpoint", "the weights file (safetensors, or a PyTorch state dict)")
        size = checkpoint.size if checkpoint.size is not None else _size_of(checkpoint.file)
        if size > limit:
            raise _too_large(limit)
        if size == 0:
            raise Unprocessable("the checkpoint file is empty", errors=[_part_problem("checkpoint", "empty file")])
        await checkpoint.seek(0)
        yield ModelUpload(manifest=manifest, checkpoint=checkpoint.file, checkpoint_size=size,
                          filename=checkpoint.filename)  # fmt: skip
    finally:
        for file in files:
            await file.close()


async def _manifest_text(part: UploadFile | str | None) -> str:
    if part is None:
        raise _missing_part("manifest", "the JSON manifest (name, dataset_id, architecture, unlearn_config)")
    if isinstance(part, str):
        return part
    # some clients send JSON as a file part
    data = await part.read(MANIFEST_MAX_BYTES + 1)
    if len(data) > MANIFEST_MAX_BYTES:
        raise Unprocessable(
            f"the manifest exceeds {MANIFEST_MAX_BYTES} bytes", errors=[_part_problem("manifest", "too large")]
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unprocessable(
            "the manifest is not UTF-8 text", errors=[_part_problem("manifest", "not UTF-8")]
        ) from None


def _size_of(file: Any) -> int:
    file.seek(0, 2)
    return file.tell()


def _part_problem(name: str, detail: str, kind: str = "invalid") -> FieldProblem:
    return FieldProblem(detail=detail, pointer=None, location=["body", name], type=kind)


def _missing_part(name: str, what: str) -> Unprocessable:
    return Unprocessable(f"the '{name}' part is missing: {what}", errors=[_part_problem(name, "missing", "missing")])


ModelUploadDep = Annotated[ModelUpload, Depends(read_model_upload)]

# The request body as OpenAPI describes it (the endpoint reads the stream itself, so FastAPI cannot infer it).
UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["manifest", "checkpoint"],
                    "properties": {
                        "manifest": {
                            "type": "string",
                            "description": "JSON: {name, dataset_id, architecture: ArchSpec fields, "
                            "unlearn_config: UnlearnConfig fields (method and hyper-parameters), retention_seconds}",
                            "examples": [
                                '{"name": "fashion-cnn", "dataset_id": "0b7c7f0e-2f4a-4a53-9a8e-6d3f1c2b5e71", '
                                '"architecture": {"name": "small_cnn", "num_classes": 10, "in_channels": 1, '
                                '"image_size": 28}, "unlearn_config": {"method": "amun", "epochs": 10, "lr": 0.01}, '
                                '"retention_seconds": 604800}'
                            ],
                        },
                        "checkpoint": {
                            "type": "string",
                            "format": "binary",
                            "description": "safetensors, or a PyTorch state dict loadable with weights_only=True",
                        },
                    },
                }
            }
        },
    }
}
