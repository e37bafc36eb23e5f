"""Reading versions and their lineage, streaming checkpoints, and naming the code that made them."""

from __future__ import annotations

import importlib.metadata
import logging
import subprocess
import uuid
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from service.errors import Conflict, NotFound, ProblemError
from service.routing import API_PREFIX
from service.models import repository as models_repo
from service.pagination import Cursor
from service.settings import Settings
from service.storage import ObjectStore, StorageError
from service.tables import ModelVersion, VersionStatus
from service.tenants.service import Principal
from service.versions import repository
from service.versions.schemas import CheckpointRead, LineageRead, VersionList, VersionRead

PACKAGE = "unlearning-service"

log = logging.getLogger(__name__)


class CheckpointDestroyed(ProblemError):
    """The checkpoint was deleted on purpose: it held forgotten samples and its retention window ended."""

    status = 410
    slug = "checkpoint-destroyed"


class CheckpointUnavailable(ProblemError):
    """A stored file is missing or fails its checksum: storage was damaged behind the service's back."""

    status = 500
    slug = "stored-file-unavailable"


@lru_cache(maxsize=1)
def code_version() -> str:
    """'<package version>+git.<commit>' when running from a git checkout, else the package version."""
    try:
        package = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        package = "unknown"
    commit = _git_commit()
    return f"{package}+git.{commit}" if commit else package


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and len(commit) == 40 else None


def get_version(session: Session, *, principal: Principal, model_id: uuid.UUID, number: int) -> ModelVersion:
    if models_repo.get_model(session=session, tenant_id=principal.tenant_id, model_id=model_id) is None:
        raise NotFound(f"no model {model_id}")  # also for another tenant's
    version = repository.get_version(session=session, model_id=model_id, number=number)
    if version is None:
        raise NotFound(f"model {model_id} has no version {number}")
    return version


def list_versions(session: Session, *, principal: Principal, model_id: uuid.UUID, page: Cursor) -> VersionList:
    """One page of the model's versions, by number."""
    if models_repo.get_model(session=session, tenant_id=principal.tenant_id, model_id=model_id) is None:
        raise NotFound(f"no model {model_id}")
    window = page.window("versions", repository.BY_NUMBER, {"model_id": model_id})
    items, next_token = repository.list_versions(session=session, model_id=model_id, window=window)
    return VersionList(items=read_versions(session, items), next_page_token=next_token)


def read_versions(session: Session, versions: list[ModelVersion]) -> list[VersionRead]:
    """The read schema of each version, with its parent's number and the requests it fulfilled."""
    parents = repository.numbers_of(session=session, version_ids=[v.parent_id for v in versions])
    covered = repository.request_ids_by_version(session=session, version_ids=[v.id for v in versions])
    return [_read(v, parents.get(v.parent_id) if v.parent_id else None, covered.get(v.id, [])) for v in versions]


def _read(version: ModelVersion, parent_number: int | None, request_ids: list[uuid.UUID]) -> VersionRead:
    config = version.config or {}
    checkpoint = None
    if version.checkpoint_uri is not None and version.sha256 is not None:
        checkpoint = CheckpointRead(
            sha256=version.sha256,
            size_bytes=version.size_bytes or 0,
            download_url=f"{API_PREFIX}/models/{version.model_id}/versions/{version.number}/checkpoint",
        )
    return VersionRead(
        id=version.id,
        model_id=version.model_id,
        number=version.number,
        status=VersionStatus(version.status),
        checkpoint=checkpoint,
        lineage=LineageRead(
            parent_version=parent_number,
            request_ids=request_ids,
            job_id=version.job_id,
            method=config.get("method"),
            hyper_parameters=version.config,
            seed=config.get("seed"),
            code_version=version.code_version,
        ),
        forgotten_count=version.forgotten_count,
        metrics=version.metrics,
        audit_available=version.audit is not None,
        created_at=version.created_at,
        ready_at=version.ready_at,
        destroyed_at=version.destroyed_at,
        destruction_reason=version.destruction_reason,
    )


def audit_of(version: ModelVersion) -> dict[str, Any]:
    """The version's audit report (unlearning.audit.report schema); 404 for the original or before its audit."""
    if version.audit is None:
        why = "it is the registered original" if version.number == 1 else "it has not been audited yet"
        raise NotFound(f"version {version.number} has no audit report: {why}")
    return version.audit


def audit_page(settings: Settings, version: ModelVersion) -> bytes:
    """The report's HTML page, as the worker rendered it, checked against its recorded sha256."""
    audit_of(version)
    if version.audit_html_uri is None or version.audit_html_sha256 is None:
        raise NotFound(f"version {version.number} has no audit page")
    try:
        return ObjectStore.from_settings(settings).read_bytes(version.audit_html_uri, version.audit_html_sha256)
    except StorageError as exc:
        log.error("audit page unavailable", extra={"version_id": str(version.id), "error": str(exc)})
        raise CheckpointUnavailable(
            f"the stored audit page of version {version.number} is missing or fails its checksum; "
            "an operator must restore it"
        ) from None


def check_not_destroyed(version: ModelVersion) -> None:
    """410 naming when and why, for a version whose checkpoint the erasure sweep deleted."""
    if version.status == VersionStatus.destroyed:
        assert version.destroyed_at is not None
        raise CheckpointDestroyed(
            f"the checkpoint of version {version.number} was destroyed at {version.destroyed_at.isoformat()}: "
            f"{version.destruction_reason}; its sha256, size, lineage, metrics and audit remain"
        )


def checkpoint_chunks(settings: Settings, version: ModelVersion) -> Iterator[bytes]:
    """The checkpoint's bytes for streaming, verified against the version's sha256 before the first byte."""
    check_not_destroyed(version)
    if version.status != VersionStatus.ready or version.checkpoint_uri is None or version.sha256 is None:
        raise Conflict(f"version {version.number} is {VersionStatus(version.status).value}; it has no checkpoint yet")
    try:
        return ObjectStore.from_settings(settings).iter_verified(version.checkpoint_uri, version.sha256)
    except StorageError as exc:
        log.error("checkpoint unavailable", extra={"version_id": str(version.id), "error": str(exc)})
        raise CheckpointUnavailable(
            f"the stored checkpoint of version {version.number} is missing or fails its checksum; "
            "an operator must restore it"
        ) from None
