"""Client and AsyncClient: one method per operation of the service's API, on httpx.

Both send the Calls of unlearning_client.calls with `Authorization: Bearer <api key>`, retry what may be
retried (unlearning_client.retry), turn error answers into ApiError subclasses carrying the problem body,
and read success answers into the typed resources of unlearning_client.models.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, Unpack

import httpx

from unlearning_client import calls
from unlearning_client.calls import Call, CheckpointFile, Id
from unlearning_client.download import Download, PlainDownload
from unlearning_client.errors import ApiError, ServiceUnreachable, WaitTimeout, error_for
from unlearning_client.models import (
    FINAL_JOB_STATUSES,
    FINAL_REQUEST_STATUSES,
    ApiKey,
    ApiKeyCreated,
    AuditReport,
    Certificate,
    Dataset,
    DeletionRequest,
    DeletionRequestAccepted,
    DeletionRequestFilters,
    ErasureReceipt,
    DownloadedCheckpoint,
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
from unlearning_client.retry import RetryPolicy, is_idempotent, parse_retry_after

__version__ = "0.1.0"
T = TypeVar("T")
I = TypeVar("I")  # noqa: E741  an item of a list
DEFAULT_TIMEOUT_S = 60.0
USER_AGENT = f"unlearning-client/{__version__}"


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT}
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _raise_for_error(response: httpx.Response) -> None:
    if response.is_error:
        raise error_for(response, retry_after=parse_retry_after(response.headers.get("retry-after")))


def _idempotency_key(given: str | None) -> str:
    return given if given is not None else str(uuid.uuid4())


class Client:
    """The service's API over a synchronous httpx.Client.

        with Client("http://127.0.0.1:8000", api_key) as api:
            accepted = api.submit_deletion_request(model_id, ["17", "42"], subject_request_id="ticket-4711")
            done = api.wait_for_deletion_request(accepted.id)

    `retry` bounds the retries of idempotent calls; `transport` and `limits` go to httpx (a test may pass
    an httpx.MockTransport); `sleep` is how the client waits between tries and polls.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        limits: httpx.Limits | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retry = retry if retry is not None else RetryPolicy()
        self._sleep = sleep
        options: dict[str, Any] = {"transport": transport} if transport is not None else {}
        if limits is not None:
            options["limits"] = limits
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=_headers(api_key), timeout=timeout, **options)

    @property
    def base_url(self) -> str:
        return str(self._http.base_url).rstrip("/")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- sending ----

    def _retrying(self, call: Call[Any], attempt: Callable[[], T]) -> T:
        idempotent = is_idempotent(call.method, httpx.Headers(call.headers or {}))
        tries = 0
        while True:
            tries += 1
            try:
                return attempt()
            except (httpx.TransportError, ApiError) as failure:
                delay = self.retry.delay(failure, attempt=tries, idempotent=idempotent)
                if delay is None:
                    if isinstance(failure, httpx.TransportError):
                        url = f"{self.base_url}{call.path}"
                        unreachable = ServiceUnreachable(method=call.method, url=url, cause=failure, attempts=tries)
                        raise unreachable from failure
                    raise
            self._sleep(delay)

    def _send(self, call: Call[T]) -> T:
        def attempt() -> T:
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.json, files=call.files, headers=call.headers
            )
            _raise_for_error(response)
            return call.read(response)

        return self._retrying(call, attempt)

    def _iterate(self, call: Call[Page[I]]) -> Iterator[I]:
        next_call: Call[Page[I]] | None = call
        while next_call is not None:
            page = self._send(next_call)
            yield from page.items
            next_call = calls.next_page(next_call, page)

    # ---- operations ----

    def health(self) -> Health:
        return self._send(calls.health())

    def metrics(self) -> str:
        """The Prometheus text exposition of /metrics."""
        return self._send(calls.metrics())

    def create_api_key(self, name: str, scopes: Sequence[str]) -> ApiKeyCreated:
        """A new key of the caller's tenant (admin scope); its secret is in the answer only."""
        return self._send(calls.create_api_key(name, scopes))

    def list_api_keys(self, *, limit: int | None = None, page_token: str | None = None) -> Page[ApiKey]:
        return self._send(calls.list_api_keys(limit, page_token))

    def iter_api_keys(self, *, page_size: int | None = None) -> Iterator[ApiKey]:
        return self._iterate(calls.list_api_keys(page_size))

    def revoke_api_key(self, key_id: Id) -> None:
        self._send(calls.revoke_api_key(key_id))

    def register_dataset(
        self,
        name: str,
        format: str,
        path: str | None = None,
        *,
        id_file: str | None = None,
        retain_access: bool | None = None,
        test_fraction: float | None = None,
        split_seed: int | None = None,
    ) -> Dataset:
        """Register a dataset in the service's data root; `path` is relative to it (none for digits)."""
        return self._send(calls.register_dataset(name=name, format=format, path=path, id_file=id_file,
                                                 retain_access=retain_access, test_fraction=test_fraction,
                                                 split_seed=split_seed))  # fmt: skip

    def get_dataset(self, dataset_id: Id) -> Dataset:
        return self._send(calls.get_dataset(dataset_id))

    def list_datasets(self, *, limit: int | None = None, page_token: str | None = None) -> Page[Dataset]:
        return self._send(calls.list_datasets(limit, page_token))

    def iter_datasets(self, *, page_size: int | None = None) -> Iterator[Dataset]:
        return self._iterate(calls.list_datasets(page_size))

    def register_model(
        self,
        name: str,
        dataset_id: Id,
        architecture: Mapping[str, Any],
        checkpoint: CheckpointFile,
        *,
        unlearn_config: Mapping[str, Any] | None = None,
        filename: str | None = None,
    ) -> Model:
        """Register a model with its original checkpoint (bytes, a file path or a binary file): version 1."""
        return self._send(calls.register_model(name=name, dataset_id=dataset_id, architecture=architecture,
                                               checkpoint=checkpoint, unlearn_config=unlearn_config,
                                               filename=filename))  # fmt: skip

    def get_model(self, model_id: Id) -> Model:
        return self._send(calls.get_model(model_id))

    def update_model(self, model_id: Id, *, retention_seconds: int) -> Model:
        """Change the model's retention window: how long an artefact holding forgotten samples is kept before
        it is destroyed (0 = at once, at most 30 days)."""
        return self._send(calls.update_model(model_id, retention_seconds=retention_seconds))

    def list_models(self, *, limit: int | None = None, page_token: str | None = None) -> Page[Model]:
        return self._send(calls.list_models(limit, page_token))

    def iter_models(self, *, page_size: int | None = None) -> Iterator[Model]:
        return self._iterate(calls.list_models(page_size))

    def train_reference_models(self, model_id: Id, k: int, *, recipe: Mapping[str, Any] | None = None) -> Job:
        """Queue a job that trains k reference models for the RMIA audit."""
        return self._send(calls.train_reference_models(model_id, k=k, recipe=recipe))

    def tune_model(
        self,
        model_id: Id,
        *,
        procedure: str | None = None,
        lrs: Sequence[float] | None = None,
        step_sizes: Sequence[int] | None = None,
        forget_size: int | None = None,
        runs: int | None = None,
    ) -> Job:
        """Queue a tuning job for the model's lr and step_size; omitted fields take the service's defaults."""
        return self._send(calls.tune_model(model_id, procedure=procedure, lrs=lrs, step_sizes=step_sizes,
                                           forget_size=forget_size, runs=runs))  # fmt: skip

    def get_version(self, model_id: Id, number: int) -> Version:
        return self._send(calls.get_version(model_id, number))

    def list_versions(self, model_id: Id, *, limit: int | None = None,
                      page_token: str | None = None) -> Page[Version]:  # fmt: skip
        return self._send(calls.list_versions(model_id, limit, page_token))

    def iter_versions(self, model_id: Id, *, page_size: int | None = None) -> Iterator[Version]:
        return self._iterate(calls.list_versions(model_id, page_size))

    def list_forgotten_samples(self, model_id: Id, *, state: str | None = None, limit: int | None = None,
                               page_token: str | None = None) -> Page[ForgottenSample]:  # fmt: skip
        """One page of the model's suppression list, by sample ID: every sample forgotten or being forgotten
        (state "all", the default), or only those "forgotten" or "in_flight"."""
        return self._send(calls.list_forgotten_samples(model_id, state, limit, page_token))

    def iter_forgotten_samples(self, model_id: Id, *, state: str | None = None,
                               page_size: int | None = None) -> Iterator[ForgottenSample]:  # fmt: skip
        return self._iterate(calls.list_forgotten_samples(model_id, state, page_size))

    def download_forgotten_samples(self, model_id: Id, path: str | Path, *, state: str | None = None) -> Path:
        """Stream the model's suppression list as CSV (sample_id, request_id, state, version, forgotten_at) into
        `path`; the file appears only once the whole list has arrived."""
        call = calls.download_forgotten_samples(model_id, state)
        download = PlainDownload(Path(path))

        def attempt() -> Path:
            with self._http.stream(call.method, call.path, params=call.params) as response:
                if response.is_error:
                    response.read()
                    _raise_for_error(response)
                download.start()
                for chunk in response.iter_bytes():
                    download.write(chunk)
            return download.finish()

        try:
            return self._retrying(call, attempt)
        finally:
            download.discard()

    def download_checkpoint(
        self, model_id: Id, number: int, path: str | Path, *, expected_sha256: str | None = None
    ) -> DownloadedCheckpoint:
        """Stream the version's checkpoint into `path`, verified against its ETag (its sha256) and
        `expected_sha256` if given; ChecksumMismatch, and no file, when the bytes differ."""
        call = calls.download_checkpoint(model_id, number)
        download = Download(Path(path), expected_sha256=expected_sha256)

        def attempt() -> DownloadedCheckpoint:
            with self._http.stream(call.method, call.path) as response:
                if response.is_error:
                    response.read()
                    _raise_for_error(response)
                download.start(response)
                for chunk in response.iter_bytes():
                    download.write(chunk)
            return download.finish()

        try:
            return self._retrying(call, attempt)
        finally:
            download.discard()

    def get_audit(self, model_id: Id, number: int) -> AuditReport:
        return self._send(calls.get_audit(model_id, number))

    def get_audit_page(self, model_id: Id, number: int) -> str:
        """The audit report as the service's HTML page, plots included."""
        return self._send(calls.get_audit_page(model_id, number))

    def get_audit_samples(self, model_id: Id, number: int) -> SampleEvidenceList:
        return self._send(calls.get_audit_samples(model_id, number))

    def get_audit_samples_csv(self, model_id: Id, number: int) -> str:
        return self._send(calls.get_audit_samples_csv(model_id, number))

    def get_certificate(self, model_id: Id, number: int) -> Certificate:
        """The version's signed certificate; check it with unlearning_client.verify_certificate."""
        return self._send(calls.get_certificate(model_id, number))

    def submit_deletion_request(
        self,
        model_id: Id,
        sample_ids: Sequence[str],
        *,
        subject_request_id: str | None = None,
        regulation: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        received_at: datetime | str | None = None,
    ) -> DeletionRequestAccepted:
        """Ask the service to forget these training samples. Every try of this call sends the same
        Idempotency-Key (a new uuid4 unless given), so a retry gets the first answer, never a second request;
        give your own (e.g. the ticket number) to make a retry after a restart of your process safe too.
        `received_at` (a datetime with a time zone, not in the future) is when you received the data subject's
        request: the regulation's due date counts from it."""
        call = calls.submit_deletion_request(
            model_id, sample_ids, idempotency_key=_idempotency_key(idempotency_key),
            subject_request_id=subject_request_id, regulation=regulation, callback_url=callback_url,
            received_at=received_at,
        )  # fmt: skip
        return self._send(call)

    def list_deletion_requests(self, *, limit: int | None = None, page_token: str | None = None,
                               **filters: Unpack[DeletionRequestFilters]) -> Page[DeletionRequest]:  # fmt: skip
        """One page of the tenant's deletion requests that pass the filters (DeletionRequestFilters), newest
        first unless sort and order say otherwise."""
        return self._send(calls.list_deletion_requests(filters, limit, page_token))

    def iter_deletion_requests(self, *, page_size: int | None = None,
                               **filters: Unpack[DeletionRequestFilters]) -> Iterator[DeletionRequest]:  # fmt: skip
        """Every deletion request that passes the filters, page after page: the one with your ticket number
        (subject_request_id="ticket-4711"), everything overdue (overdue=True), a month's (received_after=...)."""
        return self._iterate(calls.list_deletion_requests(filters, page_size))

    def get_deletion_request(self, request_id: Id) -> DeletionRequest:
        return self._send(calls.get_deletion_request(request_id))

    def cancel_deletion_request(self, request_id: Id) -> DeletionRequest:
        """Cancel a request that has not started; Conflict once its job runs."""
        return self._send(calls.cancel_deletion_request(request_id))

    def get_receipt(self, request_id: Id) -> ErasureReceipt:
        """The request's signed erasure receipt (check it with unlearning_client.verify_receipt); Conflict,
        naming what still holds its samples and when each is due, until the request's erased_at is set."""
        return self._send(calls.get_receipt(request_id))

    def list_deletion_request_events(self, request_id: Id) -> Page[RequestEvent]:
        return self._send(calls.list_deletion_request_events(request_id))

    def iter_deletion_request_events(self, request_id: Id) -> Iterator[RequestEvent]:
        return self._iterate(calls.list_deletion_request_events(request_id))

    def list_deliveries(self, request_id: Id, *, limit: int | None = None,
                        page_token: str | None = None) -> Page[WebhookDelivery]:  # fmt: skip
        """One page of the request's callback deliveries (the delivery log), oldest first."""
        return self._send(calls.list_deliveries(request_id, limit, page_token))

    def iter_deliveries(self, request_id: Id, *, page_size: int | None = None) -> Iterator[WebhookDelivery]:
        return self._iterate(calls.list_deliveries(request_id, page_size))

    def redeliver(self, request_id: Id, delivery_id: Id, *, reenable: bool = False) -> WebhookDelivery:
        """Send a callback message again: a new delivery with the same webhook-id, signed afresh, queued (not
        retried by this client: each call queues one more). Conflict while the request's receiver has disabled
        its callbacks with 410 Gone, unless `reenable`, which turns them back on."""
        return self._send(calls.redeliver(request_id, delivery_id, reenable=reenable))

    def wait_for_deletion_request(
        self, request_id: Id, *, timeout_s: float = 3600.0, poll_interval_s: float = 1.0
    ) -> DeletionRequest:
        """Poll the request until it is completed, rejected, failed or cancelled; WaitTimeout after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while (request := self.get_deletion_request(request_id)).status not in FINAL_REQUEST_STATUSES:
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"deletion request {request_id} is still {request.status} after {timeout_s:g} s")
            self._sleep(poll_interval_s)
        return request

    def list_jobs(self, *, limit: int | None = None, page_token: str | None = None,
                  **filters: Unpack[JobFilters]) -> Page[Job]:  # fmt: skip
        """One page of the tenant's jobs that pass the filters (JobFilters), newest first."""
        return self._send(calls.list_jobs(filters, limit, page_token))

    def iter_jobs(self, *, page_size: int | None = None, **filters: Unpack[JobFilters]) -> Iterator[Job]:
        return self._iterate(calls.list_jobs(filters, page_size))

    def get_job(self, job_id: Id) -> Job:
        return self._send(calls.get_job(job_id))

    def cancel_job(self, job_id: Id) -> Job:
        """Cancel a waiting job, or ask a running one to stop at its next step; Conflict once it ended."""
        return self._send(calls.cancel_job(job_id))

    def wait_for_job(self, job_id: Id, *, timeout_s: float = 3600.0, poll_interval_s: float = 1.0) -> Job:
        """Poll the job until it succeeded, failed or was cancelled; WaitTimeout after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while (job := self.get_job(job_id)).status not in FINAL_JOB_STATUSES:
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"job {job_id} is still {job.status} after {timeout_s:g} s")
            self._sleep(poll_interval_s)
        return job

    def get_signing_key(self) -> SigningKey:
        """The public key that verifies the service's certificates."""
        return self._send(calls.get_signing_key())

    def get_webhook_secret(self) -> WebhookSecret:
        """The secret that verifies the callbacks' signatures (admin scope)."""
        return self._send(calls.get_webhook_secret())


