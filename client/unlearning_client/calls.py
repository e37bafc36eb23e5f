"""Every operation of the API as a Call: method, path, query, body and how to read the answer.

The sync and the async client send the same Calls, so an operation is described once; they differ only in
how they wait.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from unlearning_client.errors import UnexpectedAnswer, UnlearningError
from unlearning_client.models import (
    ApiKey,
    ApiKeyCreated,
    AuditReport,
    Certificate,
    Dataset,
    DeletionRequest,
    DeletionRequestAccepted,
    DeletionRequestFilters,
    ErasureReceipt,
    ForgottenSample,
    Health,
    Job,
    JobFilters,
    Model,
    Page,
    RequestEvent,
    SampleEvidenceList,
    SigningKey,
    Version,
    WebhookDelivery,
    WebhookSecret,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Id = str | uuid.UUID
CheckpointFile = bytes | str | os.PathLike[str] | IO[bytes]  # what register_model uploads


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    files: Any = None
    headers: dict[str, str] | None = None


def _segment(value: Id) -> str:
    return quote(str(value), safe="")


def _unexpected(response: httpx.Response, reason: str) -> UnexpectedAnswer:
    return UnexpectedAnswer(
        f"{response.request.method} {response.request.url} answered {response.status_code} with a body this client "
        f"cannot read ({reason}); is the client older than the service?"
    )


def _model(cls: type[M]) -> Callable[[httpx.Response], M]:
    def read(response: httpx.Response) -> M:
        try:
            return cls.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            raise _unexpected(response, str(exc).splitlines()[0]) from None

    return read


def _page(cls: type[M]) -> Callable[[httpx.Response], Page[M]]:
    return _model(Page[cls])  # type: ignore[valid-type]


def _audit(response: httpx.Response) -> AuditReport:
    try:
        return AuditReport.from_json(response.json())
    except (ValueError, ValidationError) as exc:
        raise _unexpected(response, str(exc).splitlines()[0]) from None


def _text(response: httpx.Response) -> str:
    return response.text


def _nothing(response: httpx.Response) -> None:
    return None


def _page_params(limit: int | None, page_token: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if limit is not None:
        params["limit"] = limit
    if page_token is not None:
        params["page_token"] = page_token
    return params


def _instant(value: datetime | str, name: str) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} needs a time zone: the service refuses a date-time without one")
        return value.isoformat()
    return value


def _filter_params(filters: Mapping[str, Any], allowed: type) -> dict[str, Any]:
    """Query parameters of a list's filters: several values repeat the parameter, datetimes go as RFC 3339."""
    unknown = sorted(set(filters) - set(allowed.__annotations__))
    if unknown:
        raise TypeError(f"unknown filter(s) {unknown}; the filters are {sorted(allowed.__annotations__)}")
    params: dict[str, Any] = {}
    for name, value in filters.items():
        if value is None:
            continue
        if isinstance(value, datetime | str) and name.endswith(("_after", "_before")):
            value = _instant(value, name)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, Sequence) and not isinstance(value, str):
            value = [str(v) for v in value]
        params[name] = str(value) if isinstance(value, uuid.UUID) else value
    return params


def next_page(call: Call[Page[M]], page: Page[M]) -> Call[Page[M]] | None:
    """The call for the page after `page` (its next_page_token), None after the last."""
    if page.next_page_token is None:
        return None
    params = dict(call.params or {})
    if page.next_page_token == params.get("page_token"):
        raise UnlearningError(f"GET {call.path} answered the page token it was given: the list does not advance")
    params["page_token"] = page.next_page_token
    return replace(call, params=params)


def _without_none(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


# ---- operations ----


def health() -> Call[Health]:
    return Call("GET", "/healthz", _model(Health))


def metrics() -> Call[str]:
    return Call("GET", "/metrics", _text)


def list_api_keys(limit: int | None = None, page_token: str | None = None) -> Call[Page[ApiKey]]:
    return Call("GET", "/v1/api-keys", _page(ApiKey), params=_page_params(limit, page_token))


def create_api_key(name: str, scopes: Sequence[str]) -> Call[ApiKeyCreated]:
    return Call("POST", "/v1/api-keys", _model(ApiKeyCreated), json={"name": name, "scopes": list(scopes)})


def revoke_api_key(key_id: Id) -> Call[None]:
    return Call("DELETE", f"/v1/api-keys/{_segment(key_id)}", _nothing)


def register_dataset(
    *,
    name: str,
    format: str,
    path: str | None,
    id_file: str | None,
    retain_access: bool | None,
    test_fraction: float | None,
    split_seed: int | None,
) -> Call[Dataset]:
    body = _without_none(name=name, format=format, path=path, id_file=id_file, retain_access=retain_access,
                         test_fraction=test_fraction, split_seed=split_seed)  # fmt: skip
    return Call("POST", "/v1/datasets", _model(Dataset), json=body)


def list_datasets(limit: int | None = None, page_token: str | None = None) -> Call[Page[Dataset]]:
    return Call("GET", "/v1/datasets", _page(Dataset), params=_page_params(limit, page_token))


def get_dataset(dataset_id: Id) -> Call[Dataset]:
    return Call("GET", f"/v1/datasets/{_segment(dataset_id)}", _model(Dataset))


def _checkpoint_part(checkpoint: CheckpointFile, filename: str | None) -> tuple[str, Any, str]:
    if isinstance(checkpoint, (str, os.PathLike)):
        path = Path(checkpoint)
        return filename or path.name, path.read_bytes(), "application/octet-stream"
    return filename or "model.safetensors", checkpoint, "application/octet-stream"


def register_model(
    *,
    name: str,
    dataset_id: Id,
    architecture: Mapping[str, Any],
    checkpoint: CheckpointFile,
    unlearn_config: Mapping[str, Any] | None,
    filename: str | None,
) -> Call[Model]:
    manifest = _without_none(name=name, dataset_id=str(dataset_id), architecture=dict(architecture),
                             unlearn_config=dict(unlearn_config) if unlearn_config is not None else None)  # fmt: skip
    files = {
        "manifest": (None, json.dumps(manifest), "application/json"),
        "checkpoint": _checkpoint_part(checkpoint, filename),
    }
    return Call("POST", "/v1/models", _model(Model), files=files)


def list_models(limit: int | None = None, page_token: str | None = None) -> Call[Page[Model]]:
    return Call("GET", "/v1/models", _page(Model), params=_page_params(limit, page_token))


def get_model(model_id: Id) -> Call[Model]:
    return Call("GET", f"/v1/models/{_segment(model_id)}", _model(Model))


def update_model(model_id: Id, *, retention_seconds: int) -> Call[Model]:
    body = {"retention_seconds": retention_seconds}
    return Call("PATCH", f"/v1/models/{_segment(model_id)}", _model(Model), json=body)


def train_reference_models(model_id: Id, *, k: int, recipe: Mapping[str, Any] | None) -> Call[Job]:
    body = _without_none(k=k, recipe=dict(recipe) if recipe is not None else None)
    return Call("POST", f"/v1/models/{_segment(model_id)}/reference-models", _model(Job), json=body)


def tune_model(
    model_id: Id,
    *,
    procedure: str | None,
    lrs: Sequence[float] | None,
    step_sizes: Sequence[int] | None,
    forget_size: int | None,
    runs: int | None,
) -> Call[Job]:
    body = _without_none(procedure=procedure, lrs=list(lrs) if lrs is not None else None,
                         step_sizes=list(step_sizes) if step_sizes is not None else None, forget_size=forget_size,
                         runs=runs)  # fmt: skip
    return Call("POST", f"/v1/models/{_segment(model_id)}/tuning", _model(Job), json=body)


def _version_path(model_id: Id, number: int) -> str:
    return f"/v1/models/{_segment(model_id)}/versions/{int(number)}"


def list_versions(model_id: Id, limit: int | None = None, page_token: str | None = None) -> Call[Page[Version]]:
    path = f"/v1/models/{_segment(model_id)}/versions"
    return Call("GET", path, _page(Version), params=_page_params(limit, page_token))


def list_forgotten_samples(
    model_id: Id, state: str | None = None, limit: int | None = None, page_token: str | None = None
) -> Call[Page[ForgottenSample]]:
    path = f"/v1/models/{_segment(model_id)}/forgotten-samples"
    params = {**_without_none(state=state), **_page_params(limit, page_token)}
    return Call("GET", path, _page(ForgottenSample), params=params)


def download_forgotten_samples(model_id: Id, state: str | None = None) -> Call[None]:
    """The request of the suppression list's CSV export; the clients stream its body (read is not used)."""
    path = f"/v1/models/{_segment(model_id)}/forgotten-samples.csv"
    return Call("GET", path, _nothing, params=_without_none(state=state))


def get_version(model_id: Id, number: int) -> Call[Version]:
    return Call("GET", _version_path(model_id, number), _model(Version))


def download_checkpoint(model_id: Id, number: int) -> Call[None]:
    """The request of a checkpoint download; the clients stream its body (read is not used)."""
    return Call("GET", f"{_version_path(model_id, number)}/checkpoint", _nothing)


def get_audit(model_id: Id, number: int) -> Call[AuditReport]:
    return Call("GET", f"{_version_path(model_id, number)}/audit", _audit)


def get_audit_page(model_id: Id, number: int) -> Call[str]:
    return Call("GET", f"{_version_path(model_id, number)}/audit.html", _text)


def get_audit_samples(model_id: Id, number: int) -> Call[SampleEvidenceList]:
    return Call("GET", f"{_version_path(model_id, number)}/audit/samples", _model(SampleEvidenceList))


def get_audit_samples_csv(model_id: Id, number: int) -> Call[str]:
    return Call("GET", f"{_version_path(model_id, number)}/audit/samples.csv", _text)


def get_certificate(model_id: Id, number: int) -> Call[Certificate]:
    return Call("GET", f"{_version_path(model_id, number)}/certificate", _model(Certificate))


def submit_deletion_request(
    model_id: Id,
    sample_ids: Sequence[str],
    *,
    idempotency_key: str,
    subject_request_id: str | None,
    regulation: str | None,
    callback_url: str | None,
    received_at: datetime | str | None = None,
) -> Call[DeletionRequestAccepted]:
    if isinstance(sample_ids, str):  # a lone ID would be sent as its characters
        raise TypeError("sample_ids is a sequence of IDs, not one string")
    received = _instant(received_at, "received_at") if received_at is not None else None
    optional = _without_none(subject_request_id=subject_request_id, regulation=regulation, received_at=received,
                             callback_url=callback_url)  # fmt: skip
    body = {"sample_ids": list(sample_ids), **optional}
    return Call("POST", f"/v1/models/{_segment(model_id)}/deletion-requests", _model(DeletionRequestAccepted),
                json=body, headers={"Idempotency-Key": idempotency_key})  # fmt: skip


def list_deletion_requests(
    filters: DeletionRequestFilters, limit: int | None = None, page_token: str | None = None
) -> Call[Page[DeletionRequest]]:
    params = {**_filter_params(filters, DeletionRequestFilters), **_page_params(limit, page_token)}
    return Call("GET", "/v1/deletion-requests", _page(DeletionRequest), params=params)


def get_deletion_request(request_id: Id) -> Call[DeletionRequest]:
    return Call("GET", f"/v1/deletion-requests/{_segment(request_id)}", _model(DeletionRequest))


def cancel_deletion_request(request_id: Id) -> Call[DeletionRequest]:
    return Call("DELETE", f"/v1/deletion-requests/{_segment(request_id)}", _model(DeletionRequest))


def get_receipt(request_id: Id) -> Call[ErasureReceipt]:
    return Call("GET", f"/v1/deletion-requests/{_segment(request_id)}/receipt", _model(ErasureReceipt))


def list_deletion_request_events(request_id: Id) -> Call[Page[RequestEvent]]:
    return Call("GET", f"/v1/deletion-requests/{_segment(request_id)}/events", _page(RequestEvent))


def list_deliveries(
    request_id: Id, limit: int | None = None, page_token: str | None = None
) -> Call[Page[WebhookDelivery]]:
    path = f"/v1/deletion-requests/{_segment(request_id)}/deliveries"
    return Call("GET", path, _page(WebhookDelivery), params=_page_params(limit, page_token))


def redeliver(request_id: Id, delivery_id: Id, *, reenable: bool) -> Call[WebhookDelivery]:
    path = f"/v1/deletion-requests/{_segment(request_id)}/deliveries/{_segment(delivery_id)}/redeliver"
    return Call("POST", path, _model(WebhookDelivery), params={"reenable": "true"} if reenable else None)


def list_jobs(filters: JobFilters, limit: int | None = None, page_token: str | None = None) -> Call[Page[Job]]:
    params = {**_filter_params(filters, JobFilters), **_page_params(limit, page_token)}
    return Call("GET", "/v1/jobs", _page(Job), params=params)


def get_job(job_id: Id) -> Call[Job]:
    return Call("GET", f"/v1/jobs/{_segment(job_id)}", _model(Job))


def cancel_job(job_id: Id) -> Call[Job]:
    return Call("DELETE", f"/v1/jobs/{_segment(job_id)}", _model(Job))


def get_signing_key() -> Call[SigningKey]:
    return Call("GET", "/v1/signing-key", _model(SigningKey))


def get_webhook_secret() -> Call[WebhookSecret]:
    return Call("GET", "/v1/webhook-secret", _model(WebhookSecret))