class AsyncClient:
    """The same operations as Client, over httpx.AsyncClient; every method is awaited, every iter_* is an
    async iterator (`async for model in api.iter_models(): ...`)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        limits: httpx.Limits | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.retry = retry if retry is not None else RetryPolicy()
        self._sleep = sleep
        options: dict[str, Any] = {"transport": transport} if transport is not None else {}
        if limits is not None:
            options["limits"] = limits
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=_headers(api_key), timeout=timeout, **options
        )

    @property
    def base_url(self) -> str:
        return str(self._http.base_url).rstrip("/")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ---- sending ----

    async def _retrying(self, call: Call[Any], attempt: Callable[[], Awaitable[T]]) -> T:
        idempotent = is_idempotent(call.method, httpx.Headers(call.headers or {}))
        tries = 0
        while True:
            tries += 1
            try:
                return await attempt()
            except (httpx.TransportError, ApiError) as failure:
                delay = self.retry.delay(failure, attempt=tries, idempotent=idempotent)
                if delay is None:
                    if isinstance(failure, httpx.TransportError):
                        url = f"{self.base_url}{call.path}"
                        unreachable = ServiceUnreachable(method=call.method, url=url, cause=failure, attempts=tries)
                        raise unreachable from failure
                    raise
            await self._sleep(delay)

    async def _send(self, call: Call[T]) -> T:
        async def attempt() -> T:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.json, files=call.files, headers=call.headers
            )
            _raise_for_error(response)
            return call.read(response)

        return await self._retrying(call, attempt)

    async def _iterate(self, call: Call[Page[I]]) -> AsyncIterator[I]:
        next_call: Call[Page[I]] | None = call
        while next_call is not None:
            page = await self._send(next_call)
            for item in page.items:
                yield item
            next_call = calls.next_page(next_call, page)

    # ---- operations (see Client for what each does) ----

    async def health(self) -> Health:
        return await self._send(calls.health())

    async def metrics(self) -> str:
        return await self._send(calls.metrics())

    async def create_api_key(self, name: str, scopes: Sequence[str]) -> ApiKeyCreated:
        return await self._send(calls.create_api_key(name, scopes))

    async def list_api_keys(self, *, limit: int | None = None, page_token: str | None = None) -> Page[ApiKey]:
        return await self._send(calls.list_api_keys(limit, page_token))

    def iter_api_keys(self, *, page_size: int | None = None) -> AsyncIterator[ApiKey]:
        return self._iterate(calls.list_api_keys(page_size))

    async def revoke_api_key(self, key_id: Id) -> None:
        await self._send(calls.revoke_api_key(key_id))

    async def register_dataset(
        self,
        name: str,
        format: str,
        path: str | None = None,
        *,
        id_file: str | None = None,
        retain_access: bool | None = None,
        test_fraction: float | None = None,
        split_seed: int | None = None,
    ) -> Dataset:
        return await self._send(calls.register_dataset(name=name, format=format, path=path, id_file=id_file,
                                                       retain_access=retain_access, test_fraction=test_fraction,
                                                       split_seed=split_seed))  # fmt: skip

    async def get_dataset(self, dataset_id: Id) -> Dataset:
        return await self._send(calls.get_dataset(dataset_id))

    async def list_datasets(self, *, limit: int | None = None, page_token: str | None = None) -> Page[Dataset]:
        return await self._send(calls.list_datasets(limit, page_token))

    def iter_datasets(self, *, page_size: int | None = None) -> AsyncIterator[Dataset]:
        return self._iterate(calls.list_datasets(page_size))

    async def register_model(
        self,
        name: str,
        dataset_id: Id,
        architecture: Mapping[str, Any],
        checkpoint: CheckpointFile,
        *,
        unlearn_config: Mapping[str, Any] | None = None,
        filename: str | None = None,
    ) -> Model:
        return await self._send(calls.register_model(name=name, dataset_id=dataset_id, architecture=architecture,
                                                     checkpoint=checkpoint, unlearn_config=unlearn_config,
                                                     filename=filename))  # fmt: skip

    async def get_model(self, model_id: Id) -> Model:
        return await self._send(calls.get_model(model_id))

    async def update_model(self, model_id: Id, *, retention_seconds: int) -> Model:
        return await self._send(calls.update_model(model_id, retention_seconds=retention_seconds))

    async def list_models(self, *, limit: int | None = None, page_token: str | None = None) -> Page[Model]:
        return await self._send(calls.list_models(limit, page_token))

    def iter_models(self, *, page_size: int | None = None) -> AsyncIterator[Model]:
        return self._iterate(calls.list_models(page_size))

    async def train_reference_models(self, model_id: Id, k: int, *, recipe: Mapping[str, Any] | None = None) -> Job:
        return await self._send(calls.train_reference_models(model_id, k=k, recipe=recipe))

    async def tune_model(
        self,
        model_id: Id,
        *,
        procedure: str | None = None,
        lrs: Sequence[float] | None = None,
        step_sizes: Sequence[int] | None = None,
        forget_size: int | None = None,
        runs: int | None = None,
    ) -> Job:
        return await self._send(calls.tune_model(model_id, procedure=procedure, lrs=lrs, step_sizes=step_sizes,
                                                 forget_size=forget_size, runs=runs))  # fmt: skip

    async def get_version(self, model_id: Id, number: int) -> Version:
        return await self._send(calls.get_version(model_id, number))

    async def list_versions(self, model_id: Id, *, limit: int | None = None,
                            page_token: str | None = None) -> Page[Version]:  # fmt: skip
        return await self._send(calls.list_versions(model_id, limit, page_token))

    def iter_versions(self, model_id: Id, *, page_size: int | None = None) -> AsyncIterator[Version]:
        return self._iterate(calls.list_versions(model_id, page_size))

    async def list_forgotten_samples(self, model_id: Id, *, state: str | None = None, limit: int | None = None,
                                     page_token: str | None = None) -> Page[ForgottenSample]:  # fmt: skip
        return await self._send(calls.list_forgotten_samples(model_id, state, limit, page_token))

    def iter_forgotten_samples(self, model_id: Id, *, state: str | None = None,
                               page_size: int | None = None) -> AsyncIterator[ForgottenSample]:  # fmt: skip
        return self._iterate(calls.list_forgotten_samples(model_id, state, page_size))

    async def download_forgotten_samples(self, model_id: Id, path: str | Path, *, state: str | None = None) -> Path:
        call = calls.download_forgotten_samples(model_id, state)
        download = PlainDownload(Path(path))

        async def attempt() -> Path:
            async with self._http.stream(call.method, call.path, params=call.params) as response:
                if response.is_error:
                    await response.aread()
                    _raise_for_error(response)
                download.start()
                async for chunk in response.aiter_bytes():
                    download.write(chunk)
            return download.finish()

        try:
            return await self._retrying(call, attempt)
        finally:
            download.discard()

    async def download_checkpoint(
        self, model_id: Id, number: int, path: str | Path, *, expected_sha256: str | None = None
    ) -> DownloadedCheckpoint:
        call = calls.download_checkpoint(model_id, number)
        download = Download(Path(path), expected_sha256=expected_sha256)

        async def attempt() -> DownloadedCheckpoint:
            async with self._http.stream(call.method, call.path) as response:
                if response.is_error:
                    await response.aread()
                    _raise_for_error(response)
                download.start(response)
                async for chunk in response.aiter_bytes():
                    download.write(chunk)
            return download.finish()

        try:
            return await self._retrying(call, attempt)
        finally:
            download.discard()

    async def get_audit(self, model_id: Id, number: int) -> AuditReport:
        return await self._send(calls.get_audit(model_id, number))

    async def get_audit_page(self, model_id: Id, number: int) -> str:
        return await self._send(calls.get_audit_page(model_id, number))

    async def get_audit_samples(self, model_id: Id, number: int) -> SampleEvidenceList:
        return await self._send(calls.get_audit_samples(model_id, number))

    async def get_audit_samples_csv(self, model_id: Id, number: int) -> str:
        return await self._send(calls.get_audit_samples_csv(model_id, number))

    async def get_certificate(self, model_id: Id, number: int) -> Certificate:
        return await self._send(calls.get_certificate(model_id, number))

    async def submit_deletion_request(
        self,
        model_id: Id,
        sample_ids: Sequence[str],
        *,
        subject_request_id: str | None = None,
        regulation: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        received_at: datetime | str | None = None,
    ) -> DeletionRequestAccepted:
        call = calls.submit_deletion_request(
            model_id, sample_ids, idempotency_key=_idempotency_key(idempotency_key),
            subject_request_id=subject_request_id, regulation=regulation, callback_url=callback_url,
            received_at=received_at,
        )  # fmt: skip
        return await self._send(call)

    async def list_deletion_requests(self, *, limit: int | None = None, page_token: str | None = None,
                                     **filters: Unpack[DeletionRequestFilters]) -> Page[DeletionRequest]:  # fmt: skip
        return await self._send(calls.list_deletion_requests(filters, limit, page_token))

    def iter_deletion_requests(
        self, *, page_size: int | None = None, **filters: Unpack[DeletionRequestFilters]
    ) -> AsyncIterator[DeletionRequest]:
        return self._iterate(calls.list_deletion_requests(filters, page_size))

    async def get_deletion_request(self, request_id: Id) -> DeletionRequest:
        return await self._send(calls.get_deletion_request(request_id))

    async def cancel_deletion_request(self, request_id: Id) -> DeletionRequest:
        return await self._send(calls.cancel_deletion_request(request_id))

    async def get_receipt(self, request_id: Id) -> ErasureReceipt:
        return await self._send(calls.get_receipt(request_id))

    async def list_deletion_request_events(self, request_id: Id) -> Page[RequestEvent]:
        return await self._send(calls.list_deletion_request_events(request_id))

    def iter_deletion_request_events(self, request_id: Id) -> AsyncIterator[RequestEvent]:
        return self._iterate(calls.list_deletion_request_events(request_id))

    async def list_deliveries(self, request_id: Id, *, limit: int | None = None,
                              page_token: str | None = None) -> Page[WebhookDelivery]:  # fmt: skip
        return await self._send(calls.list_deliveries(request_id, limit, page_token))

    def iter_deliveries(self, request_id: Id, *, page_size: int | None = None) -> AsyncIterator[WebhookDelivery]:
        return self._iterate(calls.list_deliveries(request_id, page_size))

    async def redeliver(self, request_id: Id, delivery_id: Id, *, reenable: bool = False) -> WebhookDelivery:
        return await self._send(calls.redeliver(request_id, delivery_id, reenable=reenable))

    async def wait_for_deletion_request(
        self, request_id: Id, *, timeout_s: float = 3600.0, poll_interval_s: float = 1.0
    ) -> DeletionRequest:
        deadline = time.monotonic() + timeout_s
        while (request := await self.get_deletion_request(request_id)).status not in FINAL_REQUEST_STATUSES:
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"deletion request {request_id} is still {request.status} after {timeout_s:g} s")
            await self._sleep(poll_interval_s)
        return request

    async def list_jobs(self, *, limit: int | None = None, page_token: str | None = None,
                        **filters: Unpack[JobFilters]) -> Page[Job]:  # fmt: skip
        return await self._send(calls.list_jobs(filters, limit, page_token))

    def iter_jobs(self, *, page_size: int | None = None, **filters: Unpack[JobFilters]) -> AsyncIterator[Job]:
        return self._iterate(calls.list_jobs(filters, page_size))

    async def get_job(self, job_id: Id) -> Job:
        return await self._send(calls.get_job(job_id))

    async def cancel_job(self, job_id: Id) -> Job:
        return await self._send(calls.cancel_job(job_id))

    async def wait_for_job(self, job_id: Id, *, timeout_s: float = 3600.0, poll_interval_s: float = 1.0) -> Job:
        deadline = time.monotonic() + timeout_s
        while (job := await self.get_job(job_id)).status not in FINAL_JOB_STATUSES:
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"job {job_id} is still {job.status} after {timeout_s:g} s")
            await self._sleep(poll_interval_s)
        return job

    async def get_signing_key(self) -> SigningKey:
        return await self._send(calls.get_signing_key())

    async def get_webhook_secret(self) -> WebhookSecret:
        return await self._send(calls.get_webhook_secret())
